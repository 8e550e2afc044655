"""Train / validation / test splits drawn from a seed, saved with the run as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mdval import fileio

SPLIT_NAMES: tuple[str, ...] = ("train", "validation", "test")


def split_frames(n: int, fractions=(0.8, 0.1, 0.1), seed: int = 0) -> dict[str, np.ndarray]:
    """Disjoint index arrays ``{"train", "validation", "test"}`` covering ``range(n)``.

    A permutation from ``numpy.random.default_rng(seed)`` is cut at the cumulative fractions
    (rounded); the test set takes the remainder. Each array is sorted.
    """
    if n <= 0:
        raise ValueError(f"cannot split {n} frames; the data set is empty")
    fractions = np.asarray(fractions, dtype=np.float64)
    if fractions.shape != (3,) or np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise ValueError(
            f"fractions must be three non-negative numbers (train, validation, test) summing to 1, "
            f"got {fractions.tolist()}"
        )
    order = np.random.default_rng(seed).permutation(n)
    n_train = int(round(fractions[0] * n))
    n_validation = min(int(round(fractions[1] * n)), n - n_train)
    cuts = (order[:n_train], order[n_train : n_train + n_validation], order[n_train + n_validation :])
    return {name: np.sort(part).astype(np.int64) for name, part in zip(SPLIT_NAMES, cuts)}


def save_splits(path, splits: dict[str, np.ndarray], *, seed: int, fractions=None, data: dict | None = None) -> None:
    """Write the splits as JSON (atomically), with the seed, fractions and data description."""
    path = Path(path)
    record = {
        "seed": int(seed),
        "fractions": None if fractions is None else [float(f) for f in fractions],
        "data": data or {},
        **{name: [int(i) for i in splits[name]] for name in SPLIT_NAMES},
    }
    fileio.write_json(path, record)


def load_splits(path) -> dict[str, np.ndarray]:
    """Index arrays saved by :func:`save_splits`."""
    record = json.loads(Path(path).read_text())
    missing = [name for name in SPLIT_NAMES if name not in record]
    if missing:
        raise ValueError(f"{path}: not a splits file, missing {missing}; expected keys {list(SPLIT_NAMES)}")
    return {name: np.asarray(record[name], dtype=np.int64) for name in SPLIT_NAMES}
