"""The ASE calculator: any model file keeping ABI v1 (DESIGN.md section 3) served to ASE.

    atoms.calc = mdval.Calculator("model.pt")          # or Calculator.from_file(...)
    atoms.get_potential_energy(); atoms.get_forces(); atoms.get_stress()

It calls the model exactly as the LAMMPS pair style does, so the two agree by construction. One
call goes atoms -> inputs -> model -> results:

1. **inputs** (:meth:`Calculator.inputs`). Species s_i from the chemical symbols and the model's
   ``type_names``; a full neighbour list (vesin, O(N), any PBC, triclinic, cells smaller than the
   cutoff; periodic self-images included) within the model cutoff r_c, giving edges e = (i, j, S)
   with vectors r_e = r_j - r_i + S·cell (Å). All N atoms are local (n_local = N): periodic images
   live in the edge vectors, so there are no ghost nodes.
2. **model** (:meth:`Calculator.evaluate`). E = Σ_i ε_i (eV), ε_i the model's per-atom output,
   and one autograd pass g_e = ∂E/∂r_e (:func:`mdval.nn.forces.energy_forces_virial`):

       F_i = -∂E/∂r_i = Σ_{e: i centre} g_e - Σ_{e: i neighbour} g_e        (eV/Å)
       W   = -Σ_e r_e ⊗ g_e                                                  (eV)
       W_i = -½ Σ_{e ∋ i} r_e ⊗ g_e     (half of each edge to i, half to j)  (eV)

3. **results** (:meth:`Calculator.results_from`). ``energy`` = ``free_energy`` = E,
   ``energies`` = ε_i, ``forces`` = F_i, and, for cells periodic in all three directions with
   volume V (Å³), ``stress`` σ = -W/V and ``stresses`` σ_i = -W_i/V (eV/Å³, Voigt order
   xx, yy, zz, yz, xz, xy; shapes [6] and [N, 6]; Σ_i σ_i = σ), the convention of ASE's own
   ``ase.calculators.lj``. Stress is positive when the cell is under tension.

Energy, forces and stress come out of one model call and are cached by ASE's ``check_state``:
asking for all three of unchanged atoms runs the model once. Per-atom ``stresses`` are computed
only when asked for (a scatter of 9 numbers per edge that MD does not need); asking for them
afterwards runs the model again, once.

Choices, documented here and asserted by tests/test_calculator.py:

- **zero atoms**: energy 0 eV, empty ``forces``/``energies``/``stresses``, zero ``stress`` (as a
  LAMMPS rank with no atoms returns cleanly);
- **overlapping atoms**: two atoms (or an atom and a periodic image) closer than
  :data:`MIN_SEPARATION` = 0.1 Å is an error naming both indices. No physical structure comes
  that close (the shortest bond, H2, is 0.74 Å); the model's s(r) = sw(r)/r would diverge at 0;
- **stress** of a cell that is not periodic in all three directions raises ASE's
  ``PropertyNotImplementedError`` (what ASE code expects of a property that does not exist), with
  a message saying why; energy and forces work for any periodicity;
- **threads**: ``torch.set_num_threads(threads)`` is called only when ``threads`` is given, and it
  is process-wide: it affects every torch computation in the process, not only this calculator;
- **chunks** (memory): the model's intermediates grow with the edges of one call (about 1.8 kB
  per edge for DeepPot-SE [25, 25, 25] / [50, 50, 50], 4.5 kB for [25, 50, 100] / [240, 240, 240]),
  so the atoms go to the model in chunks of consecutive centres (:func:`chunk_bounds`), as
  ``pair_style taafs chunk`` does in LAMMPS. An ABI v1 model is local: a chunk's centres see
  exactly their own edges and their neighbours' species, so the results are the unchunked ones up
  to float64 rounding (summation order). ``chunk="auto"`` (the default) makes calls of at most
  :data:`AUTO_CHUNK_EDGES` = 10 000 edges on the CPU (about 128 fcc Cu atoms at r_c = 6 Å; the
  intermediates stay in cache: 32 000 Cu atoms took 0.74 GB peak and half the CPU time of one
  call for all, 4.1 GB, benchmarks/bench_scaling.py) and :data:`AUTO_CHUNK_EDGES_GPU` =
  1 000 000 on a GPU (untested); ``chunk=N`` at most N atoms per call; ``chunk=None`` one call
  for all atoms.

Bad input raises :class:`AtomsInputError` (both a ``ValueError`` and ASE's ``InputError``):
elements the model lacks, NaN or inf positions or cell, a periodic direction without a cell
vector (zero or linearly dependent), overlapping atoms. Problems with the model file, including a
``forward`` that fails or returns energies of the wrong shape or dtype, raise
:class:`mdval.deploy.model_file.ModelFileError` unchanged; NaN or inf energies or forces raise
:class:`mdval.deploy.model_file.ModelOutputError` naming the atoms (both are ``ValueError``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np
import torch
from ase.calculators.calculator import Calculator as _AseCalculator
from ase.calculators.calculator import InputError, PropertyNotImplementedError, all_changes
from ase.data import atomic_numbers, chemical_symbols
from ase.stress import full_3x3_to_voigt_6_stress

from mdval.data.neighbors import neighbor_list
from mdval.deploy.model_file import ModelFile, load, non_finite_atoms, non_finite_error
from mdval.nn.forces import energy_forces_virial

#: Two atoms (or an atom and a periodic image of any atom) closer than this (Å) is an error.
MIN_SEPARATION: float = 0.1

#: ``chunk="auto"``: at most this many edges per model call on the CPU, and on a GPU (which wants
#: large calls; untested). The same as ``pair_style taafs chunk auto``.
AUTO_CHUNK_EDGES: int = 10_000
AUTO_CHUNK_EDGES_GPU: int = 1_000_000


def chunk_bounds(edge_counts, chunk_atoms: Optional[int], max_edges: Optional[int]) -> list[tuple[int, int]]:
    """Chunks [(begin, end), ...] of consecutive centres, one model call each.

    ``edge_counts`` [N]: edges of each centre. A chunk takes at least one centre, then more while
    it has at most ``chunk_atoms`` centres and at most ``max_edges`` edges (None: no limit). The
    same rule as ``PairTaafs::compute`` in pair_style/src/pair_taafs.cpp.
    """
    counts = np.asarray(edge_counts, dtype=np.int64)
    n = int(counts.shape[0])
    if chunk_atoms is None and max_edges is None:
        return [(0, n)] if n else []
    prefix = np.concatenate(([0], np.cumsum(counts)))
    bounds = []
    begin = 0
    while begin < n:
        end = n
        if chunk_atoms is not None:
            end = min(end, begin + chunk_atoms)
        if max_edges is not None:  # the largest end with prefix[end] - prefix[begin] <= max_edges
            end = min(end, int(np.searchsorted(prefix, prefix[begin] + max_edges, side="right")) - 1)
        end = max(end, begin + 1)
        bounds.append((begin, end))
        begin = end
    return bounds


def _parse_chunk(chunk, device: torch.device) -> tuple[Optional[int], Optional[int]]:
    """(chunk_atoms, max_edges) for a ``chunk`` argument: "auto", None/"off" or N >= 1."""
    if isinstance(chunk, str) and chunk == "auto":
        return None, AUTO_CHUNK_EDGES_GPU if device.type == "cuda" else AUTO_CHUNK_EDGES
    if chunk is None or (isinstance(chunk, str) and chunk == "off"):
        return None, None
    if isinstance(chunk, (int, np.integer)) and not isinstance(chunk, bool) and chunk >= 1:
        return int(chunk), None
    raise ValueError(
        f"chunk must be 'auto', 'off' (or None) or a number of atoms >= 1 (at most that many "
        f"centre atoms per model call), got {chunk!r}"
    )


class AtomsInputError(InputError, ValueError):
    """Atoms the model cannot be evaluated on; the message names the problem and the fix."""


@dataclass
class ModelInputs:
    """The ABI v1 inputs for one structure (see mdval/abi.py), plus the neighbour-list shifts.

    =============  =====================  ====  ==========================================
    field          shape / dtype          unit  meaning
    =============  =====================  ====  ==========================================
    species        [N] int64              -     model species index of each atom
    edge_index     [2, E] int64           -     row 0 centre i, row 1 neighbour j
    edge_vectors   [E, 3] float64         Å     r_j - r_i + S·cell
    n_local        int                    -     N (all atoms are local in ASE)
    =============  =====================  ====  ==========================================
    """

    species: torch.Tensor
    edge_index: torch.Tensor
    edge_vectors: torch.Tensor
    n_local: int


def _resolve_device(device) -> torch.device:
    """A torch.device for ``device``, refusing CUDA where this torch has none."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r} ({exc})") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={str(device)!r} needs CUDA, but this torch ({torch.__version__}) sees no "
                "CUDA device (torch.cuda.is_available() is False); use device='cpu', or install a "
                "CUDA build of torch on a machine with a GPU"
            )
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(
                f"device={str(device)!r}: there are only {count} CUDA device(s) (cuda:0..cuda:{count - 1})"
            )
    elif resolved.type != "cpu":
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return resolved


class Calculator(_AseCalculator):
    """ASE calculator for an mdval model file (TorchScript, ABI v1).

    Parameters
    ----------
    path : str or os.PathLike
        The model file (``.pt``). Cutoff, element names and dtype come from its metadata. A list
        of files makes a committee (``mdval.deploy.committee``; the first drives).
    device : str, keyword-only, default "cpu"
        "cpu", "cuda" or "cuda:N". CUDA must be available to this torch.
    threads : int or None, keyword-only, default None
        If given, ``torch.set_num_threads(threads)``. This is **process-wide**.
    chunk : "auto", int, "off" or None, keyword-only, default "auto"
        Memory bound: at most ``chunk`` atoms per model call; "auto": at most
        :data:`AUTO_CHUNK_EDGES` edges per call (:data:`AUTO_CHUNK_EDGES_GPU` on a GPU); None
        or "off": one call for all atoms. Results are the same up to float64 rounding (see the
        module docstring).

    Raises :class:`mdval.deploy.model_file.ModelFileError` (a ``ValueError``) for a missing,
    corrupt or wrong-ABI file, and ``ValueError`` for a bad device, thread count or chunk.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress", "stresses"]

    def __new__(cls, path=None, *args, **kwargs):
        """``Calculator([m1, m2, ...])``, a list or tuple of model files, makes a committee: a
        :class:`mdval.deploy.committee.CommitteeCalculator`, whose first model drives."""
        if cls is Calculator and isinstance(path, (list, tuple)):
            from mdval.deploy.committee import CommitteeCalculator  # it imports this module

            return super().__new__(CommitteeCalculator)
        return super().__new__(cls)

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        device: str | torch.device = "cpu",
        threads: Optional[int] = None,
        chunk: int | str | None = "auto",
    ):
        super().__init__()
        _parse_chunk(chunk, torch.device("cpu"))  # refuse a bad value before anything else
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
                raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
            torch.set_num_threads(threads)  # process-wide
        self.device = _resolve_device(device)
        self.chunk_atoms, self.chunk_edges = _parse_chunk(chunk, self.device)
        self.model: ModelFile = load(path, device=self.device)
        self.cutoff: float = self.model.cutoff
        self.type_names: list[str] = self.model.type_names
        # Atomic number -> model species index (-1: not in the model).
        self._species_of_z = np.full(len(chemical_symbols), -1, dtype=np.int64)
        for index, name in enumerate(self.type_names):
            if name in atomic_numbers:
                self._species_of_z[atomic_numbers[name]] = index
        self.parameters["model"] = str(self.model.path)
        self.parameters["device"] = str(self.device)
        self.parameters["chunk"] = chunk

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike,
        *,
        device: str | torch.device = "cpu",
        threads: Optional[int] = None,
        chunk: int | str | None = "auto",
    ) -> Calculator:
        """The same as ``Calculator(path, device=..., threads=..., chunk=...)``."""
        return cls(path, device=device, threads=threads, chunk=chunk)

    def __repr__(self) -> str:
        return (
            f"mdval.Calculator({str(self.model.path)!r}, device={str(self.device)!r}; "
            f"elements {self.type_names}, cutoff {self.cutoff} Å)"
        )

    # ----------------------------------------------------------------- atoms -> inputs
    def species(self, atoms) -> np.ndarray:
        """Model species index of each atom [N] (int64); refuses elements the model lacks."""
        numbers = atoms.numbers
        species = self._species_of_z[numbers]
        if species.size and species.min() < 0:
            bad = np.flatnonzero(species < 0)
            missing = sorted({chemical_symbols[z] for z in numbers[bad]}, key=atomic_numbers.get)
            shown = ", ".join(str(i) for i in bad[:5]) + (", ..." if bad.size > 5 else "")
            raise AtomsInputError(
                f"element(s) {', '.join(missing)} (atom {shown}) not in the model "
                f"{self.model.path.name}, which knows {', '.join(self.type_names)}; use a model "
                "trained on these elements or remove those atoms"
            )
        return species

    def inputs(self, atoms) -> ModelInputs:
        """Check ``atoms`` and build the model's inputs (on the calculator's device)."""
        positions = atoms.positions
        cell = atoms.cell.array
        if not np.isfinite(cell).all():
            raise AtomsInputError(f"the cell contains NaN or inf: {cell.tolist()}; set a finite cell (Å)")
        finite = np.isfinite(positions).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            shown = ", ".join(str(i) for i in bad[:5]) + (", ..." if bad.size > 5 else "")
            raise AtomsInputError(
                f"positions of atom(s) {shown} are NaN or inf; the structure is broken "
                "(e.g. a blown-up MD run): restart from a sane structure"
            )
        species = self.species(atoms)
        try:
            nl = neighbor_list(positions, cell, atoms.pbc, self.cutoff)
        except ValueError as exc:  # e.g. a periodic direction without a cell vector
            raise AtomsInputError(str(exc)) from None
        self._check_overlap(nl.centers, nl.neighbors, nl.vectors)
        device = self.device
        return ModelInputs(
            species=torch.from_numpy(species).to(device),
            edge_index=torch.from_numpy(np.stack((nl.centers, nl.neighbors))).to(device),
            edge_vectors=torch.from_numpy(nl.vectors).to(device),
            n_local=len(atoms),
        )

    @staticmethod
    def _check_overlap(centers: np.ndarray, neighbors: np.ndarray, vectors: np.ndarray) -> None:
        if vectors.shape[0] == 0:
            return
        r2 = np.einsum("ed,ed->e", vectors, vectors)
        close = r2 < MIN_SEPARATION**2
        if not close.any():
            return
        edges = np.flatnonzero(close)

        def order(e):  # the pair of lowest indices, at its closest image (a tiny cell has many)
            return min(centers[e], neighbors[e]), max(centers[e], neighbors[e]), r2[e]

        first = min(edges, key=order)
        i, j = sorted((int(centers[first]), int(neighbors[first])))
        distance = float(np.sqrt(r2[first]))
        limit = f"{distance:.3f} Å apart, closer than MIN_SEPARATION = {MIN_SEPARATION} Å"
        if i == j:
            raise AtomsInputError(
                f"atom {i} and its own periodic image are {limit}: the cell is too small along a "
                "periodic direction; fix the cell (Å) or set pbc=False along that direction"
            )
        raise AtomsInputError(
            f"atoms {i} and {j} are {limit}: two atoms at the same position; remove the duplicate "
            "atom or fix the structure"
        )

    # ----------------------------------------------------------------- inputs -> model
    def evaluate(self, inputs: ModelInputs, atom_virial: bool = True) -> Dict[str, torch.Tensor]:
        """Energy, per-atom energies, forces, virial and (if ``atom_virial``) per-atom virial: one
        autograd call per chunk of centres (one call in all unless the system is larger than a
        chunk). NaN or inf energies or forces raise :class:`ModelOutputError` naming the atoms."""
        out = self._evaluate(inputs, atom_virial)
        bad = non_finite_atoms(out["atom_energy"], out["forces"])
        if bad is not None:
            raise non_finite_error(self.model.path, bad, inputs.n_local)
        return out

    def _evaluate(self, inputs: ModelInputs, atom_virial: bool) -> Dict[str, torch.Tensor]:
        """:meth:`evaluate` without the finiteness check."""
        centers = inputs.edge_index[0]
        if self.chunk_atoms is not None or self.chunk_edges is not None:
            counts = torch.bincount(centers, minlength=inputs.n_local).cpu().numpy()
            bounds = chunk_bounds(counts, self.chunk_atoms, self.chunk_edges)
            if len(bounds) > 1:
                return self._evaluate_chunks(inputs, bounds, atom_virial)
        with torch.enable_grad():
            out = energy_forces_virial(
                self.model,
                inputs.species,
                inputs.edge_index,
                inputs.edge_vectors,
                inputs.n_local,
                forces=True,
                virial=True,
                atom_virial=atom_virial,
            )
        return {k: v.detach() for k, v in out.items()}

    def _evaluate_chunks(
        self, inputs: ModelInputs, bounds: list[tuple[int, int]], want_atom_virial: bool = True
    ) -> Dict[str, torch.Tensor]:
        """:meth:`evaluate` by chunks of centres [begin, end), one model call each, with the sums
        of energy_forces_virial accumulated. A call gets the chunk's edges and c = end - begin
        local nodes (its centres, renumbered 0..c-1); a neighbour outside the chunk becomes a
        node of its own per edge (node c + k for the chunk's edge k, with its species), as a
        LAMMPS ghost atom would: an ABI v1 model reads only the species of a neighbour node."""
        species, n = inputs.species, inputs.n_local
        centers, neighbors = inputs.edge_index[0], inputs.edge_index[1]
        edge_vectors = inputs.edge_vectors
        if centers.numel() > 1 and bool((centers[1:] < centers[:-1]).any()):  # group by centre
            order = torch.argsort(centers, stable=True)
            centers, neighbors, edge_vectors = centers[order], neighbors[order], edge_vectors[order]
        prefix = torch.zeros(n + 1, dtype=torch.long)
        prefix[1:] = torch.cumsum(torch.bincount(centers, minlength=n).cpu(), 0)
        f64 = dict(dtype=torch.float64, device=edge_vectors.device)
        atom_energy = torch.zeros(n, **f64)
        forces = torch.zeros(n, 3, **f64)
        virial = torch.zeros(3, 3, **f64)
        atom_virial = torch.zeros(n, 3, 3, **f64) if want_atom_virial else None
        for begin, end in bounds:
            lo, hi = int(prefix[begin]), int(prefix[end])
            c = end - begin
            ci, nj = centers[lo:hi], neighbors[lo:hi]
            inside = (nj >= begin) & (nj < end)
            own_node = c + torch.arange(hi - lo, device=nj.device)
            sub_index = torch.stack((ci - begin, torch.where(inside, nj - begin, own_node)))
            sub_species = torch.cat((species[begin:end], species[nj]))
            vectors = edge_vectors[lo:hi].detach().requires_grad_(True)
            with torch.enable_grad():
                energies = self.model(sub_species, sub_index, vectors, c)
                grad = None
                if hi > lo:
                    (grad,) = torch.autograd.grad(energies.sum(), vectors, allow_unused=True)
            atom_energy[begin:end] = energies.detach()
            if grad is None:
                continue
            forces.index_add_(0, ci, grad).index_add_(0, nj, -grad)
            edge_virial = -vectors.detach().unsqueeze(2) * grad.unsqueeze(1)  # [E, 3, 3]
            virial += edge_virial.sum(0)
            if atom_virial is not None:
                half = 0.5 * edge_virial
                atom_virial.index_add_(0, ci, half).index_add_(0, nj, half)
        out = {
            "atom_energy": atom_energy,
            "energy": atom_energy.sum().reshape(1),
            "forces": forces,
            "virial": virial.reshape(1, 3, 3),
        }
        if atom_virial is not None:
            out["atom_virial"] = atom_virial
        return out

    # ----------------------------------------------------------------- model -> results
    @staticmethod
    def results_from(outputs: Dict[str, torch.Tensor], atoms) -> dict:
        """ASE results (numpy, eV, eV/Å, eV/Å³) from the model outputs."""
        energies = outputs["atom_energy"].cpu().numpy()
        energy = float(outputs["energy"].sum().item())
        results = {
            "energy": energy,
            "free_energy": energy,
            "energies": energies,
            "forces": outputs["forces"].cpu().numpy(),
        }
        if atoms.pbc.all():
            volume = abs(float(np.linalg.det(atoms.cell.array)))
            virial = outputs["virial"].reshape(3, 3).cpu().numpy()
            results["stress"] = full_3x3_to_voigt_6_stress(-virial / volume)
            if "atom_virial" in outputs:
                atom_virial = outputs["atom_virial"].cpu().numpy()
                results["stresses"] = full_3x3_to_voigt_6_stress(-atom_virial / volume).reshape(-1, 6)
        return results

    def _empty_results(self, atoms) -> dict:
        """Zero atoms: zero energy, empty arrays, zero stress (documented choice)."""
        results = {
            "energy": 0.0,
            "free_energy": 0.0,
            "energies": np.zeros(0),
            "forces": np.zeros((0, 3)),
        }
        if atoms.pbc.all():
            results["stress"] = np.zeros(6)
            results["stresses"] = np.zeros((0, 6))
        return results

    # ----------------------------------------------------------------- ASE entry point
    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        wants_stress = any(p in ("stress", "stresses") for p in properties)
        if wants_stress and not atoms.pbc.all():
            raise PropertyNotImplementedError(
                f"stress needs a cell periodic in all three directions, but pbc = "
                f"{atoms.pbc.tolist()}; set atoms.pbc = True with a 3-D cell, or ask only for "
                "energy and forces"
            )
        if wants_stress and abs(np.linalg.det(atoms.cell.array)) == 0.0:
            raise AtomsInputError(f"stress needs a cell with non-zero volume, got cell {atoms.cell.array.tolist()}")
        if len(atoms) == 0:
            self.results = self._empty_results(atoms)
            return
        inputs = self.inputs(atoms)
        # Per-atom virials ("stresses") cost a scatter of 9 numbers per edge; only when asked
        # (ASE calls calculate() again for a property missing from the results).
        outputs = self.evaluate(inputs, atom_virial="stresses" in properties)
        self.results = self.results_from(outputs, atoms)
