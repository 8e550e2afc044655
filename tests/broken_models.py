"""Modules that break the model contract in one way each, for the bad-input tests of the ASE
calculator and ``mdval test`` (tests/test_bad_input_models.py) and of ``lmp``
(tests/test_bad_input_lammps.py)."""

from __future__ import annotations

import torch

#: The ways :class:`BrokenOutput` breaks the output of the module it wraps ("none": it does not,
#: the control).
MODES = ("none", "nan", "inf", "nan_on_ni", "nan_force", "column", "float32", "int64", "all_nodes", "raises")


class BrokenOutput(torch.nn.Module):
    """``inner`` (any module keeping the ABI) with its output broken in the way ``mode`` names.

    The wrapper keeps the ``cutoff`` and ``type_names`` of ``inner`` where it has them, so that
    ``mdval.deploy.model_file.export`` writes the metadata of the model it wraps.
    """

    def __init__(self, inner: torch.nn.Module, mode: str):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.inner = inner
        self.mode = mode
        self.architecture = "broken_" + mode
        if hasattr(inner, "cutoff"):
            self.cutoff = inner.cutoff
        if hasattr(inner, "type_names"):
            self.type_names = list(inner.type_names)

    def forward(
        self, species: torch.Tensor, edge_index: torch.Tensor, edge_vectors: torch.Tensor, n_local: int
    ) -> torch.Tensor:
        e = self.inner(species, edge_index, edge_vectors, n_local)
        if self.mode == "nan":
            return e * float("nan")
        if self.mode == "inf":
            return e * float("inf")  # the energies are negative: -inf
        if self.mode == "nan_on_ni":  # a model that fails on one element (species 1) only
            return torch.where(species[:n_local] == 1, float("nan"), e)
        if self.mode == "nan_force":  # finite energies, NaN gradient: d sqrt(0 x) / dx = 0 / 0
            return e + 0.0 * torch.sqrt(0.0 * edge_vectors).sum()
        if self.mode == "column":
            return e.unsqueeze(1)
        if self.mode == "float32":
            return e.to(torch.float32)
        if self.mode == "int64":
            return e.to(torch.int64)
        if self.mode == "all_nodes":  # energies of ghost nodes too: right only when there are none
            return torch.cat((e, torch.zeros(species.shape[0] - n_local, dtype=e.dtype)))
        if self.mode == "raises" and n_local > 1:  # one atom works: a model file still loads
            raise ValueError("this toy model takes one atom at a time")
        return e


class TupleOutput(torch.nn.Module):
    """``inner`` returning (energies, energies) instead of the energies."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        self.architecture = "broken_tuple"
        if hasattr(inner, "cutoff"):
            self.cutoff = inner.cutoff
        if hasattr(inner, "type_names"):
            self.type_names = list(inner.type_names)

    def forward(
        self, species: torch.Tensor, edge_index: torch.Tensor, edge_vectors: torch.Tensor, n_local: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.inner(species, edge_index, edge_vectors, n_local)
        return e, e
