"""``mdval report energy-conservation``, ``mdval compare`` and ``mdval demo``.

    mdval report energy-conservation --model models/cu/cheb1-rlekf.pt --timesteps-fs 0.5 1 2
    mdval report energy-conservation --model m.pt --precision-ab --max-drift 0.5   # exit 1 above 0.5
    mdval report energy-conservation --runs runs/md/cu-nve-ase runs/md/cu-nve-lammps
    mdval compare workflows/cu_demo.toml --jobs 2
    mdval demo
"""

from __future__ import annotations

import sys
from pathlib import Path

from mdval.argtypes import HelpFormatter, non_negative_float, non_negative_int, positive_float, positive_int

EXIT_BAD_INPUT: int = 2
OVERWRITE_HELP = ("start every run afresh, deleting the run files in the workflow's output_dir first (--no-resume "
                  "is the same). Without it finished runs are reused, and a run folder that holds another run "
                  "(other model, system or settings) is refused")


def _fail(error: Exception) -> int:
    print(f"mdval: error: {error}", file=sys.stderr)
    return EXIT_BAD_INPUT


def register(subparsers) -> None:
    report = subparsers.add_parser("report", help="reports on MD runs and models (energy conservation)")
    report_sub = report.add_subparsers(dest="report", metavar="REPORT", required=True)
    ec = report_sub.add_parser(
        "energy-conservation", formatter_class=HelpFormatter,
        help="NVE energy drift, fluctuation and excursion of a model or of existing NVE runs",
        description="NVE energy conservation: terminal table, report.json, report.md and a self-contained "
                    "report.html. Exit 1 when a run fails or |drift| exceeds --max-drift (CI gate).")
    who = ec.add_mutually_exclusive_group(required=True)
    who.add_argument("--model", help="an exported model file (.pt): run NVT equilibration + NVE here")
    who.add_argument("--reference", help="a reference potential instead (emt:Cu, lammps:Cu_u3.eam)")
    who.add_argument("--runs", nargs="+", metavar="DIR", help="existing NVE run folders (thermo.csv + results.json)")
    ec.add_argument("--structure", default=None,
                    help="structure file, anything ASE reads (default: FCC Cu, a = 3.61 Å, repeated --supercell)")
    ec.add_argument("--supercell", type=positive_int, nargs=3, default=[3, 3, 3], metavar=("NX", "NY", "NZ"),
                    help="repeats of the cubic FCC Cu cell along x, y and z")
    ec.add_argument("--engine", choices=("ase", "lammps"), default="ase", help="MD engine")
    ec.add_argument("--np", type=positive_int, default=1, help="MPI ranks for the LAMMPS engine")
    ec.add_argument("--timesteps-fs", type=positive_float, nargs="+", default=[1.0],
                    help="time step(s) in fs; two or more give the ladder (fluctuation against dt, log-log)")
    ec.add_argument("--precision-ab", action="store_true",
                    help="also run a float32 copy of the model at the first time step (A/B against float64)")
    ec.add_argument("--duration-ps", type=positive_float, default=2.0, help="NVE length in ps at every time step")
    ec.add_argument("--equilibration-ps", type=non_negative_float, default=0.5,
                    help="NVT equilibration in ps before NVE")
    ec.add_argument("--warmup-ps", type=non_negative_float, default=0.1, help="NVE time in ps skipped by the drift fit")
    ec.add_argument("--temperature-K", type=positive_float, default=300.0, dest="temperature_K",
                    help="temperature in K of the equilibration and the initial velocities")
    ec.add_argument("--seed", type=non_negative_int, default=1, help="seed of the velocities and the thermostat")
    ec.add_argument("--max-drift", type=non_negative_float, default=None, metavar="MEV_PER_ATOM_PS",
                    help="fail (exit 1) if any |drift| exceeds this, in meV/atom/ps (default: no limit)")
    ec.add_argument("--out", default="reports/energy_conservation", help="output folder")
    ec.set_defaults(func=energy_conservation_command)

    compare = subparsers.add_parser(
        "compare", help="run models × protocols × engines against the reference and write one report",
        formatter_class=HelpFormatter)
    compare.add_argument("workflow", help="workflow spec (TOML), e.g. workflows/cu_demo.toml")
    compare.add_argument("--jobs", type=positive_int, default=2, help="MD runs at a time (processes)")
    compare.add_argument("--out", default=None, help="report folder (default: reports/<workflow name>)")
    compare.add_argument("--overwrite", "--no-resume", dest="overwrite", action="store_true", help=OVERWRITE_HELP)
    compare.set_defaults(func=compare_command)

    demo = subparsers.add_parser(
        "demo", help="the compare workflow on the model zoo (ASE + LAMMPS, EMT reference)",
        formatter_class=HelpFormatter)
    demo.add_argument("--workflow", default=None, help="workflow spec (default: the packaged cu_demo.toml, mdval/resources/workflows/)")
    demo.add_argument("--jobs", type=positive_int, default=2, help="MD runs at a time (processes)")
    demo.add_argument("--out", default="reports/demo", help="report folder")
    demo.add_argument("--overwrite", "--no-resume", dest="overwrite", action="store_true", help=OVERWRITE_HELP)
    demo.set_defaults(func=demo_command)


def energy_conservation_command(args) -> int:
    from mdval.report import energy_conservation as ec

    command = "mdval " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("mdval") else None
    out = Path(args.out)
    try:
        if args.runs:
            records = [ec.load_run(d) for d in args.runs]
            labels = [r["label"] for r in records]
            if len(set(labels)) < len(labels):  # same folder names: label by path
                for r in records:
                    r["label"] = r["output_dir"]
            ladder = len({r["timestep_fs"] for r in records}) == len(records) >= 2 \
                and len({r["potential"] for r in records}) == 1
            report = ec.build_report(records, out, max_drift=args.max_drift, ladder=ladder, command=command)
        else:
            records, ab = _make_runs(args, ec, out)
            report = ec.build_report(records, out, max_drift=args.max_drift, ladder=len(args.timesteps_fs) >= 2,
                                     ab=ab, command=command)
    except (ValueError, FileNotFoundError) as error:
        return _fail(error)
    print(ec.terminal_table(report))
    if report["timestep_ladder"]:
        print(f"time-step ladder: log-log slope {report['timestep_ladder']['loglog_slope']} (expected ~2)")
    print(f"report: {report['files']['html']}  (also report.md, report.json)")
    if not report["passed"]:
        why = f"|drift| above {args.max_drift} meV/atom/ps or a failed run" if args.max_drift is not None \
            else "a run failed"
        print(f"FAIL: {why}", file=sys.stderr)
        return 1
    return 0


def _make_runs(args, ec, out: Path):
    from ase.io import read

    from mdval.md.results import Potential
    from mdval.md.workflow import build_system

    atoms = read(args.structure) if args.structure else build_system("fcc", "Cu", 3.61, args.supercell)
    potential = Potential.resolve(args.model or args.reference)
    stem = potential.label.replace(":", "-")
    jobs = []  # (label, Potential, dt)
    for dt in args.timesteps_fs:
        jobs.append((f"{stem} dt={dt:g}fs", potential, dt))
    ab = None
    if args.precision_ab:
        if not args.model:
            raise ValueError("--precision-ab needs --model (a float64 model file)")
        f32 = ec.float32_variant(args.model, out / "models" / f"{stem}-float32.pt")
        dt = args.timesteps_fs[0]
        jobs.append((f"{stem} float32 dt={dt:g}fs", Potential.resolve(f32), dt))
        ab = (jobs[0][0], jobs[-1][0])
    records = []
    for label, potential, dt in jobs:
        settings = ec.nve_settings(timestep_fs=dt, duration_ps=args.duration_ps, equilibration_ps=args.equilibration_ps,
                                   temperature_K=args.temperature_K, warmup_ps=args.warmup_ps, seed=args.seed)
        run_dir = out / "runs" / label.replace(" ", "_").replace("=", "")
        print(f"NVE {label}: {settings.equilibration_steps} + {settings.steps} steps ({args.engine})", flush=True)
        ec.run_nve(atoms, potential, settings, run_dir, engine=args.engine, np_ranks=args.np)
        records.append(ec.load_run(run_dir, label=label))
    return records, ab


def compare_command(args) -> int:
    from mdval.report.compare import run_compare

    try:
        report = run_compare(args.workflow, out_dir=args.out, jobs=args.jobs, resume=not args.overwrite)
    except (ValueError, FileNotFoundError) as error:
        return _fail(error)
    print(report["table_text"])
    print(f"\nreport: {report['files']['html']}")
    return 0


def demo_command(args) -> int:
    from mdval.report.demo import run_demo

    try:
        return run_demo(workflow=args.workflow, out_dir=args.out, jobs=args.jobs, resume=not args.overwrite)
    except (ValueError, FileNotFoundError) as error:
        return _fail(error)
