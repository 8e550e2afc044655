"""``mdval report energy-conservation``, ``mdval compare`` and ``mdval demo``: the command glue.

    mdval report energy-conservation --model models/cu/cheb1-rlekf.pt --timesteps-fs 0.5 1 2
    mdval report energy-conservation --model m.pt --precision-ab --max-drift 0.5   # exit 1 above 0.5
    mdval report energy-conservation --runs runs/md/cu-nve-ase runs/md/cu-nve-lammps
    mdval compare workflows/cu_demo.toml --jobs 2
    mdval demo

Each command runs its MD through mdval.md (the NVE ladder, mdval/md/nve_ladder.py; the run matrix,
mdval/md/matrix.py), then hands the finished runs to mdval.report to render. The rest of
mdval/report/ never starts a run (tests/test_architecture.py checks it).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from mdval.argtypes import HelpFormatter, non_negative_float, non_negative_int, positive_float, positive_int

OVERWRITE_HELP = (
    "start every run afresh, deleting the run files in the workflow's output_dir first (--no-resume "
    "is the same). Without it finished runs are reused, and a run folder that holds another run "
    "(other model, system or settings) is refused"
)
REPLICAS_HELP = (
    "independent runs of every model, protocol and engine that differ only in their seed, in "
    "<run folder>/replica-K, combined, with their scatter checked against the within-run standard "
    "errors (default: the workflow's replicas, else 1)"
)
EC_OVERWRITE_HELP = (
    "replace the report in --out and start its runs afresh (--no-resume is the same). Without it "
    "finished runs are reused, killed ones resume, and an --out folder that holds another report "
    "or other runs is refused"
)


def register(subparsers) -> None:
    report = subparsers.add_parser("report", help="reports on MD runs and models (energy conservation)")
    report_sub = report.add_subparsers(dest="report", metavar="REPORT", required=True)
    _register_energy_conservation(report_sub)
    _register_compare(subparsers)
    _register_demo(subparsers)


def _register_energy_conservation(report_sub) -> None:
    """``mdval report energy-conservation``."""
    ec = report_sub.add_parser(
        "energy-conservation",
        formatter_class=HelpFormatter,
        help="NVE energy drift, fluctuation and excursion of a model or of existing NVE runs",
        description="NVE energy conservation: terminal table, report.json, report.md and a self-contained "
        "report.html. Exit 1 when a run fails or |drift| exceeds --max-drift (CI gate).",
    )
    who = ec.add_mutually_exclusive_group(required=True)
    who.add_argument("--model", help="an exported model file (.pt): run NVT equilibration + NVE here")
    who.add_argument("--reference", help="a reference potential instead (emt:Cu, lammps:Cu_u3.eam)")
    who.add_argument("--runs", nargs="+", metavar="DIR", help="existing NVE run folders (thermo.csv + results.json)")
    ec.add_argument(
        "--structure",
        default=None,
        help="structure file, anything ASE reads (default: FCC Cu, a = 3.61 Å, repeated --supercell)",
    )
    ec.add_argument(
        "--supercell",
        type=positive_int,
        nargs=3,
        default=[3, 3, 3],
        metavar=("NX", "NY", "NZ"),
        help="repeats of the cubic FCC Cu cell along x, y and z",
    )
    ec.add_argument("--engine", choices=("ase", "lammps"), default="ase", help="MD engine")
    ec.add_argument("--np", type=positive_int, default=1, help="MPI ranks for the LAMMPS engine")
    ec.add_argument(
        "--timesteps-fs",
        type=positive_float,
        nargs="+",
        default=[1.0],
        help="time step(s) in fs; two or more give the ladder (fluctuation against dt, log-log)",
    )
    ec.add_argument(
        "--precision-ab",
        action="store_true",
        help="also run a float32 copy of the model at the first time step (A/B against float64)",
    )
    ec.add_argument("--duration-ps", type=positive_float, default=2.0, help="NVE length in ps at every time step")
    ec.add_argument(
        "--equilibration-ps", type=non_negative_float, default=0.5, help="NVT equilibration in ps before NVE"
    )
    ec.add_argument("--warmup-ps", type=non_negative_float, default=0.1, help="NVE time in ps skipped by the drift fit")
    ec.add_argument(
        "--temperature-K",
        type=positive_float,
        default=300.0,
        dest="temperature_K",
        help="temperature in K of the equilibration and the initial velocities",
    )
    ec.add_argument("--seed", type=non_negative_int, default=1, help="seed of the velocities and the thermostat")
    ec.add_argument(
        "--max-drift",
        type=non_negative_float,
        default=None,
        metavar="MEV_PER_ATOM_PS",
        help="fail (exit 1) if any |drift| exceeds this, in meV/atom/ps (default: no limit)",
    )
    ec.add_argument("--jobs", type=positive_int, default=2, help="MD runs at a time (processes)")
    ec.add_argument("--out", default="reports/energy_conservation", help="output folder")
    ec.add_argument("--overwrite", "--no-resume", dest="overwrite", action="store_true", help=EC_OVERWRITE_HELP)
    ec.set_defaults(func=energy_conservation_command)


def _register_compare(subparsers) -> None:
    """``mdval compare WORKFLOW``."""
    compare = subparsers.add_parser(
        "compare",
        help="run models × protocols × engines against the reference and write one report",
        formatter_class=HelpFormatter,
    )
    compare.add_argument("workflow", help="workflow spec (TOML), e.g. workflows/cu_demo.toml")
    compare.add_argument("--jobs", type=positive_int, default=2, help="MD runs at a time (processes)")
    compare.add_argument("--out", default=None, help="report folder (default: reports/<workflow name>)")
    compare.add_argument("--overwrite", "--no-resume", dest="overwrite", action="store_true", help=OVERWRITE_HELP)
    compare.add_argument("--replicas", type=positive_int, default=None, help=REPLICAS_HELP)
    compare.set_defaults(func=compare_command)


def _register_demo(subparsers) -> None:
    """``mdval demo``."""
    demo = subparsers.add_parser(
        "demo",
        help="the compare workflow on the model zoo (ASE + LAMMPS, Cu_u3.eam reference)",
        formatter_class=HelpFormatter,
    )
    demo.add_argument(
        "--workflow",
        default=None,
        help="workflow spec (default: the packaged cu_demo.toml, mdval/resources/workflows/)",
    )
    demo.add_argument("--jobs", type=positive_int, default=2, help="MD runs at a time (processes)")
    demo.add_argument("--out", default="reports/demo", help="report folder")
    demo.add_argument("--overwrite", "--no-resume", dest="overwrite", action="store_true", help=OVERWRITE_HELP)
    demo.add_argument("--replicas", type=positive_int, default=None, help=REPLICAS_HELP)
    demo.set_defaults(func=demo_command)


def energy_conservation_command(args) -> int:
    from mdval.report import energy_conservation as ec

    command = "mdval " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("mdval") else None
    out = Path(args.out)
    if args.runs:
        records = [ec.load_run(d) for d in args.runs]
        if not args.overwrite:
            ec.refuse_other_report(out, [r["output_dir"] for r in records])
        labels = [r["label"] for r in records]
        if len(set(labels)) < len(labels):  # same folder names: label by path
            for r in records:
                r["label"] = r["output_dir"]
        ladder = (
            len({r["timestep_fs"] for r in records}) == len(records) >= 2
            and len({r["potential"] for r in records}) == 1
        )
        report = ec.build_report(records, out, max_drift=args.max_drift, ladder=ladder, command=command)
    else:
        records, ab = _nve_ladder(args, out)
        report = ec.build_report(
            records, out, max_drift=args.max_drift, ladder=len(args.timesteps_fs) >= 2, ab=ab, command=command
        )
    print(ec.terminal_summary(report))
    print(f"report: {report['files']['html']}  (also report.md, report.json)")
    if not report["passed"]:
        why = (
            f"|drift| above {args.max_drift} meV/atom/ps or a failed run"
            if args.max_drift is not None
            else "a run failed"
        )
        print(f"FAIL: {why}", file=sys.stderr)
        return 1
    return 0


def _nve_ladder(args, out: Path) -> tuple[list[dict], tuple[str, str] | None]:
    """Run the NVE ladder of --model or --reference (mdval.md.nve_ladder); its report records."""
    from ase.io import read

    from mdval.md import nve_ladder
    from mdval.md.workflow import build_system
    from mdval.report import energy_conservation as ec

    atoms = read(args.structure) if args.structure else build_system("fcc", "Cu", 3.61, args.supercell)
    ladder = nve_ladder.plan(
        args.model or args.reference,
        out,
        timesteps_fs=args.timesteps_fs,
        duration_ps=args.duration_ps,
        equilibration_ps=args.equilibration_ps,
        warmup_ps=args.warmup_ps,
        temperature_K=args.temperature_K,
        seed=args.seed,
        precision_ab=args.precision_ab,
        overwrite=args.overwrite,
    )
    if not args.overwrite:
        ec.refuse_other_report(out, [r.folder for r in ladder.rungs])
        nve_ladder.refuse_other_runs(ladder, atoms, args.engine)
    nve_ladder.run_ladder(ladder, atoms, engine=args.engine, np_ranks=args.np, jobs=args.jobs, overwrite=args.overwrite)
    return [ec.load_run(r.folder, label=r.label) for r in ladder.rungs], ladder.ab


def lattice_fits(workflow) -> dict:
    """{spec: the 0 K equilibrium of the workflow's crystal (mdval.md.lattice, as JSON)} for every
    reference and model, or {"error": one line} where the fit fails; {} for a lattice that is not
    cubic. A few seconds: one equation-of-state fit per potential, no MD."""
    from mdval.md.lattice import CUBIC_LATTICES, equilibrium_lattice

    system = workflow.system
    if system.get("lattice", "fcc") not in CUBIC_LATTICES or system.get("cubic", True) is not True:
        return {}
    fits = {}
    for spec in dict.fromkeys([workflow.reference[e] for e in workflow.engines] + list(workflow.models)):
        try:
            fits[spec] = equilibrium_lattice(
                workflow.potential(spec),
                system.get("lattice", "fcc"),
                system.get("element"),
                a_guess_A=system.get("a_A"),
            ).as_json()
        except (ValueError, RuntimeError) as exc:  # e.g. an E(a) without a minimum: a finding, not a crash
            fits[spec] = {"error": f"{type(exc).__name__}: {exc}"}
    return fits


def compare_command(args) -> int:
    from mdval.md.matrix import run_matrix
    from mdval.md.workflow import load_workflow
    from mdval.report.compare import write_report

    workflow = load_workflow(args.workflow).with_replicas(args.replicas)
    matrix = run_matrix(workflow, jobs=args.jobs, resume=not args.overwrite)
    report = write_report(workflow, matrix, out_dir=args.out, jobs=args.jobs, lattice=lattice_fits(workflow))
    print(report["table_text"])
    print(f"\nreport: {report['files']['html']}\nsummary JSON: {report['files']['json']}")
    return 0


def demo_command(args) -> int:
    from mdval.md.matrix import run_matrix
    from mdval.md.workflow import load_workflow
    from mdval.report import demo
    from mdval.report.compare import write_report

    start = time.perf_counter()
    path = demo.workflow_path(args.workflow)
    workflow = load_workflow(path).with_replicas(args.replicas)
    demo.check_models(workflow, path)
    print(demo.opening_line(workflow))
    matrix = run_matrix(workflow, jobs=args.jobs, resume=not args.overwrite)
    report = write_report(workflow, matrix, out_dir=args.out, jobs=args.jobs, lattice=lattice_fits(workflow))
    print(demo.closing_text(report, time.perf_counter() - start))
    return 0
