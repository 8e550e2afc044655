"""The ``mdval`` command. Each area of the package registers its own sub-commands."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Modules that expose ``register(subparsers)``; each adds its sub-commands. `mdval --help` lists
# the commands in this order, the order of the workflow.
COMMAND_MODULES: tuple[str, ...] = (
    "mdval.data.commands",  # data
    "mdval.train.commands",  # train, test, export
    "mdval.deploy.compress",  # compress
    "mdval.deploy.check_commands",  # check
    "mdval.train.fisher_commands",  # fisher
    "mdval.deploy.lammps_commands",  # lammps
    "mdval.md.commands",  # md, run
    "mdval.deploy.select",  # select: frames of an MD run to label (committee deviation)
    "mdval.report.commands",  # report, compare, demo
)

#: `mdval --help` text above the command list (plain text: argparse prints it as it is).
DESCRIPTION: str = (
    "Train neural-network force fields, export them as model files for ASE and LAMMPS, and "
    "validate them with molecular dynamics. The commands below follow the workflow: make data, "
    "train, test/export/compress the model, inspect it (fisher), build the LAMMPS plugin, run MD, "
    "select the frames a committee disagrees on, then report and compare. Run 'mdval COMMAND --help' for the options of each."
)


class OneLineErrorParser(argparse.ArgumentParser):
    """A command-line mistake is one line ("mdval md nve: error: argument --np: ..."), without
    the usage block argparse prints first; sub-command parsers are of this class too."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from mdval import __version__

    parser = OneLineErrorParser(prog="mdval", description=DESCRIPTION)
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
    except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as exc:
        # User mistakes (bad config, bad data, bad model file, a folder one may not write) get
        # one clear line, no traceback.
        if isinstance(exc, OSError) and exc.filename and exc.strerror:
            exc = f"{exc.filename}: {exc.strerror.lower()}"
        print(f"mdval: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `mdval ... | head` closed the pipe: stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("mdval: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
