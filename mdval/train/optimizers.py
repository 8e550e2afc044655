"""The optimizer registry: a name from ``[optimizer] name`` -> a Strategy for the trainer."""

from __future__ import annotations

from torch import nn

from mdval.train.loss import LRSchedule

OPTIMIZER_NAMES: tuple[str, ...] = ("adam", "ekf", "rlekf")


def make_strategy(name: str, model: nn.Module, options: dict | None, schedule: LRSchedule):
    """The strategy ``name`` (adam | ekf | rlekf) for ``model``; ``options`` is the
    ``[optimizer]`` table. Kalman filters are imported only when asked for."""
    key = str(name).lower()
    if key == "adam":
        from mdval.train.adam import AdamStrategy

        return AdamStrategy(model, options, schedule)
    if key in ("ekf", "rlekf"):
        from mdval.train.kalman import make_kalman_strategy

        return make_kalman_strategy(key, model, dict(options or {}))
    raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZER_NAMES)}")
