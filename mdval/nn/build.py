"""Build a model from its config dict (the same dict that checkpoints and model files carry)."""

from __future__ import annotations

from torch import nn

from mdval.options import Rule, check, toml_text

ARCHITECTURES: tuple[str, ...] = ("deeppot_se", "behler_parrinello")

#: What each model option may be (both architectures; relations such as cutoff_smooth < cutoff
#: and the Behler-Parrinello symmetry-function lists are checked by the model classes).
#: Checked before the model is built, so that a quoted number or a flag in the wrong place gets
#: a message naming the option, not a TypeError from deep inside torch.
OPTION_RULES: dict[str, Rule] = {
    "architecture": Rule("text", example="deeppot_se"),
    "type_names": Rule("texts", example=["Cu"]),
    "cutoff": Rule("number", 0, open_low=True, note="Å", example=6.0),
    "cutoff_smooth": Rule("number", 0, note="Å", example=0.5),
    "embedding": Rule("wholes", 1, note="layer widths", example=[25, 25, 25]),
    "fitting": Rule("wholes", 1, note="layer widths", example=[50, 50, 50]),
    "axis_neuron": Rule("whole", 1, example=16),
    "neighbor_norm": Rule("number", 0, open_low=True, note="about the neighbours within the cutoff", example=64.0),
    "descriptor_centering": Rule("flag", example=True),
    "activation": Rule("text", example="tanh"),
    "embedding_activation": Rule("text", optional=True, example="tanh"),
    "fitting_activation": Rule("text", optional=True, example="tanh"),
    "seed": Rule("whole", 0, example=0),
    "n_radial": Rule("whole", 1, example=10),
    "radial_start": Rule("number", 0, note="Å", example=1.5),
    "radial_eta": Rule("number", 0, open_low=True, optional=True, note="1/Å²", example=1.0),
}


def check_options(config: dict) -> None:
    """Refuse a model option of the wrong type or range (see :data:`OPTION_RULES`)."""
    for key, rule in OPTION_RULES.items():
        if key in config:
            check(f"model option {key}", config[key], rule, lambda v, key=key: f"{key} = {toml_text(v)}")


def build_model(config: dict) -> nn.Module:
    """A new float64 model from ``config``; ``config["architecture"]`` picks the class.

    Raises ``ValueError`` for an unknown architecture (listing the valid names) and for an
    option of the wrong type or range.
    """
    check_options(config)
    arch = config.get("architecture", "deeppot_se")
    if arch == "deeppot_se":
        from mdval.nn.deeppot import DeepPotSE

        return DeepPotSE({**config, "architecture": arch})
    if arch == "behler_parrinello":
        from mdval.nn.behler import BehlerParrinello

        return BehlerParrinello({**config, "architecture": arch})
    raise ValueError(f"unknown architecture {arch!r}; valid: {', '.join(ARCHITECTURES)}")
