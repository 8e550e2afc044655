"""The labelled frame, the unit of training data, and its validation.

Sign and unit conventions (DESIGN.md section 3):

- ``energy`` is the total potential energy of the cell, eV.
- ``forces`` are -dE/dr, eV/Å.
- ``virial`` is W = Σ_i r_i ⊗ F_i (for periodic systems, W = -dE/dε, the strain derivative),
  eV. With ASE's stress σ (eV/Å³, positive when tensile), W = -σ V. A compressed crystal
  pushes outward: pressure P > 0, σ_xx < 0 and W_xx > 0.

Every error message names the file and the frame index, so a bad frame can be found and fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Frame:
    """One labelled structure.

    =========  =================  ======  ================================================
    field      shape / dtype      unit    meaning
    =========  =================  ======  ================================================
    symbols    list[str] [N]      -       element symbol of each atom
    positions  [N, 3] float64     Å       Cartesian positions
    cell       [3, 3] float64     Å       rows are the cell vectors (zeros if none)
    pbc        [3] bool           -       periodicity along each cell vector
    energy     float              eV      total potential energy
    forces     [N, 3] float64     eV/Å    forces, or None if the file has none
    virial     [3, 3] float64     eV      W = Σ r ⊗ F = -stress · V, or None
    source     str                -       file the frame was read from
    index      int                -       index of the frame in that file
    info       dict               -       free-form metadata (provenance, group, ...)
    =========  =================  ======  ================================================
    """

    symbols: list[str]
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    energy: float
    forces: np.ndarray | None = None
    virial: np.ndarray | None = None
    source: str = "<memory>"
    index: int = 0
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.symbols = [str(s) for s in self.symbols]
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        self.cell = np.asarray(self.cell, dtype=np.float64).reshape(3, 3)
        self.pbc = np.asarray(self.pbc, dtype=bool).reshape(-1)
        if self.pbc.size == 1:
            self.pbc = np.repeat(self.pbc, 3)
        self.energy = float(self.energy) if self.energy is not None else None
        if self.forces is not None:
            self.forces = np.asarray(self.forces, dtype=np.float64).reshape(-1, 3)
        if self.virial is not None:
            self.virial = np.asarray(self.virial, dtype=np.float64).reshape(3, 3)

    @property
    def n_atoms(self) -> int:
        return len(self.symbols)

    @property
    def where(self) -> str:
        """``"<source> frame <index>"``, the prefix of every message about this frame."""
        return f"{self.source} frame {self.index}"

    @property
    def volume(self) -> float:
        """Cell volume in Å³ (0 if the cell is degenerate)."""
        return float(abs(np.linalg.det(self.cell)))

    @property
    def stress(self) -> np.ndarray | None:
        """ASE-sign stress σ = -W / V as a 3x3 matrix in eV/Å³, or None."""
        if self.virial is None or self.volume == 0.0:
            return None
        return -self.virial / self.volume

    def to_atoms(self):
        """An ``ase.Atoms`` carrying the labels in a SinglePointCalculator."""
        from ase import Atoms
        from ase.calculators.singlepoint import SinglePointCalculator

        atoms = Atoms(self.symbols, positions=self.positions, cell=self.cell, pbc=self.pbc)
        atoms.info.update(self.info)
        results = {"energy": self.energy}
        if self.forces is not None:
            results["forces"] = self.forces
        if self.stress is not None:
            results["stress"] = self.stress
        atoms.calc = SinglePointCalculator(atoms, **results)
        return atoms


def virial_from_ase_stress(stress, volume_A3: float) -> np.ndarray:
    """W (eV) from ASE stress σ (eV/Å³, Voigt [6] or [3, 3], positive when tensile): W = -σ V."""
    stress = np.asarray(stress, dtype=np.float64)
    if stress.shape == (6,):
        xx, yy, zz, yz, xz, xy = stress
        stress = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    return -stress.reshape(3, 3) * float(volume_A3)


def validate_frame(frame: Frame, *, require_forces: bool = True, type_names=None) -> None:
    """Raise ValueError naming the file and frame index if the frame cannot be trained on."""
    where = frame.where
    n = frame.n_atoms
    if n == 0:
        raise ValueError(f"{where}: the frame has no atoms; remove this frame")
    if frame.positions.shape != (n, 3):
        raise ValueError(f"{where}: positions have shape {frame.positions.shape}, expected ({n}, 3)")
    if not np.all(np.isfinite(frame.positions)) or not np.all(np.isfinite(frame.cell)):
        raise ValueError(f"{where}: positions or cell contain NaN or inf; remove or fix this frame")
    if frame.energy is None:
        raise ValueError(f"{where}: no energy; every frame needs a total energy (eV)")
    if not np.isfinite(frame.energy):
        raise ValueError(f"{where}: energy is NaN or inf; remove or fix this frame")
    if frame.forces is None:
        if require_forces:
            raise ValueError(f"{where}: no forces; every frame needs forces (eV/Å) to train on")
    else:
        if frame.forces.shape != (n, 3):
            raise ValueError(f"{where}: forces have shape {frame.forces.shape}, expected ({n}, 3)")
        if not np.all(np.isfinite(frame.forces)):
            raise ValueError(f"{where}: forces contain NaN or inf; remove or fix this frame")
    if frame.virial is not None and not np.all(np.isfinite(frame.virial)):
        raise ValueError(f"{where}: virial contains NaN or inf; remove or fix this frame")
    if type_names is not None:
        check_elements(frame, type_names)


def check_elements(frame: Frame, type_names) -> None:
    """Raise ValueError if an element of the frame is not in ``type_names``."""
    known = set(type_names)
    for symbol in frame.symbols:
        if symbol not in known:
            raise ValueError(
                f"{frame.where}: element '{symbol}' is not in the type map {list(type_names)}; "
                f"add it to type_names or remove this frame"
            )


def validate_frames(frames, *, source: str = "<memory>", require_forces: bool = True, type_names=None) -> None:
    """Validate every frame; an empty list is an error naming ``source``."""
    if len(frames) == 0:
        raise ValueError(f"{source}: no frames; the data set is empty")
    for frame in frames:
        validate_frame(frame, require_forces=require_forces, type_names=type_names)
