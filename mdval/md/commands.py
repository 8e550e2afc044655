"""``mdval md nve|nvt|npt`` (one protocol) and ``mdval run WORKFLOW`` (a TOML spec).

    mdval md nve --reference emt:Cu --steps 2000 --out runs/md/emt-nve
    mdval md npt --model models/cu/cheb1-ekf.pt --engine lammps --np 2 --pressure-bar 1
    mdval run workflows/cu_emt.toml
"""

from __future__ import annotations

import json
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

OVERWRITE_HELP = ("start afresh: delete the run files in the output folder first, even those of another run "
                  "(--no-resume is the same). Without it a run resumes from its checkpoint, more --steps extend it, "
                  "and a folder that holds another run (other model, system, time step, seed or setting) is refused")


def register(subparsers) -> None:
    md = subparsers.add_parser("md", help="run one MD validation protocol (NVE, NVT or NPT)")
    md_sub = md.add_subparsers(dest="protocol", metavar="PROTOCOL", required=True)
    for kind in PROTOCOLS:
        p = md_sub.add_parser(kind, help=f"{kind.upper()} protocol", formatter_class=HelpFormatter)
        who = p.add_mutually_exclusive_group(required=True)
        who.add_argument("--model", help="an exported mdval model file (.pt)")
        who.add_argument("--reference", help="a reference potential: emt:Cu (ASE only) or lammps:Cu_u3.eam")
        p.add_argument("--engine", choices=("ase", "lammps"), default="ase", help="MD engine")
        p.add_argument("--np", type=positive_int, default=1, help="MPI ranks for the LAMMPS engine (mpirun -np N)")
        p.add_argument("--element", type=element_symbol, default="Cu", help="chemical element of the crystal")
        p.add_argument("--lattice", default="fcc", help="crystal structure, as ase.build.bulk names it")
        p.add_argument("--a-A", type=positive_float, default=3.61, dest="a_A", help="lattice constant in Å")
        p.add_argument("--supercell", type=positive_int, nargs=3, default=[3, 3, 3], metavar=("NX", "NY", "NZ"),
                       help="repeats of the cubic cell along x, y and z")
        p.add_argument("--timestep-fs", type=positive_float, default=1.0, help="time step in fs")
        p.add_argument("--temperature-K", type=positive_float, default=300.0, dest="temperature_K",
                       help="target and initial temperature in K")
        p.add_argument("--steps", type=positive_int, default=2000, help="production steps")
        p.add_argument("--equilibration-steps", type=non_negative_int, default=500,
                       help="NVT equilibration steps before production")
        p.add_argument("--warmup-ps", type=non_negative_float, default=0.0,
                       help="production time in ps skipped by the estimators")
        p.add_argument("--sample-interval", type=positive_int, default=10, help="thermo row every this many steps")
        p.add_argument("--trajectory-interval", type=positive_int, default=50,
                       help="trajectory frame every this many production steps")
        p.add_argument("--checkpoint-interval", type=positive_int, default=200,
                       help="checkpoint (restart file) every this many steps")
        p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the velocities and thermostats")
        p.add_argument("--thermostat", choices=THERMOSTATS,
                       default="nose-hoover-chain" if kind == "npt" else "langevin", help="thermostat")
        p.add_argument("--thermostat-damping-fs", type=positive_float, default=100.0,
                       help="thermostat time constant in fs")
        if kind == "npt":
            p.add_argument("--pressure-bar", type=finite_float, default=1.0, help="external pressure in bar")
            p.add_argument("--barostat-damping-fs", type=positive_float, default=1000.0,
                           help="barostat time constant in fs")
        p.add_argument("--temperature-limit-factor", type=positive_float, default=5.0,
                       help="fail when the temperature exceeds this times the target")
        p.add_argument("--min-distance-A", type=positive_float, default=0.5, dest="min_distance_A",
                       help="fail when two atoms come closer than this, in Å")
        p.add_argument("--max-volume-change", type=positive_float, default=0.5,
                       help="fail when |V/V0 - 1| exceeds this fraction")
        p.add_argument("--device", default="cpu", help="torch device for a model in the ASE engine")
        p.add_argument("--out", default=None,
                       help="output folder (default: runs/md/<model or reference>-<protocol>-<engine>)")
        p.add_argument("--overwrite", "--no-resume", dest="overwrite", action="store_true", help=OVERWRITE_HELP)
        p.set_defaults(func=run_md_command, protocol=kind)

    run = subparsers.add_parser("run", help="run an MD validation workflow spec (TOML)", formatter_class=HelpFormatter)
    run.add_argument("workflow", help="path to a workflow spec, e.g. workflows/cu_emt.toml")
    run.add_argument("--overwrite", "--no-resume", dest="overwrite", action="store_true",
                     help="start every run afresh, deleting the run files in the workflow's output_dir first "
                          "(--no-resume is the same). Without it runs resume or are reused, and a run folder that "
                          "holds another run is refused")
    run.set_defaults(func=run_workflow_command)


def run_md_command(args) -> int:
    from mdval.md.protocols import make_settings
    from mdval.md.results import Potential
    from mdval.md.stability import StabilityLimits
    from mdval.md.workflow import build_system

    values = {k: getattr(args, k) for k in ("timestep_fs", "temperature_K", "steps", "equilibration_steps", "warmup_ps",
                                            "sample_interval", "trajectory_interval", "checkpoint_interval", "seed",
                                            "thermostat", "thermostat_damping_fs")}
    if args.protocol == "npt":
        values.update(pressure_bar=args.pressure_bar, barostat_damping_fs=args.barostat_damping_fs)
    values["limits"] = StabilityLimits(temperature_limit_factor=args.temperature_limit_factor,
                                       min_distance_A=args.min_distance_A, max_volume_change=args.max_volume_change)
    settings = make_settings(args.protocol, **values)
    potential = Potential.resolve(args.model or args.reference)
    atoms = build_system(args.lattice, args.element, args.a_A, args.supercell)
    out = Path(args.out or f"runs/md/{potential.label.replace(':', '-')}-{args.protocol}-{args.engine}")
    if args.engine == "ase":
        from mdval.md.ase_engine import run_ase

        result = run_ase(atoms, potential, settings, out, resume=not args.overwrite, device=args.device)
    else:
        from mdval.md.lammps_engine import run_lammps

        result = run_lammps(atoms, potential, settings, out, np=args.np, resume=not args.overwrite)
    brief = {k: v for k, v in result.observables.items() if k not in ("rdf",)}
    brief.get("density", {}).pop("series_g_cm3", None)
    print(json.dumps({"status": result.status, "reason": result.reason, "time_to_failure_ps": result.time_to_failure_ps,
                      "output_dir": result.output_dir, **brief}, indent=1, default=str))
    return 0 if result.ok else 1


def run_workflow_command(args) -> int:
    from mdval.md.matrix import run_workflow
    from mdval.md.workflow import load_workflow

    summary = run_workflow(load_workflow(args.workflow), resume=not args.overwrite)
    failed = [r for r in summary["runs"] if r["status"] != "completed"]
    for r in summary["runs"]:
        print(f"{r['engine']:7s} {r['protocol']:4s} {r['role']:9s} {r['status']:9s} {r['potential']}"
              + (f"  ({r['reason']})" if r["reason"] else ""))
    return 1 if failed else 0
