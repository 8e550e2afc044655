"""Full neighbour lists for the model ABI (DESIGN.md section 3), by vesin, with a small cache.

A neighbour list holds every ordered pair (i, j, S) of atoms with

    r_ij = r_j - r_i + S @ cell,    |r_ij| < cutoff,

where ``S`` is an integer cell shift (zero along non-periodic directions). Both directions of
every pair are present; periodic self-images (i == j, S != 0) are present when the cell is
smaller than the cutoff; the trivial self pair (i, i, 0) never is.

This module is used at inference time (ASE calculator) as well as in training: it imports only
numpy, vesin and (for grids vesin cannot handle) ASE's neighbour list.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import vesin


@dataclass(frozen=True)
class NeighborList:
    """A full neighbour list; ``E`` is the number of ordered pairs (edges).

    ============  ================  ====  ==================================================
    field         shape / dtype     unit  meaning
    ============  ================  ====  ==================================================
    centers       [E] int64         -     centre atom i of each edge
    neighbors     [E] int64         -     neighbour atom j of each edge
    shifts        [E, 3] int64      -     integer cell shift S of the image of j
    vectors       [E, 3] float64    Å     r_j - r_i + S @ cell
    cutoff        float             Å     the cutoff the list was built with
    ============  ================  ====  ==================================================
    """

    centers: np.ndarray
    neighbors: np.ndarray
    shifts: np.ndarray
    vectors: np.ndarray
    cutoff: float

    @property
    def n_edges(self) -> int:
        return int(self.centers.shape[0])


def _check_inputs(positions, cell, pbc, cutoff) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    cell = np.ascontiguousarray(cell, dtype=np.float64)
    pbc = np.asarray(pbc, dtype=bool).reshape(-1)
    if pbc.size == 1:
        pbc = np.repeat(pbc, 3)
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"positions must have shape [N, 3] (Å), got {positions.shape}")
    if cell.shape != (3, 3):
        raise ValueError(f"cell must have shape [3, 3] (rows are cell vectors, Å), got {cell.shape}")
    if pbc.shape != (3,):
        raise ValueError(f"pbc must be 3 booleans, got {pbc.tolist()}")
    if not np.isfinite(cutoff) or cutoff <= 0.0:
        raise ValueError(f"cutoff must be a positive number of Å, got {cutoff}")
    if not np.all(np.isfinite(positions)):
        raise ValueError("positions contain NaN or inf; cannot build a neighbour list")
    if pbc.any():
        periodic = cell[pbc]
        if np.linalg.matrix_rank(periodic) < periodic.shape[0] or np.any(np.linalg.norm(periodic, axis=1) == 0.0):
            raise ValueError(
                f"the cell vectors along periodic directions {np.nonzero(pbc)[0].tolist()} are zero "
                f"or linearly dependent (cell = {cell.tolist()}); give a proper cell or set pbc=False"
            )
    return positions, cell, pbc


#: vesin's cell-list limit (MAX_NUMBER_OF_CELLS in its cpu_cell_list.cpp): above it, vesin scales
#: its grid of cells down, keeping the ratios between directions.
VESIN_MAX_CELLS = 1e5


def vesin_grid_is_safe(positions, cell, pbc, cutoff: float) -> bool:
    """Whether vesin's cell grid keeps at least two cells along every direction.

    When vesin scales a very uneven grid down (a wide thin slab, a cluster whose atoms flew far
    apart), a direction can round to zero cells, and vesin 0.6 then divides by zero: SIGFPE kills
    the whole process, with no Python error. Such grids are rare (above 1e5 cells of cutoff size);
    for them :func:`neighbor_list` uses ASE's list instead."""
    extent = np.ptp(positions, axis=0) + 2.0 * cutoff if len(positions) else np.zeros(3)
    lengths = np.linalg.norm(cell, axis=1)
    if pbc.all():
        volume = abs(np.linalg.det(cell))
        lengths = volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    n_cells = np.maximum(1.0, np.trunc(np.where(pbc, lengths, extent) / cutoff))
    total = float(np.prod(n_cells))
    return total <= VESIN_MAX_CELLS or float(n_cells.min()) * np.cbrt(VESIN_MAX_CELLS / total) >= 2.0


def _ase_pairs(positions, cell, pbc, cutoff: float):
    """(i, j, S) by ASE's neighbour list: slower than vesin, but safe on any grid."""
    from ase.neighborlist import primitive_neighbor_list

    return primitive_neighbor_list("ijS", pbc, cell, positions, float(cutoff), self_interaction=False)


def _as_int64(index: np.ndarray) -> np.ndarray:
    """vesin's uint64 indices as int64 (a view: indices are far below 2^63)."""
    if index.dtype == np.uint64:
        return index.view(np.int64)
    return index.astype(np.int64, copy=False)


def neighbor_list(positions, cell, pbc, cutoff: float) -> NeighborList:
    """Full neighbour list of atoms at ``positions`` (Å, [N, 3]) in ``cell`` (Å, rows are the
    cell vectors) with periodicity ``pbc`` (3 booleans, any subset), within ``cutoff`` (Å).

    O(N) cell list (vesin); the edges come grouped by centre. Triclinic cells and cells smaller
    than the cutoff are supported; along non-periodic directions the cell vector is ignored (it
    may be zero) and the shift is 0.
    """
    positions, cell, pbc = _check_inputs(positions, cell, pbc, cutoff)
    n_atoms = positions.shape[0]
    if n_atoms == 0:
        empty = np.zeros(0, dtype=np.int64)
        return NeighborList(empty, empty.copy(), np.zeros((0, 3), np.int64), np.zeros((0, 3)), float(cutoff))
    # Edges grouped by centre: vesin's unsorted (cell-list) order and a stable sort by centre cost
    # less than vesin's own full (i, j) sort. With copy=False the arrays are vesin's buffers, so
    # every one is copied (gathered or converted) before the calculator goes away.
    if vesin_grid_is_safe(positions, cell, pbc, cutoff):
        calculator = vesin.NeighborList(cutoff=float(cutoff), full_list=True, sorted=False, n_threads=1)
        i, j, shifts = calculator.compute(positions, cell, pbc.tolist(), quantities="ijS", copy=False)
    else:
        i, j, shifts = _ase_pairs(positions, cell, pbc, cutoff)
    i = _as_int64(np.asarray(i))
    j = _as_int64(np.asarray(j))
    shifts = np.asarray(shifts).reshape(-1, 3)
    if i.size > 1 and (i[1:] < i[:-1]).any():
        order = np.argsort(i, kind="stable")
        j, shifts = j[order], shifts[order]
        i = np.repeat(np.arange(n_atoms, dtype=np.int64), np.bincount(i, minlength=n_atoms))
    else:
        i, j, shifts = i.copy(), j.copy(), shifts.copy()
    shifts = shifts.astype(np.int64, copy=False)
    # Vectors from our own formula, so they are exactly r_j - r_i + S @ cell in float64; S @ cell
    # only where S != 0 (most edges of a large cell), which gives the same bits 4x faster.
    vectors = np.take(positions, j, axis=0)
    vectors -= np.take(positions, i, axis=0)
    is_shifted = shifts.any(axis=1)
    shifted = np.flatnonzero(is_shifted)
    if shifted.size:
        vectors[shifted] += shifts[shifted].astype(np.float64) @ cell
    keep = np.einsum("ed,ed->e", vectors, vectors) < float(cutoff) ** 2
    keep &= ~((i == j) & ~is_shifted)
    if not keep.all():
        i, j, shifts, vectors = i[keep], j[keep], shifts[keep], vectors[keep]
    return NeighborList(i, j, shifts, vectors, float(cutoff))


def frame_key(positions, cell, pbc, cutoff: float) -> str:
    """A hash of the exact bytes of positions, cell, pbc and cutoff: the neighbour-cache key."""
    digest = hashlib.blake2b(digest_size=20)
    for array, dtype in ((positions, np.float64), (cell, np.float64), (pbc, np.bool_)):
        a = np.ascontiguousarray(array, dtype=dtype)
        digest.update(str(a.shape).encode())
        digest.update(a.tobytes())
    digest.update(np.float64(cutoff).tobytes())
    return digest.hexdigest()


class NeighborCache:
    """An in-memory cache of neighbour lists keyed on :func:`frame_key`.

    ``max_entries`` bounds memory (least recently used entries are dropped); ``None`` keeps all,
    which is what training wants: each frame's list is computed once for the whole run.
    """

    def __init__(self, max_entries: int | None = None) -> None:
        self.max_entries = max_entries
        self._store: OrderedDict[str, NeighborList] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    def get(self, positions, cell, pbc, cutoff: float) -> NeighborList:
        key = frame_key(positions, cell, pbc, cutoff)
        found = self._store.get(key)
        if found is not None:
            self.hits += 1
            self._store.move_to_end(key)
            return found
        self.misses += 1
        result = neighbor_list(positions, cell, pbc, cutoff)
        self._store[key] = result
        if self.max_entries is not None:
            while len(self._store) > self.max_entries:
                self._store.popitem(last=False)
        return result

    def clear(self) -> None:
        self._store.clear()
        self.hits = self.misses = 0
