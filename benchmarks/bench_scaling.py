"""Scaling of the cost per atom-step with system size, and the MPI speed-up (issue 9, item 3).

fcc Cu boxes of 108 to 108 000 atoms (cubic supercells), DeepPot-SE of the paper's size
(embedding [25, 25, 25], fitting [50, 50, 50], axis 16, rcut 6 Å, tanh, float64, untrained
weights: the cost does not depend on them), 1 thread per rank:
- LAMMPS ``pair_style taafs``: µs/atom/step (NVE, 300 K) on 1 rank, and 1 vs 2 ranks for the
  sizes in ``--mpi-sizes``; peak resident memory of the (rank-0) process;
- ASE ``mdval.Calculator``: µs/atom of one energy+forces call (1 thread), peak memory growth.
Both engines evaluate the atoms in chunks (``pair_style taafs chunk``, ``Calculator(chunk=)``;
``--chunk``, default ``auto``: at most 10 000 edges per model call on the CPU), so memory no
longer grows with the per-edge intermediates of all atoms; at the sizes in ``--compare-at`` each engine also
runs with ``chunk off`` (one model call for all atoms, the behaviour before chunking) to measure
the memory and time chunking saves.
Sizes are interleaved (round-robin) so that a change of machine load hits all of them. A size
whose estimated memory (peak RSS per atom of the largest size run so far with the same chunk
setting, x 1.3: an over-estimate when chunked) does not fit in the memory available now is
skipped and reported as such.

Targets: flat µs/atom/step (within 20 %) from 10³ to 10⁵ atoms; ≥ 1.7× on 2 ranks at 4000 atoms.

    .venv/bin/python benchmarks/bench_scaling.py [--quick] [--repeats 2] [--min-atoms 2048]
        [--max-atoms 108000] [--mpi-sizes 4000] [--chunk auto] [--compare-at 32000]
        [--engines lammps ase]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

NAME = "scaling"
MODEL = {**common.PEER_MODEL, "embedding": [25, 25, 25], "fitting": [50, 50, 50], "neighbor_norm": 80.0}
CELLS = [3, 5, 8, 10, 15, 20, 30]  # 108, 500, 2048, 4000, 13500, 32000, 108000 atoms


def mem_available_GiB() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable"):
            return int(line.split()[1]) / 2**20
    return 0.0


def steps_for(n: int) -> int:
    return max(1, min(50, int(20000 / n)))


def lammps_run(model: Path, cells: int, nprocs: int, work: Path, chunk: str) -> tuple[dict, float]:
    """({wall, cpu} s per step, peak RSS GiB of the largest process of the run)."""
    n = 4 * cells**3
    script = common.cu_script(
        f"pair_style taafs threads 1 chunk {chunk}\npair_coeff * * {model} Cu", cells, steps_for(n), warmup=1
    )
    d = work / f"lmp_{n}_{nprocs}_chunk_{chunk}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "in.lmp").write_text(script)
    cmd = [common.LMP, "-in", "in.lmp", "-log", "log.lammps", "-screen", "none"]
    if nprocs > 1:
        cmd = [common.MPIRUN, "-np", str(nprocs)] + cmd
    cmd = ["/usr/bin/time", "-f", "%M", "-o", "maxrss.txt"] + cmd
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=d, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"lmp failed in {d}: {proc.stderr[-1500:]}")
    log = (d / "log.lammps").read_text()
    t, _, steps, atoms = common.loop_time(log)
    assert atoms == n
    rss = int((d / "maxrss.txt").read_text().split()[-1]) / 2**20
    frac = common.loop_cpu_fraction(log)
    calls = re.findall(r"rank 0 evaluates \d+ atoms \((\d+) edges\) in (\d+) model call", log)
    out = {"wall": t / steps, "cpu": t * frac / steps if frac else None}
    if calls:
        out["rank0_edges"], out["rank0_model_calls"] = (int(x) for x in calls[-1])
    return out, rss


ASE_CODE = r"""
import json, resource, sys, time
import numpy as np, torch
from ase.build import bulk
from ase.calculators.calculator import all_changes
from mdval.deploy.calculator import Calculator
path, cells, repeats, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
calc = Calculator(path, threads=1, chunk=int(chunk) if chunk.isdigit() else chunk)
atoms = bulk("Cu", "fcc", a=3.615, cubic=True).repeat((cells,) * 3)
atoms.positions += np.random.default_rng(0).normal(0.0, 0.05, atoms.positions.shape)
calc.calculate(atoms, ["energy", "forces"], all_changes)
ts, cs = [], []
for _ in range(repeats):
    t, c = time.perf_counter(), time.process_time()
    calc.calculate(atoms, ["energy", "forces"], all_changes)
    ts.append(time.perf_counter() - t); cs.append(time.process_time() - c)
print(json.dumps({"wall": sorted(ts)[len(ts) // 2], "cpu": sorted(cs)[len(cs) // 2],
                  "rss_GiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def ase_run(model: Path, cells: int, chunk: str) -> tuple[dict, float]:
    """({wall, cpu} s per energy+forces call, peak RSS GiB), in a fresh process (own peak memory)."""
    import json

    n = 4 * cells**3
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", ASE_CODE, str(model), str(cells), str(max(1, min(5, int(8000 / n)))), chunk],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode:
        raise RuntimeError(proc.stderr[-1500:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall": out["wall"], "cpu": out["cpu"]}, out["rss_GiB"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 108 and 500 atoms, 1 round")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--min-atoms", type=int, default=0)
    parser.add_argument("--max-atoms", type=int, default=108000)
    parser.add_argument("--mpi-sizes", type=int, nargs="+", default=[4000, 13500])
    parser.add_argument(
        "--chunk", default="auto", help="pair_style taafs chunk / Calculator(chunk=): auto, off or N atoms"
    )
    parser.add_argument(
        "--compare-at",
        type=int,
        nargs="*",
        default=[32000],
        help="sizes also run with chunk off (one model call), 1 rank",
    )
    parser.add_argument("--engines", nargs="+", default=["lammps", "ase"], choices=["lammps", "ase"])
    parser.add_argument(
        "--mem-fraction",
        type=float,
        default=0.6,
        help="use at most this fraction of MemAvailable (the machine is shared)",
    )
    args = parser.parse_args(argv)
    cells = [c for c in CELLS if args.min_atoms <= 4 * c**3 <= args.max_atoms]
    if args.quick:
        cells, args.repeats, args.mpi_sizes, args.compare_at = [3, 5], 1, [500], [500]
    from mdval.deploy import lammps_plugin

    lammps_plugin.build()
    work = common.RUNS / NAME
    model = common.export_model(MODEL, work / "paper_tanh.pt")
    load_before = common.load()
    samples: dict[tuple, list] = {}
    rss: dict[tuple, float] = {}
    skipped: dict[str, str] = {}
    errors: dict[str, str] = {}
    gib_per_atom: dict[tuple, float] = {}
    largest: dict[tuple, int] = {}
    for r in range(args.repeats):
        for c in cells:
            n = 4 * c**3
            jobs = [(kind, 1, args.chunk) for kind in args.engines]
            jobs += [("lammps", 2, args.chunk)] * (n in args.mpi_sizes and "lammps" in args.engines)
            if args.chunk != "off" and n in args.compare_at:
                jobs += [(kind, 1, "off") for kind in args.engines]
            for kind, nprocs, chunk in jobs:
                key = (kind, n, nprocs, chunk)
                label = f"{kind} {n} chunk {chunk}"
                if label in skipped or str(key) in errors:
                    continue
                per_atom = gib_per_atom.get((kind, chunk))
                if per_atom is not None and n > 5000:
                    need = 1.3 * per_atom * n  # peak RSS of the largest size so far, scaled
                    avail = args.mem_fraction * mem_available_GiB()
                    if need > avail:
                        skipped[label] = (
                            f"estimated {need:.1f} GiB > {avail:.1f} GiB ({args.mem_fraction:.0%} of MemAvailable)"
                        )
                        print(f"  skip {label}: {skipped[label]}", flush=True)
                        continue
                t0 = time.perf_counter()
                try:
                    s, mem = lammps_run(model, c, nprocs, work, chunk) if kind == "lammps" else ase_run(model, c, chunk)
                except Exception as exc:  # noqa: BLE001 - reported
                    errors[str(key)] = f"{type(exc).__name__}: {exc}"
                    print(f"  {key} failed: {errors[str(key)][:300]}", flush=True)
                    continue
                samples.setdefault(key, []).append(s)
                rss[key] = max(rss.get(key, 0.0), mem)
                if nprocs == 1 and n >= 2000 and n >= largest.get((kind, chunk), 0):
                    largest[(kind, chunk)] = n  # estimate from the largest size run so far
                    gib_per_atom[(kind, chunk)] = mem / n
                calls = f", {s['rank0_model_calls']} model calls" if "rank0_model_calls" in s else ""
                print(
                    f"  round {r + 1} {kind} {n} atoms {nprocs} rank(s) chunk {chunk}: "
                    f"{s['wall'] / n * 1e6:.1f} µs/atom/step (CPU {(s['cpu'] or 0) / n * 1e6:.1f}), "
                    f"{mem:.2f} GiB{calls} ({time.perf_counter() - t0:.0f} s, load {common.load()[0]})",
                    flush=True,
                )
    rows = []
    for (kind, n, nprocs, chunk), xs in sorted(samples.items()):
        med, cpu = common.median(common.pick(xs, "wall")), common.median(common.pick(xs, "cpu"))
        rows.append(
            {
                "engine": kind,
                "atoms": n,
                "ranks": nprocs,
                "chunk": chunk,
                "samples_s": xs,
                "model_calls_rank0": xs[-1].get("rank0_model_calls"),
                "us_per_atom_step": med / n * 1e6,
                "cpu_us_per_atom_step": cpu / n * 1e6 if cpu else None,
                "peak_rss_GiB": rss[(kind, n, nprocs, chunk)],
                "spread": common.spread(common.pick(xs, "wall")),
            }
        )

    def same(row, **kw):
        return next((x for x in rows if all(x[k] == v for k, v in {**row, **kw}.items())), None)

    for row in rows:
        if row["ranks"] == 2:
            one = same({"engine": row["engine"], "atoms": row["atoms"], "chunk": row["chunk"]}, ranks=1)
            row["speedup_vs_1_rank"] = one["us_per_atom_step"] / row["us_per_atom_step"] if one else None
            row["cpu_speedup_vs_1_rank"] = (
                one["cpu_us_per_atom_step"] / row["cpu_us_per_atom_step"]
                if one and one["cpu_us_per_atom_step"] and row["cpu_us_per_atom_step"]
                else None
            )
    chunk_vs_off = []
    for row in rows:
        if row["chunk"] == "off" and row["ranks"] == 1:
            chunked = same({"engine": row["engine"], "atoms": row["atoms"], "ranks": 1}, chunk=args.chunk)
            if chunked:
                chunk_vs_off.append(
                    {
                        "engine": row["engine"],
                        "atoms": row["atoms"],
                        "rss_GiB_off": row["peak_rss_GiB"],
                        "rss_GiB_chunked": chunked["peak_rss_GiB"],
                        "rss_ratio": row["peak_rss_GiB"] / chunked["peak_rss_GiB"],
                        "cpu_ratio_chunked_over_off": (
                            chunked["cpu_us_per_atom_step"] / row["cpu_us_per_atom_step"]
                            if chunked["cpu_us_per_atom_step"] and row["cpu_us_per_atom_step"]
                            else None
                        ),
                        "wall_ratio_chunked_over_off": chunked["us_per_atom_step"] / row["us_per_atom_step"],
                    }
                )
    flat = {}
    for kind in ("lammps", "ase"):
        for metric in ("us_per_atom_step", "cpu_us_per_atom_step"):
            xs = {
                r["atoms"]: r[metric]
                for r in rows
                if r["engine"] == kind and r["ranks"] == 1 and r["chunk"] == args.chunk and r[metric]
            }
            big = {n: v for n, v in xs.items() if n >= 1000}
            if len(big) >= 2:
                flat[f"{kind} {'CPU' if metric.startswith('cpu') else 'wall'}"] = {
                    "min": min(big.values()),
                    "max": max(big.values()),
                    "max_over_min": max(big.values()) / min(big.values()),
                    "atoms": sorted(big),
                }
    report = {
        "benchmark": NAME,
        "created": common.now(),
        "machine": common.machine(),
        "versions": common.versions(),
        "load_before": load_before,
        "load_after": common.load(),
        "repeats": args.repeats,
        "model": MODEL,
        "weights": "untrained",
        "chunk": args.chunk,
        "results": rows,
        "chunk_vs_off": chunk_vs_off,
        "flatness_1e3_up": flat,
        "skipped": skipped,
        "errors": errors,
        "gib_per_atom": {f"{k} chunk {c}": v for (k, c), v in gib_per_atom.items()},
    }
    text = markdown(report)
    common.write_results(NAME, report, text, quick=args.quick)
    print(text)
    return 0


def markdown(rep: dict) -> str:
    lines = [
        f"# Scaling: µs/atom/step from 10² to 10⁵ atoms, and 1 → 2 MPI ranks ({rep['created']})",
        "",
        common.header_line(rep),
        "",
        "DeepPot-SE [25, 25, 25] / [50, 50, 50], axis 16, rcut 6 Å, tanh, float64, untrained weights; "
        "fcc Cu (78 neighbours per atom); 1 thread per rank. LAMMPS: pair_style taafs, NVE 300 K, wall time "
        "per step per atom (all ranks together). ASE: one mdval.Calculator energy+forces call. "
        f"Chunks: `chunk {rep['chunk']}` (pair_style taafs keyword / Calculator(chunk=); auto = at most "
        "10 000 edges per model call on the CPU), `off` = one model call per rank for all its atoms; "
        "model calls: rank 0's calls per step (LAMMPS log). Sizes interleaved, "
        f"medians of {rep['repeats']} rounds. Peak memory: max RSS of the process (lmp under mpirun: "
        "of the mpirun tree's largest process).",
        "",
        "| engine | atoms | ranks | chunk | model calls | µs/atom/step | CPU µs/atom/step | "
        "2-rank speed-up (wall / CPU) | peak RSS GiB | spread |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rep["results"]:
        lines.append(
            f"| {r['engine']} | {r['atoms']} | {r['ranks']} | {r['chunk']} | "
            f"{common.fmt(r.get('model_calls_rank0'))} | {common.fmt(r['us_per_atom_step'])} | "
            f"{common.fmt(r['cpu_us_per_atom_step'])} | "
            f"{common.fmt(r.get('speedup_vs_1_rank'))} / {common.fmt(r.get('cpu_speedup_vs_1_rank'))} | "
            f"{common.fmt(r['peak_rss_GiB'])} | {common.fmt(r['spread'], 2)} |"
        )
    lines += [""]
    for c in rep.get("chunk_vs_off", []):
        lines.append(
            f"- {c['engine']} {c['atoms']} atoms: peak RSS {common.fmt(c['rss_GiB_off'])} GiB with chunk off, "
            f"{common.fmt(c['rss_GiB_chunked'])} GiB with chunk {rep['chunk']} (off / chunked = {c['rss_ratio']:.1f}); "
            f"time chunked / off = {common.fmt(c['cpu_ratio_chunked_over_off'])} (CPU), "
            f"{common.fmt(c['wall_ratio_chunked_over_off'])} (wall)."
        )
    for kind, f in rep["flatness_1e3_up"].items():
        lines.append(
            f"- {kind} (chunk {rep['chunk']}): max/min µs/atom/step over {f['atoms'][0]}–{f['atoms'][-1]} "
            f"atoms = {f['max_over_min']:.2f} (target ≤ 1.2 from 10³ to 10⁵)."
        )
    for k, v in rep["skipped"].items():
        lines.append(f"- skipped {k}: {v}.")
    for k, v in rep["errors"].items():
        lines.append(f"- error {k}: `{v[:300]}`")
    lines.append(
        "- Target: ≥ 1.7× on 2 ranks at 4000 atoms (wall speed-up is only meaningful on an otherwise "
        "idle machine; the CPU-time one assumes each rank had a core of its own)."
    )
    lines.append("- CPU µs/atom/step: LAMMPS wall × 'CPU use' of rank 0; ASE: process CPU time of the call.")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
