"""Neural-network building blocks: activations (fixed, IReLU, LAAF, TAAFS), MLPs, architectures.

Pure torch and TorchScript-safe; nothing here knows about files, ASE or LAMMPS.
"""

from mdval.nn.activations import (
    ACTIVATION_NAMES,
    ActivationBuilder,
    canonical_spec,
    make_activation,
    parse_activation_spec,
    slope_recovery,
)
from mdval.nn.bases import BASIS_NAMES
from mdval.nn.build import ARCHITECTURES, build_model
from mdval.nn.mlp import count_parameters

__all__ = [
    "ACTIVATION_NAMES",
    "ARCHITECTURES",
    "BASIS_NAMES",
    "ActivationBuilder",
    "build_model",
    "canonical_spec",
    "count_parameters",
    "make_activation",
    "parse_activation_spec",
    "slope_recovery",
]
