"""Pieces shared by the architectures: the smooth cutoff, edge padding, per-element fitting.

Everything here is TorchScript-safe and keeps the ABI of DESIGN.md section 3 (see mdval/abi.py).
"""

from __future__ import annotations

import json
from typing import List, Tuple

import torch
from torch import nn


def smooth_switch(r: torch.Tensor, r_on: float, r_off: float) -> torch.Tensor:
    """C2 switch: 1 for r <= r_on, 0 for r >= r_off, u^3 (-6u^2 + 15u - 10) + 1 between.

    u = (r - r_on) / (r_off - r_on) is clamped to [0, 1]; the polynomial has zero first and
    second derivatives at both ends, so energies, forces and force derivatives are continuous
    and an edge at r >= r_off contributes exactly zero.
    """
    u = torch.clamp((r - r_on) / (r_off - r_on), 0.0, 1.0)
    u3 = u * u * u
    return u3 * (-6.0 * u * u + 15.0 * u - 10.0) + 1.0


def edge_slots(centers: torch.Tensor, n_local: int) -> Tuple[torch.Tensor, int]:
    """Slot of each edge within its centre's padded row, and the padded row length.

    Edges need not be sorted. Padding turns the per-centre sums over neighbours into batched
    matrix products (as DeePMD-kit's fixed ``sel`` does) without assuming a maximum.
    """
    n_edges = centers.shape[0]
    if n_edges == 0:
        return torch.zeros(0, dtype=torch.long, device=centers.device), 1
    counts = torch.bincount(centers, minlength=n_local)
    offsets = torch.cumsum(counts, 0) - counts
    order = torch.argsort(centers, stable=True)
    slot_sorted = torch.arange(n_edges, device=centers.device) - offsets[centers[order]]
    slots = torch.empty_like(slot_sorted)
    slots[order] = slot_sorted
    return slots, int(counts.max().item())


def check_species(species: torch.Tensor, n_types: int) -> None:
    """Refuse species indices outside 0..n_types-1 with a clear message."""
    if species.numel() > 0:
        lo = int(species.min().item())
        hi = int(species.max().item())
        if lo < 0 or hi >= n_types:
            raise ValueError(
                "species index out of range: got values in ["
                + str(lo)
                + ", "
                + str(hi)
                + "], the model has "
                + str(n_types)
                + " types (valid 0.."
                + str(n_types - 1)
                + ")"
            )


class PerElementFitting(nn.Module):
    """One fitting network per element; atom energy = net_t(descriptor) + energy_shift[t] (eV)."""

    def __init__(self, nets: List[nn.Module]):
        super().__init__()
        self.nets = nn.ModuleList(nets)
        self.n_types: int = len(nets)
        # Per-element energy shift in eV, fitted by least squares before training (a buffer, not
        # a trainable parameter, as in DeePMD's bias_atom_e).
        self.register_buffer("energy_shift", torch.zeros(len(nets), dtype=torch.float64))

    def forward(self, descriptor: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        n = descriptor.shape[0]
        if self.n_types == 1:
            out = torch.zeros(n, dtype=descriptor.dtype, device=descriptor.device)
            for net in self.nets:
                out = net(descriptor).squeeze(-1)
            return out + self.energy_shift[0]
        energies = torch.zeros(n, dtype=descriptor.dtype, device=descriptor.device)
        for t, net in enumerate(self.nets):
            idx = torch.nonzero(species == t).squeeze(-1)
            if idx.numel() > 0:
                e = net(descriptor.index_select(0, idx)).squeeze(-1)
                energies = energies.index_copy(0, idx, e)
        return energies + self.energy_shift[species]


class AtomisticModel(nn.Module):
    """Base of mdval models: metadata every architecture carries, and the ABI forward."""

    def __init__(self, config: dict):
        super().__init__()
        self.type_names: List[str] = list(config["type_names"])
        self.n_types: int = len(self.type_names)
        self.cutoff: float = float(config["cutoff"])
        self.architecture: str = str(config["architecture"])
        self.config_json: str = json.dumps(config, sort_keys=True)

    @torch.jit.unused
    def config(self) -> dict:
        """The full construction config (rebuilds the model with mdval.nn.build_model)."""
        return json.loads(self.config_json)

    @torch.jit.unused
    def activation_specs(self) -> dict:
        """Canonical activation spec of each sub-network."""
        raise NotImplementedError
