"""mdval: neural-network force fields with trainable adaptive activations, from training to MD.

Entry points: ``mdval.Calculator`` (ASE; given a list of model files, a committee),
``pair_style taafs`` (LAMMPS) and the ``mdval`` command.
"""

from __future__ import annotations

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so that `import mdval` stays light (no torch import for the CLI's --help).
    if name == "Calculator":
        from mdval.deploy.calculator import Calculator

        return Calculator
    if name == "CommitteeCalculator":  # also what Calculator([m1, m2, ...]) makes
        from mdval.deploy.committee import CommitteeCalculator

        return CommitteeCalculator
    raise AttributeError(f"module 'mdval' has no attribute {name!r}")
