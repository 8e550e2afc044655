"""``mdval lammps build`` and ``mdval lammps check``: the LAMMPS plugin pair_style taafs."""

from __future__ import annotations

import argparse
import sys

from mdval.argtypes import HelpFormatter, positive_int


def _build(args: argparse.Namespace) -> int:
    from mdval.deploy import lammps_plugin

    # A missing source folder (FileNotFoundError) goes to cli.main's one-line error.
    if not args.force and lammps_plugin.is_up_to_date():
        print(f"pair_style taafs plugin is up to date: {lammps_plugin.plugin_path()}")
        return 0
    print(
        f"building pair_style taafs from {lammps_plugin.source_dir()} into {lammps_plugin.plugin_dir()}\n"
        "(CMake; a first build takes a few minutes) ...",
        flush=True,
    )
    try:
        path = lammps_plugin.build(force=args.force, jobs=args.jobs, verbose=args.verbose)
    except RuntimeError as exc:  # CMake failed: its last lines, which do not fit on one line
        print(f"mdval lammps build: error: {exc}", file=sys.stderr)
        return 1
    print(f"built {path}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from mdval.deploy import lammps_plugin

    info = lammps_plugin.check(args.lmp)
    built = info["built_against"] or {}
    # The folder is keyed by the sources and versions, so a library there that is not up to date
    # is what a failed or killed build leaves.
    state = "up to date" if info["up_to_date"] else "INCOMPLETE" if info["exists"] else "MISSING"
    print(f"plugin:        {info['plugin']} ({state})")
    print(f"sources:       {lammps_plugin.source_dir()}")
    print(f"loads in lmp:  {'yes' if info['loads'] else 'no'} ({info['lmp']})")
    print(f"lmp running:   LAMMPS {info['lammps_running'] or '?'}")
    print(f"built against: LAMMPS {built.get('lammps', '?')}, torch {built.get('torch', '?')}")
    if info["message"]:
        print(info["message"])
    if not info["up_to_date"]:
        print("run `mdval lammps build` to build it")
    return 0 if info["loads"] else 1


def register(subparsers) -> None:
    parser = subparsers.add_parser("lammps", help="the LAMMPS plugin pair_style taafs")
    sub = parser.add_subparsers(dest="lammps_command", metavar="ACTION", required=True)
    p = sub.add_parser(
        "build", help="build the plugin with CMake (skipped when up to date)", formatter_class=HelpFormatter
    )
    p.add_argument("--force", action="store_true", help="rebuild even when up to date")
    p.add_argument("--jobs", "-j", type=positive_int, help="parallel compile jobs (default: the number of CPU cores)")
    p.add_argument("--verbose", action="store_true", help="show the CMake output")
    p.set_defaults(func=_build)
    p = sub.add_parser(
        "check", help="where the plugin is, whether lmp loads it, its versions", formatter_class=HelpFormatter
    )
    p.add_argument("--lmp", help="lmp executable (default: the one of this venv)")
    p.set_defaults(func=_check)
