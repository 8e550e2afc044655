"""Batch frames of any size into one disjoint graph in the model ABI's inputs (DESIGN.md §3).

All atoms of all frames are local nodes; periodic images are represented only through the
edge vectors (no ghost nodes), so ``n_local == n_atoms``. Edge indices are offset by each
frame's first atom, so one forward call gives every atom's energy and
``energy[f] = Σ_{i in f} atom_energy[i]`` (``index_add`` over ``frame_index``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mdval.data.frames import Frame, check_elements
from mdval.data.neighbors import NeighborCache, neighbor_list


@dataclass
class Batch:
    """Frames joined into one graph; float tensors are float64 unless moved with :meth:`to`.

    =================  ======================  =====  ==========================================
    field              shape / dtype           unit   meaning
    =================  ======================  =====  ==========================================
    species            [n_atoms] int64         -      index into ``type_names``
    edge_index         [2, E] int64            -      row 0 centre i, row 1 neighbour j
    edge_vectors       [E, 3] float            Å      r_j - r_i + S @ cell (fresh leaf tensor)
    n_local            int                     -      = n_atoms (no ghost nodes)
    frame_index        [n_atoms] int64         -      frame of each atom (0..n_frames-1)
    n_frames           int                     -      number of frames
    n_atoms_per_frame  [n_frames] float        -      atom count of each frame
    energy             [n_frames] float        eV     total energy label
    forces             [n_atoms, 3] float      eV/Å   force labels (zeros where ``has_forces`` is False)
    has_forces         [n_atoms] bool          -      whether the atom's frame had forces
    virial             [n_frames, 3, 3] float  eV     W = -σV (zeros where ``has_virial`` is False)
    has_virial         [n_frames] bool         -      whether the frame had a virial label
    volume             [n_frames] float        Å³     cell volume (0 for a non-periodic frame)
    =================  ======================  =====  ==========================================
    """

    species: torch.Tensor
    edge_index: torch.Tensor
    edge_vectors: torch.Tensor
    n_local: int
    frame_index: torch.Tensor
    n_frames: int
    n_atoms_per_frame: torch.Tensor
    energy: torch.Tensor
    forces: torch.Tensor
    has_forces: torch.Tensor
    virial: torch.Tensor
    has_virial: torch.Tensor
    volume: torch.Tensor

    @property
    def n_atoms(self) -> int:
        return int(self.species.shape[0])

    def to(self, device=None, dtype: torch.dtype | None = None) -> Batch:
        """A copy on ``device`` with floating tensors cast to ``dtype``; integer tensors and
        masks keep their dtype. ``edge_vectors`` of the copy is again a fresh leaf tensor."""
        values = {}
        for name, value in self.__dict__.items():
            if isinstance(value, torch.Tensor):
                if value.is_floating_point() and dtype is not None:
                    value = value.detach().to(device=device, dtype=dtype)
                else:
                    value = value.detach().to(device=device)
                if name == "edge_vectors":
                    value = value.clone()
            values[name] = value
        return Batch(**values)


def species_indices(frame: Frame, type_names: Sequence[str]) -> np.ndarray:
    """Species index of each atom of ``frame`` in ``type_names``; unknown element -> ValueError."""
    check_elements(frame, type_names)
    lookup = {name: k for k, name in enumerate(type_names)}
    return np.array([lookup[s] for s in frame.symbols], dtype=np.int64)


def make_batch(
    frames: Sequence[Frame],
    type_names: Sequence[str],
    cutoff: float,
    neighbor_cache: NeighborCache | None = None,
) -> Batch:
    """Join ``frames`` into one :class:`Batch` with neighbour lists of radius ``cutoff`` (Å).

    ``neighbor_cache`` (optional) reuses lists across calls; each call returns new tensors.
    """
    if len(frames) == 0:
        raise ValueError("make_batch: no frames; the data set is empty")
    species, centers, neighbors, vectors = [], [], [], []
    frame_index, energy, n_atoms_per_frame, volume = [], [], [], []
    forces, has_forces, virial, has_virial = [], [], [], []
    offset = 0
    for k, frame in enumerate(frames):
        n = frame.n_atoms
        species.append(species_indices(frame, type_names))
        if neighbor_cache is not None:
            nl = neighbor_cache.get(frame.positions, frame.cell, frame.pbc, cutoff)
        else:
            nl = neighbor_list(frame.positions, frame.cell, frame.pbc, cutoff)
        centers.append(nl.centers + offset)
        neighbors.append(nl.neighbors + offset)
        vectors.append(nl.vectors)
        frame_index.append(np.full(n, k, dtype=np.int64))
        energy.append(frame.energy)
        n_atoms_per_frame.append(float(n))
        volume.append(frame.volume if frame.pbc.any() else 0.0)
        forces.append(frame.forces if frame.forces is not None else np.zeros((n, 3)))
        has_forces.append(np.full(n, frame.forces is not None))
        virial.append(frame.virial if frame.virial is not None else np.zeros((3, 3)))
        has_virial.append(frame.virial is not None)
        offset += n

    def f64(array) -> torch.Tensor:
        return torch.tensor(np.asarray(array, dtype=np.float64), dtype=torch.float64)

    return Batch(
        species=torch.from_numpy(np.concatenate(species)),
        edge_index=torch.from_numpy(np.stack([np.concatenate(centers), np.concatenate(neighbors)])),
        edge_vectors=f64(np.concatenate(vectors).reshape(-1, 3)),
        n_local=offset,
        frame_index=torch.from_numpy(np.concatenate(frame_index)),
        n_frames=len(frames),
        n_atoms_per_frame=f64(n_atoms_per_frame),
        energy=f64(energy),
        forces=f64(np.concatenate(forces).reshape(-1, 3)),
        has_forces=torch.from_numpy(np.concatenate(has_forces)),
        virial=f64(np.stack(virial)),
        has_virial=torch.tensor(has_virial, dtype=torch.bool),
        volume=f64(volume),
    )


def iterate_batches(
    frames: Sequence[Frame],
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    *,
    type_names: Sequence[str],
    cutoff: float,
    neighbor_cache: NeighborCache | None = None,
    epoch: int = 0,
) -> Iterator[Batch]:
    """Yield batches of up to ``batch_size`` frames; with ``shuffle``, the order is a
    permutation drawn from ``numpy.random.default_rng((seed, epoch))`` (reproducible per epoch)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(frames) == 0:
        raise ValueError("iterate_batches: no frames; the data set is empty")
    order = np.arange(len(frames))
    if shuffle:
        order = np.random.default_rng((seed, epoch)).permutation(len(frames))
    for start in range(0, len(frames), batch_size):
        chunk = [frames[i] for i in order[start : start + batch_size]]
        yield make_batch(chunk, type_names, cutoff, neighbor_cache)


def precompute_neighbors(
    frames: Sequence[Frame], cutoff: float, cache: NeighborCache | None = None, progress: bool = False
) -> NeighborCache:
    """Fill (and return) a cache with the neighbour list of every frame, once for a whole run."""
    cache = cache if cache is not None else NeighborCache()
    iterable = frames
    if progress:
        from tqdm import tqdm

        iterable = tqdm(frames, desc="neighbour lists", unit="frame")
    for frame in iterable:
        cache.get(frame.positions, frame.cell, frame.pbc, cutoff)
    return cache
