"""Neural-network building blocks: activations (fixed, IReLU, LAAF, TAAFS), MLPs, architectures.

Pure torch and TorchScript-safe; nothing here knows about files, ASE or LAMMPS.
"""

from mdval.nn.activations import (
    ACTIVATION_NAMES,
    ActivationBuilder,
    ActivationSpec,
    canonical_spec,
    make_activation,
    parse_activation_spec,
    resolve_activations,
    slope_recovery,
    spec_label,
)
from mdval.nn.bases import BASIS_NAMES
from mdval.nn.build import ARCHITECTURES, build_model
from mdval.nn.introspect import (
    ActivationLayer,
    activation_layers,
    activations_from_metadata,
    activations_metadata,
    coefficient_record,
    logged_coefficients,
)
from mdval.nn.mlp import count_parameters

__all__ = [
    "ACTIVATION_NAMES",
    "ARCHITECTURES",
    "BASIS_NAMES",
    "ActivationBuilder",
    "ActivationLayer",
    "ActivationSpec",
    "activation_layers",
    "activations_from_metadata",
    "activations_metadata",
    "build_model",
    "canonical_spec",
    "coefficient_record",
    "count_parameters",
    "logged_coefficients",
    "make_activation",
    "parse_activation_spec",
    "resolve_activations",
    "slope_recovery",
    "spec_label",
]
