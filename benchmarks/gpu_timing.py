"""GPU check, timings (issue 21): µs/atom/step of the peer-size DeepPot-SE (common.PEER_MODEL:
embedding [25, 50, 100], fitting [240, 240, 240], axis 16, rcut 6 Å, tanh, untrained weights),
exact and compressed, float64 and float32, on fcc Cu boxes (864, 4000, 32000, 108000 atoms), in
LAMMPS (``pair_style taafs device cuda``, 1 rank, NVE at 300 K, LAMMPS' loop time) and through
the ASE calculator (one energy + forces call on moved positions: neighbour list, copies, model,
results); and a profile of one calculator call (torch.profiler) that says where the time goes:
neighbour list, model, copies, kernel launches.

Subjects run in order of importance (LAMMPS before ASE, compressed float64 first), each size
ascending, and none starts after the deadline (``--budget-s``): those are recorded as skipped.
"""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import common

#: torch threads of the calculator timings (process-wide), as LAMMPS' 1 thread per rank: the host
#: side of a GPU run needs no more, and 2 threads on a loaded 2-core machine ran 3-6x slower.
THREADS = 1
#: (label, compressed, compute dtype), in the order they are timed.
VARIANTS = [
    ("compressed float64", True, "float64"),
    ("exact float64", False, "float64"),
    ("compressed float32", True, "float32"),
    ("exact float32", False, "float32"),
]


_written: dict[tuple, dict[str, Path]] = {}


def peer_models(folder: Path, dtypes: list[str]) -> dict[str, Path]:
    """The peer-size model files of VARIANTS (same weights), written afresh once per run."""
    key = (str(folder), tuple(dtypes))
    if key not in _written:
        _written[key] = write_peer_models(folder, dtypes)
    return _written[key]


def write_peer_models(folder: Path, dtypes: list[str]) -> dict[str, Path]:
    from mdval.deploy import export
    from mdval.deploy.compress import compress_file
    from mdval.nn import build_model

    folder.mkdir(parents=True, exist_ok=True)
    meta = {"optimizer": "none", "note": "untrained weights (speed benchmark)"}
    exact = export(build_model(common.PEER_MODEL), folder / "peer_float64.pt", meta)
    out = {}
    for label, compressed, dtype in VARIANTS:
        if dtype not in dtypes:
            continue
        path = folder / f"peer_{dtype}{'_compressed' if compressed else ''}.pt"
        if compressed:
            compress_file(exact, path, compute_dtype=dtype)
        elif dtype != "float64":
            export(build_model(common.PEER_MODEL), path, meta, compute_dtype=dtype)
        out[label] = path
    return out


def fcc_atoms(n_atoms: int, seed: int = 0):
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=common.FCC_CU_A, cubic=True).repeat(common.fcc_cells(n_atoms))
    atoms.positions += np.random.default_rng(seed).normal(0.0, 0.05, atoms.positions.shape)
    return atoms


def lammps_time(ctx, model: Path, n_atoms: int, folder: Path) -> dict:
    steps, warmup = (1, 1) if ctx.rehearsal else (max(5, min(50, 400_000 // n_atoms)), 3)
    pair = f"pair_style taafs device {ctx.device}\npair_coeff * * {model} Cu"
    script = common.cu_script(pair, common.fcc_cells(n_atoms), steps, warmup=warmup)
    log = common.run_lmp(script, folder, lmp=ctx.lmp, mpirun=ctx.mpirun, timeout=600)
    seconds, _, steps, atoms = common.loop_time(log)
    assert atoms == n_atoms, (atoms, n_atoms)
    out = {"steps": steps, "s/step": seconds / steps, "µs/atom/step": 1e6 * seconds / steps / n_atoms}
    calls = re.findall(r"rank 0 evaluates \d+ atoms \((\d+) edges\) in (\d+) model call", log)
    if calls:
        out["edges"], out["model calls"] = (int(x) for x in calls[-1])
    return out


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def ase_time(ctx, model: Path, n_atoms: int) -> dict:
    """Median of energy + forces calls on positions moved by ~0.001 Å between calls."""
    from ase.calculators.calculator import all_changes

    from mdval.deploy.calculator import Calculator

    repeats, warmup = (1, 1) if ctx.rehearsal else (max(3, min(10, 200_000 // n_atoms)), 2)
    cuda = ctx.device.startswith("cuda")
    calc = Calculator(model, device=ctx.device, threads=THREADS)
    atoms = fcc_atoms(n_atoms)
    rng = np.random.default_rng(1)
    for _ in range(warmup):
        calc.calculate(atoms, ["energy", "forces"], all_changes)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        atoms.positions += rng.normal(0.0, 0.001, atoms.positions.shape)
        start = time.perf_counter()
        calc.calculate(atoms, ["energy", "forces"], all_changes)  # results come back as numpy
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    out = {"steps": repeats, "s/step": seconds, "µs/atom/step": 1e6 * seconds / n_atoms}
    if cuda:
        out["GPU peak GiB"] = torch.cuda.max_memory_allocated() / 2**30
    del calc
    if cuda:
        torch.cuda.empty_cache()
    return out


def timing(ctx) -> dict:
    models = peer_models(ctx.work / "peer_models", ctx.dtypes)
    rows = []
    for engine in ctx.engines:
        for label, path in models.items():
            for n_atoms in ctx.sizes:
                row = {"engine": engine, "model": label, "atoms": n_atoms}
                rows.append(row)
                if time.monotonic() > ctx.deadline:
                    row["error"] = "skipped: --budget-s spent"
                    continue
                try:
                    if engine == "lammps":
                        row.update(lammps_time(ctx, path, n_atoms, ctx.work / "timing" / f"{path.stem}_{n_atoms}"))
                    else:
                        row.update(ase_time(ctx, path, n_atoms))
                except Exception as exc:  # noqa: BLE001 - recorded; the next subject still runs
                    row["error"] = f"{type(exc).__name__}: {str(exc)[-800:]}"
                shown = f"{row['µs/atom/step']:.4g} µs/atom/step" if "µs/atom/step" in row else row["error"][:200]
                print(f"  {engine} {label} {n_atoms} atoms: {shown}", flush=True)
                ctx.save_partial(timing_result(ctx, rows))
    return timing_result(ctx, rows)


def timing_result(ctx, rows: list[dict]) -> dict:
    measured = [r for r in rows if "µs/atom/step" in r]
    return {
        "ok": len(measured) == len(rows),
        "columns": [
            "engine",
            "model",
            "atoms",
            "µs/atom/step",
            "s/step",
            "steps",
            "edges",
            "model calls",
            "GPU peak GiB",
            "error",
        ],
        "rows": rows,
        "summary": (
            f"peer-size DeepPot-SE on {ctx.device}; LAMMPS: 1 rank, loop time of the timed run "
            "after a warm-up run; ASE: median of energy+forces calls (neighbour list on the CPU "
            f"included), {THREADS} torch thread; {len(measured)} of {len(rows)} subjects measured. "
            "Target (issue 21): compressed float64 at 108000 atoms in LAMMPS on one H200 <= 0.5 "
            "µs/atom/step"
            + (
                ". Rehearsal: 1 step per subject on a shared CPU, a test of the "
                "script, not a CPU reference (see RESULTS.md for those)"
                if ctx.rehearsal
                else ""
            )
        ),
    }


# --- profile ------------------------------------------------------------------------------------


def call_breakdown(calc, atoms, device: str) -> dict:
    """Seconds of one calculator call split into inputs (neighbour list + copy to the device),
    model (energy, forces, virial) and results (copy back)."""
    t0 = time.perf_counter()
    inputs = calc.inputs(atoms)
    synchronize(device)
    t1 = time.perf_counter()
    outputs = calc.evaluate(inputs, atom_virial=False)
    synchronize(device)
    t2 = time.perf_counter()
    calc.results_from(outputs, atoms)
    t3 = time.perf_counter()
    return {"neighbour list + copy in": t1 - t0, "model": t2 - t1, "copy out": t3 - t2}


def event_rows(prof, cuda: bool, limit: int = 15) -> list[dict]:
    """The ``limit`` operators with the most self time on the device (CPU in the rehearsal)."""

    def device_us(e):
        return getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0.0)

    events = list(prof.key_averages())
    key = device_us if cuda else (lambda e: e.self_cpu_time_total)
    rows = []
    for e in sorted(events, key=key, reverse=True)[:limit]:
        rows.append(
            {
                "operator": e.key,
                "calls": e.count,
                "self CPU ms": e.self_cpu_time_total / 1e3,
                "self device ms": device_us(e) / 1e3 if cuda else None,
            }
        )
    launches = sum(e.count for e in events if "LaunchKernel" in e.key)
    rows.append({"operator": "(kernel launches, all operators)", "calls": launches})
    return rows


def profile(ctx) -> dict:
    """torch.profiler over 3 calculator calls of the first model of VARIANTS (compressed float64)
    at the largest size (1 call at the smallest in the rehearsal)."""
    from mdval.deploy.calculator import Calculator

    label, model = next(iter(peer_models(ctx.work / "peer_models", ctx.dtypes).items()))
    n_atoms, calls = (min(ctx.sizes), 1) if ctx.rehearsal else (max(ctx.sizes), 3)
    calc = Calculator(model, device=ctx.device, threads=THREADS)
    atoms = fcc_atoms(n_atoms)
    for _ in range(min(calls, 2)):
        call_breakdown(calc, atoms, ctx.device)
    split = [call_breakdown(calc, atoms, ctx.device) for _ in range(calls)]
    cuda = ctx.device.startswith("cuda")
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(calls):
            call_breakdown(calc, atoms, ctx.device)
    parts = {k: statistics.median(s[k] for s in split) for k in split[0]}
    rows = [
        {"operator": f"[{k}] (median wall ms per call)", "calls": 1, "self CPU ms": 1e3 * v} for k, v in parts.items()
    ]
    rows += event_rows(prof, cuda)
    return {
        "ok": True,
        "columns": ["operator", "calls", "self CPU ms", "self device ms"],
        "rows": rows,
        "summary": (
            f"ASE calculator, {label} peer-size DeepPot-SE, {n_atoms} atoms on "
            f"{ctx.device}: where one call's time goes (bracketed rows: wall time per call, "
            f"synchronised), then the operators of {calls} profiled call(s) by self time"
        ),
    }
