"""``mdval check MODEL.pt``: the model-file contract check (mdval/deploy/check.py) on one file.

Exit status: 0 when every check passes, 1 when one fails, 2 for a file that cannot be read at
all (through mdval.cli's one-line error).
"""

from __future__ import annotations

import argparse

from mdval.argtypes import HelpFormatter, non_negative_int

# torch is imported inside _check, so that `mdval --help` stays fast.


def _check(args: argparse.Namespace) -> int:
    import torch

    from mdval.deploy.check import validate_model

    # The test structures are tiny (at most a few thousand edges): one intra-op thread is the
    # fastest, and a shared machine's other processes do not stall the thread pool.
    torch.set_num_threads(1)
    report = validate_model(args.model, seed=args.seed)
    print(report.to_json() if args.json else report.format())
    return 0 if report.passed else 1


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "check",
        help="check a model file against the model-file contract (metadata, shapes, invariances, FD forces)",
        description="Check a model file against the model-file contract (ABI v1): metadata keys "
        "and types, abi version, type_names against the network, output shape and dtype, inputs "
        "left unchanged, finite energies and forces, forces as the negative gradient (central "
        "finite differences), edges beyond the cutoff contributing zero, locality, translation, "
        "rotation and permutation invariance, and ghost nodes (as LAMMPS passes them) against "
        "periodic images (as ASE does). One line per check; exit status 0 when all pass, 1 when "
        "one fails.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("model", help="model file (.pt) written by mdval export")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seed of the random rattles, shifts, rotations and renumberings",
    )
    p.set_defaults(func=_check)
