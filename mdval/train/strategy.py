"""The interface between the trainer and its optimizers (Adam, EKF, RLEKF).

A *strategy* performs the parameter updates for one batch. Gradient methods (Adam) minimise a
weighted loss; Kalman filters (EKF, RLEKF) have no loss and assimilate measurements instead, so
the trainer hands each strategy the batch and the current loss weights and lets it decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from torch import nn


@dataclass(frozen=True)
class LossWeights:
    """Loss prefactors at the current step (DeePMD-style schedules give these).

    - ``energy``: on ΔE²/N, the squared total-energy error over the atom count (eV²/atom)^-1,
      as DeePMD-kit (see :mod:`mdval.train.loss`);
    - ``forces``: on force components (eV/Å)^-2;
    - ``virial``: on ΔW²/N per virial component (eV²/atom)^-1, for frames that have one;
    - ``slope_recovery``: weight of the LAAF slope-recovery term (0 disables it);
    - ``label_scale``: labels and predictions are divided by this (IReLU paper's rescaling,
      a power of ten C; 1 disables it).
    """

    energy: float = 1.0
    forces: float = 100.0
    virial: float = 0.0
    slope_recovery: float = 0.0
    label_scale: float = 1.0


class Strategy(Protocol):
    """One optimizer, as the trainer drives it."""

    name: str

    def step(self, model: nn.Module, batch, weights: LossWeights, step: int) -> dict[str, float]:
        """Update ``model`` in place from ``batch`` (a mdval.data.batch.Batch).

        Returns scalar diagnostics for the log, at least ``loss`` (or the Kalman analogue, the
        mean squared normalised error) and ``lr`` where it applies.
        """
        ...

    def state_dict(self) -> dict:
        """Everything needed to resume exactly (tensors and plain Python values only, so that
        ``torch.load(..., weights_only=True)`` reads it back)."""
        ...

    def load_state_dict(self, state: dict) -> None: ...
