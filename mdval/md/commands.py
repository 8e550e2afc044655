"""``mdval md nve|nvt|npt`` (one protocol) and ``mdval run WORKFLOW`` (a TOML spec).

mdval md nve --reference emt:Cu --steps 2000 --out runs/md/emt-nve
mdval md npt --model models/cu/cheb1-ekf.pt --engine lammps --np 2 --pressure-bar 1
mdval md nvt --reference lammps:Cu_u3.eam --engine lammps --replicas 4   # 4 seeds, combined
mdval run workflows/cu_eam.toml --replicas 3
"""

from __future__ import annotations

from pathlib import Path

from mdval.argtypes import (
    HelpFormatter,
    element_symbol,
    finite_float,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from mdval.md.protocols import PROTOCOLS, THERMOSTATS

REPLICAS_HELP = (
    "independent runs that differ only in their seed (each replica's is printed), combined, with their "
    "scatter checked against the within-run standard errors; N > 1 runs"
)
OVERWRITE_HELP = (
    "start afresh: delete the run files in the output folder first, even those of another run "
    "(--no-resume is the same). Without it a run resumes from its checkpoint, more --steps extend it, "
    "and a folder that holds another run (other model, system, time step, seed or setting) is refused"
)


def register(subparsers) -> None:
    md = subparsers.add_parser("md", help="run one MD validation protocol (NVE, NVT or NPT)")
    md_sub = md.add_subparsers(dest="protocol", metavar="PROTOCOL", required=True)
    for kind in PROTOCOLS:
        p = md_sub.add_parser(kind, help=f"{kind.upper()} protocol", formatter_class=HelpFormatter)
        # --help lists the options in the order these add them
        _add_potential_arguments(p)
        _add_system_arguments(p)
        _add_schedule_arguments(p)
        _add_ensemble_arguments(p, kind)
        _add_limit_and_output_arguments(p)
        p.set_defaults(func=run_md_command, protocol=kind)
    _register_run(subparsers)


def _add_potential_arguments(p) -> None:
    """What computes the forces (--model or --reference) and in which engine."""
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--model", help="an exported mdval model file (.pt)")
    who.add_argument(
        "--reference",
        help="a reference potential: emt:Cu (ASE only), lammps:Cu_u3.eam "
        "(LAMMPS' code in both engines) or eam:Cu_u3.eam (ASE's own EAM in ASE)",
    )
    p.add_argument("--engine", choices=("ase", "lammps"), default="ase", help="MD engine")
    p.add_argument("--np", type=positive_int, default=1, help="MPI ranks for the LAMMPS engine (mpirun -np N)")


def _add_system_arguments(p) -> None:
    """The crystal that is simulated."""
    p.add_argument("--element", type=element_symbol, default="Cu", help="chemical element of the crystal")
    p.add_argument("--lattice", default="fcc", help="crystal structure, as ase.build.bulk names it")
    p.add_argument("--a-A", type=positive_float, default=3.61, dest="a_A", help="lattice constant in Å")
    p.add_argument(
        "--supercell",
        type=positive_int,
        nargs=3,
        default=[3, 3, 3],
        metavar=("NX", "NY", "NZ"),
        help="repeats of the cubic cell along x, y and z",
    )


def _add_schedule_arguments(p) -> None:
    """Time step, temperature, how many steps, what is written when, the seed and the replicas."""
    p.add_argument("--timestep-fs", type=positive_float, default=1.0, help="time step in fs")
    p.add_argument(
        "--temperature-K",
        type=positive_float,
        default=300.0,
        dest="temperature_K",
        help="target and initial temperature in K",
    )
    p.add_argument("--steps", type=positive_int, default=2000, help="production steps")
    p.add_argument(
        "--equilibration-steps", type=non_negative_int, default=500, help="NVT equilibration steps before production"
    )
    p.add_argument(
        "--warmup-ps", type=non_negative_float, default=0.0, help="production time in ps skipped by the estimators"
    )
    p.add_argument("--sample-interval", type=positive_int, default=10, help="thermo row every this many steps")
    p.add_argument(
        "--trajectory-interval", type=positive_int, default=50, help="trajectory frame every this many production steps"
    )
    p.add_argument(
        "--checkpoint-interval", type=positive_int, default=200, help="checkpoint (restart file) every this many steps"
    )
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the velocities and thermostats")
    p.add_argument("--replicas", type=positive_int, default=1, help=REPLICAS_HELP + " in --out/replica-K")


def _add_ensemble_arguments(p, kind: str) -> None:
    """The thermostat, and for NPT the pressure and barostat."""
    p.add_argument(
        "--thermostat",
        choices=THERMOSTATS,
        default="nose-hoover-chain" if kind == "npt" else "langevin",
        help="thermostat",
    )
    p.add_argument("--thermostat-damping-fs", type=positive_float, default=100.0, help="thermostat time constant in fs")
    if kind == "npt":
        p.add_argument("--pressure-bar", type=finite_float, default=1.0, help="external pressure in bar")
        p.add_argument(
            "--barostat-damping-fs", type=positive_float, default=1000.0, help="barostat time constant in fs"
        )


def _add_limit_and_output_arguments(p) -> None:
    """The stability limits that end a run, the torch device, and where and how the run is written."""
    p.add_argument(
        "--temperature-limit-factor",
        type=positive_float,
        default=5.0,
        help="fail when the temperature exceeds this times the target",
    )
    p.add_argument(
        "--min-distance-A",
        type=positive_float,
        default=0.5,
        dest="min_distance_A",
        help="fail when two atoms come closer than this, in Å",
    )
    p.add_argument(
        "--max-volume-change", type=positive_float, default=0.5, help="fail when |V/V0 - 1| exceeds this fraction"
    )
    p.add_argument("--device", default="cpu", help="torch device for a model in the ASE engine")
    p.add_argument(
        "--out", default=None, help="output folder (default: runs/md/<model or reference>-<protocol>-<engine>)"
    )
    p.add_argument("--overwrite", "--no-resume", dest="overwrite", action="store_true", help=OVERWRITE_HELP)


def _register_run(subparsers) -> None:
    """``mdval run WORKFLOW``."""
    run = subparsers.add_parser("run", help="run an MD validation workflow spec (TOML)", formatter_class=HelpFormatter)
    run.add_argument("workflow", help="path to a workflow spec, e.g. workflows/cu_eam.toml")
    run.add_argument(
        "--overwrite",
        "--no-resume",
        dest="overwrite",
        action="store_true",
        help="start every run afresh, deleting the run files in the workflow's output_dir first "
        "(--no-resume is the same). Without it runs resume or are reused, and a run folder that "
        "holds another run is refused",
    )
    run.add_argument(
        "--replicas",
        type=positive_int,
        default=None,
        help=REPLICAS_HELP + " in <run folder>/replica-K (default: the workflow's replicas, else 1)",
    )
    run.set_defaults(func=run_workflow_command)


def run_md_command(args) -> int:
    from mdval.md.protocols import make_settings
    from mdval.md.results import Potential
    from mdval.md.stability import StabilityLimits
    from mdval.md.workflow import build_system

    values = {
        k: getattr(args, k)
        for k in (
            "timestep_fs",
            "temperature_K",
            "steps",
            "equilibration_steps",
            "warmup_ps",
            "sample_interval",
            "trajectory_interval",
            "checkpoint_interval",
            "seed",
            "thermostat",
            "thermostat_damping_fs",
        )
    }
    if args.protocol == "npt":
        values.update(pressure_bar=args.pressure_bar, barostat_damping_fs=args.barostat_damping_fs)
    values["limits"] = StabilityLimits(
        temperature_limit_factor=args.temperature_limit_factor,
        min_distance_A=args.min_distance_A,
        max_volume_change=args.max_volume_change,
    )
    settings = make_settings(args.protocol, **values)
    potential = Potential.resolve(args.model or args.reference)
    atoms = build_system(args.lattice, args.element, args.a_A, args.supercell)
    out = Path(args.out or f"runs/md/{potential.label.replace(':', '-')}-{args.protocol}-{args.engine}")
    if args.replicas == 1:
        result = _run(args, atoms, potential, settings, out)
        print(describe_run(result))
        return 0 if result.ok else 1
    from mdval.md import replicas
    from mdval.md.results import write_json_atomic

    results = [
        _run(args, atoms, potential, replica_settings, folder)
        for _, replica_settings, folder in replicas.expand(settings, out, args.replicas)
    ]
    combined, check = replicas.combine(results, out)
    write_json_atomic(out / replicas.COMBINED_FILE, {**combined.as_dict(), "replicas": check})
    print(describe_replicas(results, combined, check))
    return 0 if combined.ok else 1


def _run(args, atoms, potential, settings, out: Path):
    """One run of ``mdval md`` in ``out`` with the engine of the command line."""
    if args.engine == "ase":
        from mdval.md.ase_engine import run_ase

        return run_ase(atoms, potential, settings, out, resume=not args.overwrite, device=args.device)
    from mdval.md.lammps_engine import run_lammps

    return run_lammps(atoms, potential, settings, out, np=args.np, resume=not args.overwrite)


def named_observables(observables: dict) -> list[tuple[str, tuple[str, ...]]]:
    """(printed name, key path) of every estimate a run's observables may hold, in printing order."""
    named = [
        ("temperature", ("temperature_K",)),
        ("pressure", ("pressure_bar",)),
        ("density", ("density_g_cm3",)),
        ("energy drift", ("drift", "drift_meV_per_atom_ps")),
        ("RMS fluctuation", ("drift", "rms_fluctuation_meV_per_atom")),
    ]
    for pair in observables.get("first_peak") or {}:
        named += [
            (f"first peak {pair}", ("first_peak", pair, "position_A")),
            (f"first peak height {pair}", ("first_peak", pair, "height")),
        ]
    return named


def describe_run(result) -> str:
    """``mdval md``'s printout of a run (a RunResult): its outcome, production window, each
    observable as "8.93 ± 0.02 g/cm³ (N_eff = 41)" with its warning, the cost and where
    results.json is."""
    from mdval.md.replicas import at
    from mdval.md.results import RESULTS_FILE
    from mdval.md.uncertainty import Estimate

    o = result.observables
    lines = [
        f"{result.status}: {result.protocol.upper()} in {result.engine}, {result.steps_done} steps"
        + (f", {result.reason}" if result.reason else "")
    ]
    if "analysis_error" in o:
        lines.append(f"no observables: {o['analysis_error']}")
    window = o.get("production_window")
    if window:
        lines.append(
            f"production window {window['start_ps']:.4g}-{window['end_ps']:.4g} ps: equilibration of "
            f"{window['series']} detected after {window['equilibration_ps']:.3g} ps (MSER, White 1997), "
            f"N_eff {window['n_eff']:.0f}"
        )
    for name, path in named_observables(o):
        estimate = at(o, path)
        if estimate:
            warning = f"  [{estimate['warning']}]" if estimate.get("warning") else ""
            lines.append(f"{name:24s} {Estimate.from_json(estimate).text()}{warning}")
    cost = result.timing or {}
    if cost.get("ms_per_step_steady") is not None:
        lines.append(
            f"{'cost':24s} {cost['ms_per_step_steady']:.3g} ms/step after the warm-up, "
            f"start-up {cost['startup_s']:.3g} s"
        )
    lines.append(f"results: {Path(result.output_dir) / RESULTS_FILE}")
    return "\n".join(lines)


def describe_replicas(results: list, combined, check: dict) -> str:
    """``mdval md --replicas N``'s printout: each replica's outcome and production window, then
    every observable combined over the replicas beside their scatter (the check of the error
    model, mdval.md.replicas.check_lines), and where the files are."""
    from mdval.md import replicas

    lines = [
        f"{combined.status}: {len(results)} replicas of {combined.protocol.upper()} in {combined.engine}"
        + (f", {combined.reason}" if combined.reason else "")
    ]
    for run in check["runs"]:
        result = results[run["replica"] - 1]
        window = result.observables.get("production_window")
        lines.append(
            f"replica {run['replica']} (seed {run['seed']}): {result.status}, {result.steps_done} steps"
            + (
                f", production window {window['start_ps']:.4g}-{window['end_ps']:.4g} ps, N_eff {window['n_eff']:.0f}"
                if window
                else ""
            )
            + f"  ({result.output_dir})"
        )
    if "analysis_error" in combined.observables:
        lines.append(f"no observables: {combined.observables['analysis_error']}")
    lines.append("combined over the completed replicas, against the between-replica scatter:")
    lines += replicas.check_lines(combined.observables, check, named_observables(combined.observables))
    cost = combined.timing or {}
    if cost.get("ms_per_step_steady") is not None:
        lines.append(
            f"{'cost':24s} {cost['ms_per_step_steady']:.3g} ms/step after the warm-up, "
            f"start-up {cost['startup_s']:.3g} s (mean of the replicas)"
        )
    lines.append(f"combined: {Path(combined.output_dir) / replicas.COMBINED_FILE}")
    return "\n".join(lines)


def run_workflow_command(args) -> int:
    from mdval.md import replicas
    from mdval.md.matrix import run_workflow
    from mdval.md.workflow import load_workflow

    summary = run_workflow(load_workflow(args.workflow).with_replicas(args.replicas), resume=not args.overwrite)
    failed = [r for r in summary["runs"] if r["status"] != "completed"]
    for r in summary["runs"]:
        print(
            f"{r['engine']:7s} {r['protocol']:4s} {r['role']:9s} {r['status']:9s} {r['potential']}"
            + (f"  ({r['reason']})" if r["reason"] else "")
        )
        if summary["replicas"] > 1:
            print(f"{'':7s} {replicas.check_summary(r['replicas'])}")
    return 1 if failed else 0
