"""``mdval select``: the frames of a trajectory worth labelling, by committee force deviation.

    mdval select md.extxyz --committee m1.pt m2.pt m3.pt m4.pt --trust-lo 0.05 --trust-hi 0.3

Each frame's max force deviation (``max_force_deviation`` of
:class:`mdval.deploy.committee.CommitteeCalculator`, eV/Å, DeePMD-kit's max_devi_f) puts it in
one of DP-GEN's three classes: *accurate* (max_devi_f < trust_lo: the committee agrees, nothing
to learn), *candidate* (trust_lo ≤ max_devi_f < trust_hi: worth labelling) and *failed*
(max_devi_f ≥ trust_hi: too far from the training data to trust, usually unphysical). The
candidates are written as extxyz: positions, cell, pbc and the frame's ``max_devi_f`` and
``source_frame`` (its index in TRAJ) in the info line, without energies or forces (label them
with the teacher, e.g. ``mdval data generate`` or an ASE calculator, then retrain).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from mdval.argtypes import HelpFormatter, element_symbol, non_negative_float

#: ASE formats of LAMMPS dumps: their atom types become elements through ``--types``.
LAMMPS_DUMP_FORMATS: tuple[str, ...] = ("lammps-dump-text", "lammps-dump-binary")


@dataclass
class Selection:
    """The outcome of :func:`select_frames`: frame indices of each class and every frame's
    max force deviation (eV/Å)."""

    max_devi_f: list[float] = field(default_factory=list)
    accurate: list[int] = field(default_factory=list)
    candidate: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)

    def counts(self) -> dict:
        return {"accurate": len(self.accurate), "candidate": len(self.candidate), "failed": len(self.failed)}


def check_trust(trust_lo: float, trust_hi: float) -> None:
    for name, value in (("--trust-lo", trust_lo), ("--trust-hi", trust_hi)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite force deviation ≥ 0 eV/Å, got {value!r}")
    if not trust_lo < trust_hi:
        raise ValueError(
            f"--trust-lo must be below --trust-hi, got {trust_lo} and {trust_hi} eV/Å; e.g. --trust-lo 0.05 --trust-hi 0.3"
        )


def read_trajectory(path, format: str | None = None, types: list[str] | None = None) -> list:
    """All frames of ``path`` (any format ASE reads); ``types``: the element of each LAMMPS atom
    type (1, 2, ...) of a LAMMPS dump without an element column."""
    import ase.io
    from ase.io.formats import UnknownFileTypeError, filetype

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trajectory not found: {path}")
    try:
        format = format or filetype(str(path), guess=False)
    except UnknownFileTypeError:
        raise ValueError(
            f"cannot tell the format of the trajectory {path}; give it with --format (extxyz, lammps-dump-text, ...)"
        ) from None
    kwargs = {"specorder": list(types)} if types and format in LAMMPS_DUMP_FORMATS else {}
    frames = ase.io.read(str(path), index=":", format=format, **kwargs)
    if not frames:
        raise ValueError(f"no frames in {path}; give a trajectory with at least one frame")
    return frames


def classify(max_devi_f: float, trust_lo: float, trust_hi: float) -> str:
    """'accurate' (< trust_lo), 'candidate' (trust_lo ≤ d < trust_hi) or 'failed' (≥ trust_hi)."""
    if max_devi_f < trust_lo:
        return "accurate"
    return "candidate" if max_devi_f < trust_hi else "failed"


def select_frames(frames, models, trust_lo: float, trust_hi: float, *, device="cpu") -> Selection:
    """Classify each ASE ``frames`` entry by the committee ``models`` (model files, the first
    drives, as in ``mdval.Calculator([...])``)."""
    from mdval.deploy.calculator import Calculator

    check_trust(trust_lo, trust_hi)
    calc = Calculator(list(models), device=device)
    selection = Selection()
    for index, atoms in enumerate(frames):
        atoms = atoms.copy()  # no calculator: a trajectory's stored results are not the committee's
        deviation = float(calc.get_property("max_force_deviation", atoms))
        selection.max_devi_f.append(deviation)
        getattr(selection, classify(deviation, trust_lo, trust_hi)).append(index)
    return selection


def write_candidates(path, frames, selection: Selection) -> Path:
    """The candidate frames as extxyz (atomic), with ``max_devi_f`` and ``source_frame`` in their
    info line and no calculator results."""
    import ase.io

    from mdval import fileio

    images = []
    for index in selection.candidate:
        atoms = frames[index].copy()
        atoms.info = {"max_devi_f": selection.max_devi_f[index], "source_frame": index}
        images.append(atoms)
    with fileio.atomic_path(path, suffix=".extxyz") as tmp:
        ase.io.write(tmp, images, format="extxyz")
    return Path(path)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "select",
        help="frames of a trajectory to label, by committee force deviation (DP-GEN trust levels)",
        description="Classify each frame of TRAJ by the committee's max force deviation max_devi_f (eV/Å), as "
        "DP-GEN's trust levels do: accurate (< trust_lo), candidate (trust_lo ≤ max_devi_f < trust_hi), "
        "failed (≥ trust_hi); write the candidates (extxyz, no energies or forces: label them, then retrain).",
        formatter_class=HelpFormatter,
    )
    p.add_argument("trajectory", help="trajectory file (extxyz, LAMMPS dump, ... anything ASE reads)")
    p.add_argument("--committee", nargs="+", required=True, metavar="MODEL", help="two or more model files")
    p.add_argument("--trust-lo", type=non_negative_float, required=True, help="lower trust level (eV/Å)")
    p.add_argument("--trust-hi", type=non_negative_float, required=True, help="upper trust level (eV/Å)")
    p.add_argument("-o", "--out", help="candidate frames (extxyz; default: TRAJ's stem + .candidates.extxyz beside it)")
    p.add_argument("--format", help="ASE format of the trajectory (default: detected)")
    p.add_argument(
        "--types",
        nargs="+",
        type=element_symbol,
        metavar="EL",
        help="element of LAMMPS atom types 1, 2, ... (LAMMPS dumps without an element column)",
    )
    p.add_argument("--device", default="cpu", help="torch device of the committee")
    p.set_defaults(func=_select)


def _select(args) -> int:
    check_trust(args.trust_lo, args.trust_hi)
    frames = read_trajectory(args.trajectory, args.format, args.types)
    selection = select_frames(frames, args.committee, args.trust_lo, args.trust_hi, device=args.device)
    traj = Path(args.trajectory)
    out = Path(args.out) if args.out else traj.with_name(traj.stem + ".candidates.extxyz")
    write_candidates(out, frames, selection)
    c = selection.counts()
    print(
        f"{len(frames)} frames: accurate {c['accurate']} (max_devi_f < {args.trust_lo} eV/Å), candidate "
        f"{c['candidate']}, failed {c['failed']} (≥ {args.trust_hi} eV/Å); max_devi_f "
        f"{min(selection.max_devi_f):.4g} to {max(selection.max_devi_f):.4g} eV/Å"
    )
    print(f"wrote {c['candidate']} candidate frames to {out}")
    return 0
