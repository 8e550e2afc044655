"""Batching frames of different sizes into one graph, and seeded splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mdval.data.batch import iterate_batches, make_batch, precompute_neighbors
from mdval.data.frames import Frame
from mdval.data.neighbors import neighbor_list
from mdval.data.splits import load_splits, save_splits, split_frames

FLOAT64_ATOL = 1e-10
CUTOFF_A = 3.0


def _frame(n, symbols, seed, pbc=(True, True, True), virial=True, index=0):
    rng = np.random.default_rng(seed)
    cell = np.diag([4.0, 5.0, 6.0]) + np.triu(rng.uniform(-0.5, 0.5, (3, 3)), 1)
    return Frame(
        symbols=[symbols[k % len(symbols)] for k in range(n)],
        positions=rng.uniform(0, 1, (n, 3)) @ cell,
        cell=cell,
        pbc=pbc,
        energy=float(-n),
        forces=rng.normal(size=(n, 3)),
        virial=rng.normal(size=(3, 3)) if virial else None,
        source="mem.xyz",
        index=index,
    )


def test_batch_offsets_labels_and_edges():
    frames = [_frame(5, ["Cu"], 1), _frame(3, ["Ag", "Cu"], 2, pbc=(True, False, True), virial=False, index=1)]
    batch = make_batch(frames, ["Cu", "Ag"], CUTOFF_A)
    assert batch.n_local == batch.n_atoms == 8 and batch.n_frames == 2
    assert batch.species.tolist() == [0, 0, 0, 0, 0, 1, 0, 1]
    assert batch.frame_index.tolist() == [0] * 5 + [1] * 3
    assert batch.n_atoms_per_frame.tolist() == [5.0, 3.0]
    assert batch.energy.tolist() == [-5.0, -3.0]
    assert batch.has_virial.tolist() == [True, False] and torch.all(batch.virial[1] == 0)
    np.testing.assert_allclose(batch.virial[0].numpy(), frames[0].virial, atol=FLOAT64_ATOL)
    np.testing.assert_allclose(batch.forces.numpy(), np.concatenate([f.forces for f in frames]), atol=FLOAT64_ATOL)
    assert batch.volume[0].item() == pytest.approx(120.0, abs=FLOAT64_ATOL)
    # Edges of frame 1 are those of its own list, offset by 5; none crosses frames.
    nl1 = neighbor_list(frames[1].positions, frames[1].cell, frames[1].pbc, CUTOFF_A)
    in_second = batch.edge_index[0] >= 5
    assert torch.equal(batch.edge_index[:, in_second], torch.from_numpy(np.stack([nl1.centers, nl1.neighbors]) + 5))
    np.testing.assert_allclose(batch.edge_vectors[in_second].numpy(), nl1.vectors, atol=FLOAT64_ATOL)
    assert torch.all(batch.frame_index[batch.edge_index[0]] == batch.frame_index[batch.edge_index[1]])
    assert batch.edge_vectors.dtype == torch.float64 and batch.edge_index.dtype == torch.int64


def test_edge_vectors_are_fresh_leaves_even_with_cache():
    frames = [_frame(4, ["Cu"], 3)]
    cache = precompute_neighbors(frames, CUTOFF_A)
    first = make_batch(frames, ["Cu"], CUTOFF_A, cache)
    first.edge_vectors.requires_grad_()
    first.edge_vectors.data.add_(1.0)  # must not leak into the cache or the next batch
    second = make_batch(frames, ["Cu"], CUTOFF_A, cache)
    assert second.edge_vectors.is_leaf and not second.edge_vectors.requires_grad
    assert cache.hits == 2 and cache.misses == 1
    assert not torch.allclose(first.edge_vectors.detach(), second.edge_vectors)
    as32 = second.to(dtype=torch.float32)
    assert as32.edge_vectors.dtype == torch.float32 and as32.species.dtype == torch.int64


def test_unknown_element_message():
    frames = [_frame(2, ["Cu"], 1), _frame(2, ["Ni"], 1, index=7)]
    with pytest.raises(ValueError) as error:
        make_batch(frames, ["Cu", "Ag"], CUTOFF_A)
    assert str(error.value) == (
        "mem.xyz frame 7: element 'Ni' is not in the type map ['Cu', 'Ag']; add it to type_names or remove this frame"
    )


def test_empty_batch_message():
    with pytest.raises(ValueError) as error:
        make_batch([], ["Cu"], CUTOFF_A)
    assert str(error.value) == "make_batch: no frames; the data set is empty"


def test_iterate_batches_covers_every_frame_once_reproducibly():
    frames = [_frame(2 + k % 3, ["Cu"], k, index=k) for k in range(7)]

    def energies(seed):
        return [
            e
            for b in iterate_batches(frames, 3, True, seed, type_names=["Cu"], cutoff=CUTOFF_A)
            for e in b.energy.tolist()
        ]

    assert sorted(energies(0)) == sorted(f.energy for f in frames)
    assert energies(0) == energies(0)
    sizes = [b.n_frames for b in iterate_batches(frames, 3, False, 0, type_names=["Cu"], cutoff=CUTOFF_A)]
    assert sizes == [3, 3, 1]


def test_splits_disjoint_reproducible_and_saved(tmp_path):
    splits = split_frames(101, (0.8, 0.1, 0.1), seed=5)
    joined = np.concatenate([splits["train"], splits["validation"], splits["test"]])
    assert sorted(joined.tolist()) == list(range(101))
    assert [len(splits[k]) for k in ("train", "validation", "test")] == [81, 10, 10]
    assert all(np.array_equal(splits[k], split_frames(101, seed=5)[k]) for k in splits)
    assert not np.array_equal(splits["test"], split_frames(101, seed=6)["test"])
    save_splits(tmp_path / "run" / "splits.json", splits, seed=5, fractions=(0.8, 0.1, 0.1))
    loaded = load_splits(tmp_path / "run" / "splits.json")
    assert all(np.array_equal(loaded[k], splits[k]) for k in splits)
    with pytest.raises(ValueError, match="data set is empty"):
        split_frames(0)
    with pytest.raises(ValueError, match="summing to 1"):
        split_frames(10, (0.5, 0.1, 0.1))
