"""Build a model from its config dict (the same dict that checkpoints and model files carry)."""

from __future__ import annotations

from torch import nn

ARCHITECTURES: tuple[str, ...] = ("deeppot_se", "behler_parrinello")


def build_model(config: dict) -> nn.Module:
    """A new float64 model from ``config``; ``config["architecture"]`` picks the class.

    Raises ``ValueError`` for an unknown architecture, listing the valid names.
    """
    arch = config.get("architecture", "deeppot_se")
    if arch == "deeppot_se":
        from mdval.nn.deeppot import DeepPotSE

        return DeepPotSE({**config, "architecture": arch})
    if arch == "behler_parrinello":
        from mdval.nn.behler import BehlerParrinello

        return BehlerParrinello({**config, "architecture": arch})
    raise ValueError(f"unknown architecture {arch!r}; valid: {', '.join(ARCHITECTURES)}")
