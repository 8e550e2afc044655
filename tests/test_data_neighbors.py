"""The vesin neighbour list against ase.neighborlist on random triclinic, mixed-PBC and tiny cells."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from ase.neighborlist import primitive_neighbor_list

from mdval.data.neighbors import NeighborCache, neighbor_list

FLOAT64_ATOL = 1e-10


def _random_system(rng, n_atoms, scale_A, tilt):
    cell = np.diag(rng.uniform(0.7, 1.3, size=3) * scale_A)
    cell += np.triu(rng.uniform(-tilt, tilt, size=(3, 3)) * scale_A, 1)
    cell = cell @ np.linalg.qr(rng.normal(size=(3, 3)))[0]  # general orientation
    positions = rng.uniform(-0.1, 1.1, size=(n_atoms, 3)) @ cell  # some atoms outside the cell
    return positions, cell


def _as_set(i, j, s):
    return {(int(a), int(b), *map(int, c)) for a, b, c in zip(i, j, s)}


def _check_against_ase(positions, cell, pbc, cutoff):
    nl = neighbor_list(positions, cell, pbc, cutoff)
    i, j, s = primitive_neighbor_list("ijS", pbc, cell, positions, cutoff, self_interaction=False)
    assert _as_set(nl.centers, nl.neighbors, nl.shifts) == _as_set(i, j, s)
    assert nl.n_edges == len(i)  # no duplicates
    expected = positions[nl.neighbors] - positions[nl.centers] + nl.shifts @ cell
    np.testing.assert_allclose(nl.vectors, expected, atol=FLOAT64_ATOL)
    assert np.all(np.linalg.norm(nl.vectors, axis=1) < cutoff)
    assert not np.any((nl.centers == nl.neighbors) & ~nl.shifts.any(axis=1))
    assert nl.centers.dtype == np.int64 and nl.shifts.dtype == np.int64
    assert np.all(np.diff(nl.centers) >= 0)  # grouped by centre (the chunked calculator relies on it)
    return nl


@pytest.mark.parametrize("pbc", list(itertools.product([True, False], repeat=3)))
def test_random_triclinic_any_pbc_matches_ase(pbc):
    rng = np.random.default_rng(sum(2**k * p for k, p in enumerate(pbc)))
    for _ in range(3):
        positions, cell = _random_system(rng, n_atoms=40, scale_A=9.0, tilt=0.4)
        _check_against_ase(positions, cell, np.array(pbc), cutoff=4.0)


@pytest.mark.parametrize("pbc", [(True, True, True), (True, False, True), (False, True, False)])
def test_cell_smaller_than_cutoff_has_self_images(pbc):
    rng = np.random.default_rng(7)
    positions, cell = _random_system(rng, n_atoms=3, scale_A=2.2, tilt=0.3)
    nl = _check_against_ase(positions, cell, np.array(pbc), cutoff=5.0)
    self_images = (nl.centers == nl.neighbors) & nl.shifts.any(axis=1)
    assert self_images.any()
    # Shifts only along periodic directions.
    assert not nl.shifts[:, ~np.array(pbc)].any()


def test_single_atom_tiny_cubic_cell_counts_shells():
    # One atom in a 1 Å cubic cell, cutoff 1.5 Å: images at |S| = 1 (6) and sqrt(2) (12).
    nl = neighbor_list(np.zeros((1, 3)), np.eye(3), [True] * 3, 1.5)
    assert nl.n_edges == 18
    assert np.all(nl.centers == 0) and np.all(nl.neighbors == 0)


def test_non_periodic_with_zero_cell():
    rng = np.random.default_rng(3)
    positions = rng.uniform(0, 6, size=(20, 3))
    _check_against_ase(positions, np.zeros((3, 3)), np.zeros(3, bool), cutoff=3.0)


def test_degenerate_periodic_cell_is_an_error():
    with pytest.raises(ValueError, match="zero or linearly dependent"):
        neighbor_list(np.zeros((2, 3)), np.diag([3.0, 3.0, 0.0]), [True, True, True], 2.0)


def test_cache_returns_same_list_without_recomputing():
    rng = np.random.default_rng(0)
    positions, cell = _random_system(rng, 10, 5.0, 0.2)
    cache = NeighborCache()
    first = cache.get(positions, cell, [True] * 3, 3.0)
    second = cache.get(positions.copy(), cell.copy(), [True] * 3, 3.0)
    assert second is first and cache.hits == 1 and cache.misses == 1
    moved = positions.copy()
    moved[0, 0] += 1e-9
    cache.get(moved, cell, [True] * 3, 3.0)
    cache.get(positions, cell, [True] * 3, 3.5)
    assert cache.misses == 3 and len(cache) == 3


# Grids vesin 0.6 cannot scale down (a direction rounds to zero cells, then SIGFPE kills the
# process): wide thin periodic cells, a 2-D slab, a cluster whose atoms flew apart.
UNEVEN_GRIDS = {
    "thin periodic cell": ([[0, 0, 0], [1.0, 1, 1]], np.diag([1300.0, 1300, 8]), [True] * 3, 2),
    "thinner periodic cell": ([[0, 0, 0], [1.0, 1, 1]], np.diag([1300.0, 1300, 4.1]), [True] * 3, 4),
    "wide 2-D slab": ([[0, 0, 0], [1.0, 1, 1]], np.diag([1300.0, 1300, 0]), [True, True, False], 2),
    "exploded cluster": ([[0, 0, 0], [4.2e5, 0, 0]], np.zeros((3, 3)), [False] * 3, 0),
}


@pytest.mark.parametrize("name", UNEVEN_GRIDS)
def test_grids_vesin_cannot_scale_down_do_not_kill_the_process(name):
    """Run in a child process: before the fix, the child died of SIGFPE (exit -8)."""
    import subprocess
    import sys

    positions, cell, pbc, n_edges = UNEVEN_GRIDS[name]
    code = (
        "import numpy as np; from mdval.data.neighbors import neighbor_list; "
        f"print(neighbor_list(np.array({positions!r}), np.array({cell.tolist()!r}), {pbc!r}, 4.0).n_edges)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-500:]
    assert int(proc.stdout) == n_edges  # counted by hand: the pair itself, and for 4.1 Å its z images


def test_the_ase_fallback_gives_the_vesin_list(monkeypatch):
    """With the cell limit lowered, every grid takes ASE's path: the same edges and vectors."""
    import mdval.data.neighbors as neighbors

    rng = np.random.default_rng(7)
    positions, cell = _random_system(rng, 60, 9.0, 0.3)
    for pbc in ([True] * 3, [True, False, True]):
        want = neighbor_list(positions, cell, pbc, 3.0)
        monkeypatch.setattr(neighbors, "VESIN_MAX_CELLS", 1.0)
        assert not neighbors.vesin_grid_is_safe(positions, cell, np.array(pbc), 3.0)
        got = neighbor_list(positions, cell, pbc, 3.0)
        monkeypatch.undo()
        assert _as_set(got.centers, got.neighbors, got.shifts) == _as_set(want.centers, want.neighbors, want.shifts)
        assert np.all(np.diff(got.centers) >= 0)  # grouped by centre, as the ABI callers expect
        order_got = np.lexsort((*got.shifts.T, got.neighbors, got.centers))
        order_want = np.lexsort((*want.shifts.T, want.neighbors, want.centers))
        np.testing.assert_allclose(got.vectors[order_got], want.vectors[order_want], rtol=0, atol=FLOAT64_ATOL)
