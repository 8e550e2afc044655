"""Benchmark the cost of a committee of 4 models (issue 19 item 5), in LAMMPS and in ASE.

LAMMPS: fcc Cu, NVE at 300 K, 1 MPI rank and 1 thread, the time per step (wall, and CPU = wall x
LAMMPS' "CPU use") of

- ``single``: ``pair_style taafs`` with the driving model alone;
- ``committee_out10``: ``pair_style taafs committee m2 m3 m4 out_freq 10`` (the members are
  evaluated every 10th step; target <= 1.35x single, since 3 extra evaluations every 10 steps
  cost 1.3x);
- ``committee_out1``: the same with ``out_freq 1`` (every member every step: about 4x, the cost
  of the deviation itself on top of 4 model evaluations).

ASE: the CPU time (1 torch thread) of one energy+forces+stress call of
``mdval.Calculator([m1, m2, m3, m4])`` against four calls of ``mdval.Calculator(mk)`` on the same
atoms (target: <= 4x one call; the committee builds one neighbour list for all four).

Models: untrained DeepPot-SE of the zoo's size (embedding [8, 16], fitting [32, 32], cutoff 5 Å)
and of the DeePMD paper's size ([25, 25, 25] / [50, 50, 50], cutoff 6 Å), tanh, four seeds each.
Subjects are interleaved (A B C A B C ...); medians and their spread are reported. Writes
benchmarks/results/committee.json and committee.md.

    .venv/bin/python benchmarks/bench_committee.py [--atoms 864] [--steps 100] [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mdval.nn.deeppot import DEEPPOT_DEFAULTS

import common

N_MEMBERS = 4
OUT_FREQ = 10
TARGET_LAMMPS = 1.35  # committee_out10 / single, per step
MODELS = {
    "zoo": {
        **DEEPPOT_DEFAULTS,
        "type_names": ["Cu"],
        "cutoff": 5.0,
        "cutoff_smooth": 3.5,
        "embedding": [8, 16],
        "fitting": [32, 32],
        "axis_neuron": 8,
        "neighbor_norm": 40.0,
    },
    "paper": {**DEEPPOT_DEFAULTS, "type_names": ["Cu"]},
}


def lammps_subjects(paths: list[Path], n_atoms: int, steps: int, folder: Path) -> dict:
    cells = common.fcc_cells(n_atoms)
    first, members = paths[0], " ".join(str(p) for p in paths[1:])
    pairs = {
        "single": f"pair_style taafs\npair_coeff * * {first} Cu",
        "committee_out10": (
            f"pair_style taafs committee {members} out_freq {OUT_FREQ} out_file devi.out\npair_coeff * * {first} Cu"
        ),
        "committee_out1": (
            f"pair_style taafs committee {members} out_freq 1 out_file devi.out\npair_coeff * * {first} Cu"
        ),
    }
    # warm-up of OUT_FREQ steps: the members' first (slow) calls happen before the timed run
    return {
        name: (
            lambda pair=pair, name=name: common.lmp_per_step(
                common.cu_script(pair, cells, steps, warmup=OUT_FREQ), folder / name, n_atoms
            )
        )
        for name, pair in pairs.items()
    }


def ase_subjects(paths: list[Path], n_atoms: int) -> dict:
    import torch
    from ase.build import bulk

    import mdval

    torch.set_num_threads(1)  # as the LAMMPS runs; CPU time below, robust to a loaded machine

    cells = common.fcc_cells(n_atoms)
    atoms = bulk("Cu", "fcc", a=common.FCC_CU_A, cubic=True).repeat(cells)
    atoms.rattle(0.05, seed=0)
    committee = mdval.Calculator([str(p) for p in paths])
    singles = [mdval.Calculator(str(p)) for p in paths]
    properties = ["energy", "forces", "stress"]

    def timed(calculators) -> float:
        start = time.process_time()
        for calc in calculators:
            calc.calculate(atoms, properties)
        return time.process_time() - start

    timed([committee, *singles])  # first calls (TorchScript warm-up) are not timed
    return {
        "ase_single": lambda: timed(singles[:1]),
        "ase_committee": lambda: timed([committee]),
        f"ase_{N_MEMBERS}_singles": lambda: timed(singles),
    }


def summary(samples: dict, errors: dict) -> dict:
    """Median and spread of each subject's samples: wall and CPU seconds per step (LAMMPS) or
    CPU seconds per call (ASE, stored as "wall": the one number it has)."""
    out = {}
    for name, xs in samples.items():
        entry = {"samples": xs, "error": errors.get(name)}
        for key in ("wall", "cpu") if xs and isinstance(xs[0], dict) else ("wall",):
            values = common.pick(xs, key)
            entry[f"{key}_median_s"] = common.median(values)
            entry[f"{key}_spread"] = common.spread(values)
        out[name] = entry
    return out


def ratio(results: dict, a: str, b: str, key: str) -> float | None:
    x, y = results.get(a, {}).get(key), results.get(b, {}).get(key)
    return x / y if x and y else None


def _milliseconds(results: dict):
    """ms(subject, key): a subject's median in ms, as the table shows it."""

    def ms(subject: str, key: str = "cpu_median_s") -> str:
        value = results.get(subject, {}).get(key)
        return common.fmt(value * 1e3) if value else "–"

    return ms


def markdown(report: dict) -> str:
    lines = [
        "# Committee cost (issue 19 item 5)",
        "",
        common.header_line(report),
        "",
        f"{report['atoms']} fcc Cu atoms, 1 MPI rank, 1 thread; {N_MEMBERS} members; LAMMPS: "
        f"{report['steps']} NVE steps per run, {report['repeats']} interleaved runs per subject "
        "(medians; spread = (max - min)/median).",
        "",
        "| model | LAMMPS single ms/step (CPU) | committee out_freq 10 | ratio (target ≤ "
        f"{TARGET_LAMMPS}) | committee out_freq 1 | ratio | ASE 1 call ms (CPU) | ASE committee | "
        f"ASE {N_MEMBERS} calls | committee / 1 call (target ≤ {N_MEMBERS}) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["models"].items():
        ms = _milliseconds(r["results"])
        lines.append(
            f"| {name} | {ms('single')} | {ms('committee_out10')} | "
            f"{common.fmt(r['ratio_out10'])} | {ms('committee_out1')} | {common.fmt(r['ratio_out1'])} | "
            f"{ms('ase_single', 'wall_median_s')} | {ms('ase_committee', 'wall_median_s')} | "
            f"{ms(f'ase_{N_MEMBERS}_singles', 'wall_median_s')} | {common.fmt(r['ratio_ase'])} |"
        )
    lines += [
        "",
        "Ratios use CPU times: per step in LAMMPS (wall time × LAMMPS' CPU use), per call "
        "in ASE (process CPU time, 1 torch thread).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atoms", type=int, default=864)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="108 atoms, 20 steps, 1 repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.atoms, args.steps, args.repeats = 108, 20, 1
    report = {
        "created": common.now(),
        "machine": common.machine(),
        "versions": common.versions(),
        "load_before": common.load(),
        "atoms": args.atoms,
        "steps": args.steps,
        "repeats": args.repeats,
        "members": N_MEMBERS,
        "out_freq": OUT_FREQ,
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, config in MODELS.items():
            folder = Path(tmp) / name
            paths = [common.export_model({**config, "seed": seed}, folder / f"m{seed}.pt") for seed in range(N_MEMBERS)]
            print(f"{name}: LAMMPS", flush=True)
            samples, errors = common.interleaved(lammps_subjects(paths, args.atoms, args.steps, folder), args.repeats)
            print(f"{name}: ASE", flush=True)
            ase_samples, ase_errors = common.interleaved(ase_subjects(paths, args.atoms), max(args.repeats, 5))
            results = {**summary(samples, errors), **summary(ase_samples, ase_errors)}
            report["models"][name] = {
                "config": config,
                "results": results,
                "ratio_out10": ratio(results, "committee_out10", "single", "cpu_median_s"),
                "ratio_out1": ratio(results, "committee_out1", "single", "cpu_median_s"),
                "ratio_ase": ratio(results, "ase_committee", "ase_single", "wall_median_s"),
            }
    report["load_after"] = common.load()
    text = markdown(report)
    common.write_results("committee", report, text, quick=args.quick, section=False)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
