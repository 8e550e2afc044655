"""The test structures of the model-file contract check (mdval/deploy/check.py), their neighbour
lists, and energies and forces computed from a model's output as the ASE calculator and
``pair_style taafs`` compute them.

Structures are built with ASE from a model's ``type_names``: rattled fcc cells and small
icosahedral clusters (:func:`probe_structures`). A :class:`Graph` is a full neighbour list from
``mdval.data.neighbors`` kept fixed while atoms move (for finite differences), which gives the
ABI inputs with periodic images in the edge vectors (ASE) or as ghost nodes (LAMMPS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from ase.build import bulk
from ase.cluster import Icosahedron
from ase.data import atomic_numbers, covalent_radii, reference_states

from mdval.data.neighbors import neighbor_list
from mdval.deploy.model_file import ModelFile

RATTLE_A = 0.05  # rattle of the test structures (Å): no force vanishes by symmetry


@dataclass(frozen=True)
class Structure:
    """A test structure: positions [N, 3] (Å), cell [3, 3] (Å, rows), pbc [3], species [N]."""

    name: str
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    species: np.ndarray

    def moved(self, positions: np.ndarray, cell: np.ndarray | None = None) -> Structure:
        return replace(self, positions=positions, cell=self.cell if cell is None else cell)


def lattice_constant_A(name: str) -> float:
    """The fcc lattice constant (Å) used for element ``name``: ASE's reference one where the
    element is fcc, else nearest neighbours at twice the covalent radius; Cu's for a name that is
    no element symbol (a hand-written potential may use any names)."""
    z = atomic_numbers.get(name, atomic_numbers["Cu"])
    state = reference_states[z] or {}
    if state.get("symmetry") == "fcc":
        return float(state["a"])
    return 2.0 * math.sqrt(2.0) * float(covalent_radii[z])


def probe_structures(type_names: list[str], rng: np.random.Generator) -> list[Structure]:
    """The rattled fcc cells (one per element, and a mixed one), the cluster, the isolated atom."""
    n_types = len(type_names)

    def mixed(n_atoms: int) -> np.ndarray:  # every species, in random places
        return rng.permutation(np.arange(n_atoms) % n_types).astype(np.int64)

    def fcc(name: str, species: np.ndarray, a: float) -> Structure:
        atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat(2)
        positions = atoms.positions + rng.normal(0.0, RATTLE_A, atoms.positions.shape)
        return Structure(name, positions, atoms.cell.array.copy(), np.ones(3, bool), species)

    cells = [
        fcc(f"fcc {name} cell", np.full(32, k, np.int64), lattice_constant_A(name)) for k, name in enumerate(type_names)
    ]
    if n_types > 1:
        cells.append(fcc("mixed fcc cell", mixed(32), lattice_constant_A(type_names[0])))
    return cells + [
        cluster(type_names, rng, "cluster"),
        Structure("isolated atom", np.zeros((1, 3)), np.zeros((3, 3)), np.zeros(3, bool), np.zeros(1, np.int64)),
    ]


def cluster(type_names: list[str], rng: np.random.Generator, name: str) -> Structure:
    """A rattled 13-atom icosahedron of all species, centred at the origin, without a cell."""
    atoms = Icosahedron("Cu", 2, latticeconstant=lattice_constant_A(type_names[0]))
    positions = atoms.positions - atoms.positions.mean(axis=0)
    positions += rng.normal(0.0, RATTLE_A, positions.shape)
    species = rng.permutation(np.arange(len(atoms)) % len(type_names)).astype(np.int64)
    return Structure(name, positions, np.zeros((3, 3)), np.zeros(3, bool), species)


def beyond(first: Structure, second: Structure, distance_A: float) -> Structure:
    """``first`` and ``second`` as one structure, ``second`` shifted along x until its nearest atom
    is ``distance_A`` from the nearest atom of ``first``."""
    offset = np.array([first.positions[:, 0].max() - second.positions[:, 0].min(), 0.0, 0.0])
    while True:
        gaps = np.linalg.norm(first.positions[:, None] - (second.positions + offset)[None], axis=2)
        short = distance_A - gaps.min()
        if short <= 1e-9:
            break
        offset[0] += short
    return replace(
        first,
        name=f"{first.name} and {second.name}",
        positions=np.concatenate((first.positions, second.positions + offset)),
        species=np.concatenate((first.species, second.species)),
    )


@dataclass(frozen=True)
class Graph:
    """A full neighbour list of a structure, kept fixed while its atoms move."""

    species: np.ndarray
    centers: np.ndarray
    neighbors: np.ndarray
    shifts: np.ndarray  # [E, 3] float64 cell shifts S of the image of j
    cell: np.ndarray

    @classmethod
    def of(cls, structure: Structure, radius_A: float) -> Graph:
        nl = neighbor_list(structure.positions, structure.cell, structure.pbc, radius_A)
        return cls(structure.species, nl.centers, nl.neighbors, nl.shifts.astype(np.float64), structure.cell)

    def vectors(self, positions: np.ndarray) -> np.ndarray:
        """Edge vectors r_j - r_i + S @ cell (Å) of atoms at ``positions``."""
        return positions[self.neighbors] - positions[self.centers] + self.shifts @ self.cell

    def inputs(self, positions: np.ndarray, device: torch.device, ghosts: bool = False) -> tuple:
        """The ABI inputs; with ``ghosts``, each edge to a periodic image goes to a node of its
        own after the local atoms, with that atom's species (a LAMMPS ghost atom)."""
        n_local = len(self.species)
        species, neighbors = self.species, self.neighbors
        if ghosts:
            images = np.flatnonzero(self.shifts.any(axis=1))
            neighbors = neighbors.copy()
            neighbors[images] = n_local + np.arange(len(images))
            species = np.concatenate((species, species[self.neighbors[images]]))
        # Fresh tensors (torch.tensor copies): a model that writes into its inputs must not
        # change the structure for the checks after it.
        return (
            torch.tensor(species, device=device),
            torch.tensor(np.stack((self.centers, neighbors)), device=device),
            torch.tensor(self.vectors(positions), device=device),
            n_local,
        )


@dataclass(frozen=True)
class Result:
    """Per-atom energies [N] (eV), forces [N, 3] (eV/Å) and dE/d(edge vectors) [E, 3] (eV/Å)."""

    energies: np.ndarray
    forces: np.ndarray
    edge_grad: np.ndarray


def evaluate(model_file: ModelFile, graph: Graph, positions: np.ndarray, *, ghosts: bool = False) -> Result:
    """Energies and forces as callers get them: one autograd pass on the edge vectors, then
    F_i += g, F_j -= g (a ghost's force goes to its atom, as LAMMPS' reverse communication does)."""
    species, edge_index, vectors, n_local = graph.inputs(positions, model_file.device, ghosts)
    vectors.requires_grad_(True)
    with torch.enable_grad():
        energies = model_file(species, edge_index, vectors, n_local)
        grad = torch.zeros_like(vectors)
        if vectors.shape[0] and energies.requires_grad:
            (found,) = torch.autograd.grad(energies.sum(), vectors, allow_unused=True)
            grad = grad if found is None else found
    centers = torch.from_numpy(graph.centers).to(grad.device)
    neighbors = torch.from_numpy(graph.neighbors).to(grad.device)
    forces = torch.zeros(n_local, 3, dtype=grad.dtype, device=grad.device)
    forces = forces.index_add(0, centers, grad).index_add(0, neighbors, -grad)
    return Result(energies.detach().cpu().numpy(), forces.cpu().numpy(), grad.cpu().numpy())


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A random proper rotation matrix [3, 3] (QR of a Gaussian matrix, det +1)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q
