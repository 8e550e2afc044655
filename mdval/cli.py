"""The ``mdval`` command. Each area of the package registers its own sub-commands."""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that expose ``register(subparsers)``; each adds its sub-commands.
COMMAND_MODULES: tuple[str, ...] = (
    "mdval.data.commands",
    "mdval.deploy.lammps_commands",
    "mdval.deploy.compress",
    "mdval.train.fisher_commands",
    "mdval.train.commands",
    "mdval.md.commands",
    "mdval.report.commands",
)


def build_parser() -> argparse.ArgumentParser:
    from mdval import __version__

    parser = argparse.ArgumentParser(prog="mdval", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mdval {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
        # User mistakes (bad config, bad data, bad model file) get one clear line, no traceback.
        print(f"mdval: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mdval: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
