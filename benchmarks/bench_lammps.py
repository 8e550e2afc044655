"""Benchmark pair_style taafs against pair_style eam on the same fcc Cu boxes.

Reports timesteps/s and µs/atom/step (wall time per step per atom, all ranks together) for Cu
with 864 and 4000 atoms on 1 and 2 MPI ranks (1 OpenMP/torch thread per rank), the median of
``--repeats`` runs of ``--steps`` NVE steps after a short warm-up.  Writes JSON and a Markdown table
into benchmarks/results/.  Model: the hand-written toy many-body model of the tests (until real
models are added with ``--model``, which must list Cu in its type_names).

    .venv/bin/python benchmarks/bench_lammps.py [--steps 50] [--repeats 3] [--model m.pt]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from lammps_helpers import run_lmp, save_toy_model  # noqa: E402

EAM_FILE = Path(metadata.distribution("lammps").locate_file("lammps/share/lammps/potentials/Cu_u3.eam"))
SIZES = {864: 6, 4000: 10}  # atoms -> fcc cubic cells per edge


def _script(pair: str, cells: int, steps: int) -> str:
    return f"""units metal
atom_style atomic
lattice fcc 3.615
region box block 0 {cells} 0 {cells} 0 {cells}
create_box 1 box
create_atoms 1 box
mass 1 63.546
{pair}
neighbor 1.0 bin
velocity all create 300.0 4928459 loop geom
fix 1 all nve
thermo 1000
run 5
run {steps}
"""


def _loop_time(log: str) -> tuple[float, int, int]:
    m = re.findall(r"Loop time of ([\d.eE+-]+) on \d+ procs for (\d+) steps with (\d+) atoms", log)
    t, steps, atoms = m[-1]
    return float(t), int(steps), int(atoms)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)

    from mdval.deploy import lammps_plugin

    lammps_plugin.build()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model or save_toy_model(tmp / "toy.pt", ["Cu"], cutoff=4.5)
        styles = {
            f"taafs ({'toy many-body' if args.model is None else args.model.name})": f"pair_style taafs threads 1\npair_coeff * * {model} Cu",
            "eam (Cu_u3)": f"pair_style eam\npair_coeff 1 1 {EAM_FILE}",
        }
        for label, pair in styles.items():
            for n_atoms, cells in SIZES.items():
                for nprocs in (1, 2):
                    steps = args.steps * (10 if label.startswith("eam") else 1)
                    times = []
                    for _ in range(args.repeats):
                        proc = run_lmp(_script(pair, cells, steps), tmp, nprocs=nprocs)
                        t, s, n = _loop_time(proc.log)
                        assert n == n_atoms, (n, n_atoms)
                        times.append(t / s)
                    per_step = statistics.median(times)
                    rows.append(
                        {
                            "pair_style": label,
                            "atoms": n_atoms,
                            "ranks": nprocs,
                            "steps": steps,
                            "repeats": args.repeats,
                            "timesteps_per_s": 1.0 / per_step,
                            "us_per_atom_step": per_step / n_atoms * 1e6,
                        }
                    )
                    print(rows[-1], flush=True)

    info = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": __import__("os").cpu_count(),
        },
        "versions": {k: metadata.version(k) for k in ("lammps", "torch", "mdval")},
        "threads_per_rank": 1,
        "results": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_lammps.json").write_text(json.dumps(info, indent=1) + "\n")
    lines = [
        f"# LAMMPS benchmark: pair_style taafs vs eam ({info['created']})",
        "",
        f"Machine: {info['machine']['platform']}, {info['machine']['cpu_count']} CPUs; "
        f"LAMMPS {info['versions']['lammps']}, torch {info['versions']['torch']}; "
        "1 thread per rank; median of "
        f"{args.repeats} runs.",
        "",
        "| pair_style | atoms | ranks | timesteps/s | µs/atom/step |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['pair_style']} | {r['atoms']} | {r['ranks']} | {r['timesteps_per_s']:.2f} "
        f"| {r['us_per_atom_step']:.3f} |"
        for r in rows
    ]
    (args.out / "bench_lammps.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
