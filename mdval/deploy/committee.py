"""A committee of models served to ASE: the driving model's results plus the model deviation.

    atoms.calc = mdval.Calculator(["m1.pt", "m2.pt", "m3.pt"])   # a CommitteeCalculator
    atoms.get_forces()                                # the driving model's: m1.pt, the first
    atoms.calc.get_property("forces_std", atoms)      # eV/Å, one per atom

The first model drives, as the pair_coeff model drives ``pair_style taafs ... committee``:
``energy``, ``forces``, ``stress`` (and ``energies``, ``stresses``) are its own, so that MD with
a committee follows the same trajectory as MD with that model alone. ``drive="mean"`` serves the
committee mean instead (a smoother, usually slightly more accurate potential). One neighbour list
serves every member (their cutoff and elements must agree), so a committee of K costs K model
calls and one neighbour list.

The deviations are DeePMD-kit's model deviation (its ``model_devi.out``), with K members and
standard deviations over the members (divided by K, not K - 1):

===========================  ==========  ==================================================
property                     unit        definition
===========================  ==========  ==================================================
``forces_std`` [N]           eV/Å        sqrt((1/K) Σ_k |F_i^k - <F_i>|²), per atom i
``max_force_deviation``      eV/Å        max_i forces_std_i (0 for no atoms)
``energies_std`` [N]         eV          sqrt((1/K) Σ_k (ε_i^k - <ε_i>)²), per-atom energies
``energy_std``               eV          std over the members of the total energy
``virial_std`` [9]           eV/atom     std over the members of W_ab / N, a, b = x, y, z
                                         (row-major: xx xy xz yx yy yz zx zy zz)
``model_devi`` [6]           eV/atom,    the columns of ``model_devi.out``: max_devi_v,
                             eV/Å        min_devi_v, avg_devi_v (max, min and RMS of
                                         virial_std), max_devi_f, min_devi_f, avg_devi_f
                                         (max, min and mean of forces_std)
===========================  ==========  ==================================================

``relative=EPS`` and ``relative_v=EPS`` divide, as DeePMD-kit's ``relative`` and
``relative_v`` keywords do, the force deviation of atom i by |<F_i>| + EPS and the virial
deviation of component ab by |<W_ab / N>| + EPS (the deviations become dimensionless), in
``model_devi`` only: ``forces_std`` and ``virial_std`` stay absolute, in their units.

Every variance is computed from differences between members, (1/K²) Σ_{k<l} (x_k - x_l)²,
which equals (1/K) Σ_k (x_k - <x>)² but is exactly zero for identical members (a mean of K equal
floats need not round back to the float itself). ``pair_style taafs`` computes it the same way.
"""

from __future__ import annotations

import os
from typing import Dict, Optional, Sequence

import numpy as np
import torch

from mdval.deploy.calculator import Calculator, ModelInputs

#: The columns of DeePMD-kit's model_devi.out after ``step``, in order (``model_devi``).
MODEL_DEVI_COLUMNS: tuple[str, ...] = (
    "max_devi_v",
    "min_devi_v",
    "avg_devi_v",
    "max_devi_f",
    "min_devi_f",
    "avg_devi_f",
)
DRIVES: tuple[str, ...] = ("first", "mean")


def member_variance(values: np.ndarray) -> np.ndarray:
    """(1/K) Σ_k (x_k - <x>)² over axis 0 of ``values`` [K, ...], from the pairwise differences
    (exactly zero when all K are equal)."""
    k = values.shape[0]
    total = np.zeros(values.shape[1:])
    for a in range(k):
        for b in range(a + 1, k):
            total += (values[a] - values[b]) ** 2
    return total / (k * k)


def force_deviation(forces: np.ndarray, relative: Optional[float] = None) -> np.ndarray:
    """Per-atom force deviation [N] (eV/Å) of member forces [K, N, 3]; with ``relative`` = EPS
    (eV/Å) divided by |<F_i>| + EPS (dimensionless), as DeePMD-kit's ``relative``."""
    forces = np.asarray(forces, dtype=np.float64)
    deviation = np.sqrt(member_variance(forces).sum(axis=-1))
    if relative is not None:
        deviation = deviation / (np.linalg.norm(forces.mean(axis=0), axis=-1) + relative)
    return deviation


def virial_deviation(virials: np.ndarray, n_atoms: int, relative_v: Optional[float] = None) -> np.ndarray:
    """Deviation [9] of the per-atom virial W_ab / N (eV/atom; row-major xx xy ... zz) of member
    virials [K, 3, 3] (eV); with ``relative_v`` = EPS (eV/atom) divided by |<W_ab / N>| + EPS."""
    per_atom = np.asarray(virials, dtype=np.float64).reshape(-1, 9) / n_atoms
    deviation = np.sqrt(member_variance(per_atom))
    if relative_v is not None:
        deviation = deviation / (np.abs(per_atom.mean(axis=0)) + relative_v)
    return deviation


def model_devi_row(
    forces: np.ndarray, virials: np.ndarray, relative: Optional[float] = None, relative_v: Optional[float] = None
) -> np.ndarray:
    """The six numbers of a model_devi.out line (:data:`MODEL_DEVI_COLUMNS`) of member forces
    [K, N, 3] (eV/Å) and virials [K, 3, 3] (eV)."""
    forces = np.asarray(forces, dtype=np.float64)
    n_atoms = forces.shape[1]
    if n_atoms == 0:
        return np.zeros(len(MODEL_DEVI_COLUMNS))
    f = force_deviation(forces, relative)
    v = virial_deviation(virials, n_atoms, relative_v)
    return np.array([v.max(), v.min(), np.sqrt(np.mean(v * v)), f.max(), f.min(), f.mean()])


def _check_relative(name: str, value) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number (EPS, as DeePMD-kit's {name}) or None, got {value!r}")
    return float(value)


class CommitteeCalculator(Calculator):
    """ASE calculator for a committee of mdval model files (made by ``mdval.Calculator([...])``).

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        Two or more model files with the same cutoff, ``type_names`` and abi; the first drives.
    device, threads, chunk
        As for :class:`mdval.deploy.calculator.Calculator`, for every member.
    drive : "first" or "mean", keyword-only, default "first"
        Whose energy, forces and stress the calculator returns: the first model's, or the mean
        over the members.
    relative, relative_v : float or None, keyword-only
        DeePMD-kit's relative deviations in ``model_devi`` (module docstring).

    Raises ``ValueError`` for fewer than two models, members that disagree (naming the
    difference), or a bad ``drive``/``relative``; model-file errors as ``Calculator``.
    """

    implemented_properties = Calculator.implemented_properties + [
        "energies_std",
        "energy_std",
        "forces_std",
        "max_force_deviation",
        "virial_std",
        "model_devi",
    ]

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        *,
        device: str | torch.device = "cpu",
        threads: Optional[int] = None,
        chunk: int | str | None = "auto",
        drive: str = "first",
        relative: Optional[float] = None,
        relative_v: Optional[float] = None,
    ):
        paths = list(paths)
        if len(paths) < 2:
            raise ValueError(
                f"a committee needs at least two model files, got {len(paths)} "
                f"({[str(p) for p in paths]}); pass one path for a single model"
            )
        if drive not in DRIVES:
            raise ValueError(
                f"drive must be 'first' (the first model drives) or 'mean' (the committee mean), got {drive!r}"
            )
        self.relative = _check_relative("relative", relative)
        self.relative_v = _check_relative("relative_v", relative_v)
        super().__init__(paths[0], device=device, threads=threads, chunk=chunk)
        self.drive = drive
        #: The other members; the first is this calculator itself.
        self.others = [Calculator(path, device=self.device, chunk=chunk) for path in paths[1:]]
        for other in self.others:
            self._check_agrees(other)
        self.parameters["model"] = [str(path) for path in paths]
        self.parameters["drive"] = drive

    def _check_agrees(self, other: Calculator) -> None:
        """Refuse a member whose cutoff or type_names differ from the first model's (the abi
        agrees already: :func:`mdval.deploy.model_file.load` refuses any other)."""
        first, member = self.model, other.model
        for key in ("cutoff", "type_names"):
            if member.metadata[key] != first.metadata[key]:
                raise ValueError(
                    f"committee member {member.path} has {key} {member.metadata[key]!r}, the first "
                    f"model {first.path} has {first.metadata[key]!r}: every member must have the "
                    f"same cutoff, type_names and abi (train them with the same [model] settings)"
                )

    def __repr__(self) -> str:
        paths = [str(self.model.path)] + [str(o.model.path) for o in self.others]
        return (
            f"mdval.Calculator({paths!r}, device={str(self.device)!r}, drive={self.drive!r}; "
            f"elements {self.type_names}, cutoff {self.cutoff} Å)"
        )

    def evaluate(self, inputs: ModelInputs, atom_virial: bool = True) -> Dict[str, torch.Tensor]:
        """The driving outputs (:meth:`Calculator.evaluate`'s keys) of every member on the one
        set of inputs, plus ``committee_atom_energy`` [K, N], ``committee_forces`` [K, N, 3]
        and ``committee_virial`` [K, 3, 3]."""
        outputs = [super().evaluate(inputs, atom_virial)]
        outputs += [other.evaluate(inputs, atom_virial) for other in self.others]
        stacked = {key: torch.stack([out[key] for out in outputs]) for key in outputs[0]}
        if self.drive == "first":
            driving = dict(outputs[0])
        else:
            driving = {key: values.mean(dim=0) for key, values in stacked.items()}
        driving["committee_atom_energy"] = stacked["atom_energy"]
        driving["committee_forces"] = stacked["forces"]
        driving["committee_virial"] = stacked["virial"].reshape(-1, 3, 3)
        return driving

    def results_from(self, outputs: Dict[str, torch.Tensor], atoms) -> dict:
        """The driving model's results plus the deviations (module docstring)."""
        results = Calculator.results_from(outputs, atoms)
        atom_energy = outputs["committee_atom_energy"].cpu().numpy()
        forces = outputs["committee_forces"].cpu().numpy()
        virials = outputs["committee_virial"].cpu().numpy()
        forces_std = force_deviation(forces)
        results["energies_std"] = np.sqrt(member_variance(atom_energy))
        results["energy_std"] = float(np.sqrt(member_variance(atom_energy.sum(axis=1))))
        results["forces_std"] = forces_std
        results["max_force_deviation"] = float(forces_std.max())
        results["virial_std"] = virial_deviation(virials, len(atoms))
        results["model_devi"] = model_devi_row(forces, virials, self.relative, self.relative_v)
        return results

    def _empty_results(self, atoms) -> dict:
        results = super()._empty_results(atoms)
        results.update(
            energies_std=np.zeros(0),
            energy_std=0.0,
            forces_std=np.zeros(0),
            max_force_deviation=0.0,
            virial_std=np.zeros(9),
            model_devi=np.zeros(len(MODEL_DEVI_COLUMNS)),
        )
        return results
