"""Benchmark: DeepPot-SE on generated EMT-Cu data (600 frames, 32-108 atoms, 300-1200 K), tanh
against per-layer Chebyshev (1st kind) TAAFS, Adam, the same wall-time budget each.

    .venv/bin/python benchmarks/train_emt_cu.py [--budget-min 15] [--parallel]

Writes benchmarks/results/train_emt_cu.{json,md}: machine, versions, final test RMSE/MAE, and the
wall time at which the validation force RMSE first reached 0.03 eV/Å. ``--parallel`` trains the
two models at the same time, one thread each (same conditions for both on a 2-core machine).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"tanh": "models/configs/cu_emt_tanh_adam.toml", "cheb1-layer": "models/configs/cu_emt_cheb1_adam.toml"}
TARGET_FORCE_RMSE_eV_PER_A = 0.03
RUN_DIR = "benchmarks/runs"


def time_to_target(log_path: Path, target: float) -> float | None:
    """Wall time (s) of the first epoch whose validation force RMSE is <= target (eV/Å)."""
    if not log_path.exists():
        return None
    for line in log_path.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("val", {}).get("force_rmse_eV_per_A", 1e9) <= target:
            return rec["time_s"]
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-min", type=float, default=15.0, help="training wall time per model (min)")
    parser.add_argument("--parallel", action="store_true", help="train both models at once, 1 thread each")
    parser.add_argument("--only", choices=sorted(CONFIGS), action="append", help="train only these")
    args = parser.parse_args(argv)
    import torch

    from mdval import __version__
    from mdval.data.generate import GenerateSettings, generate
    from mdval.train.config import load_config

    names = args.only or list(CONFIGS)
    cfg = load_config(ROOT / CONFIGS[names[0]])
    data_path = ROOT / cfg["data"]["train"][0]
    generate(GenerateSettings(**cfg["data"]["generate"]), data_path)  # cached after the first run
    procs = {}
    import shutil

    for name in names:
        # A fresh run each time: `mdval train` refuses a folder that already holds a run, and
        # the old metrics.json must never be reported as this run's.
        old_run = ROOT / RUN_DIR / load_config(ROOT / CONFIGS[name])["run"]["name"]
        if old_run.exists():
            shutil.rmtree(old_run)
        cmd = [
            sys.executable,
            "-m",
            "mdval",
            "train",
            str(ROOT / CONFIGS[name]),
            "--quiet",
            "--set",
            f"run.dir='{RUN_DIR}'",
            "--set",
            f"training.max_time_min={args.budget_min}",
        ]
        env = dict(os.environ)
        if args.parallel:
            env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        (ROOT / RUN_DIR).mkdir(parents=True, exist_ok=True)
        log = open(ROOT / RUN_DIR / f"{name}.out", "w")
        procs[name] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        if not args.parallel:
            procs[name].wait()
    for p in procs.values():
        p.wait()
    results = {}
    for name in names:
        run_name = load_config(ROOT / CONFIGS[name])["run"]["name"]
        metrics_path = ROOT / RUN_DIR / run_name / "metrics.json"
        if procs[name].returncode or not metrics_path.exists():
            results[name] = {"error": f"mdval train exited with {procs[name].returncode}; see {RUN_DIR}/{name}.out"}
            continue
        m = json.loads(metrics_path.read_text())
        results[name] = {
            "activation": m["activation"],
            "epochs": m["epochs"],
            "steps": m["steps"],
            "wall_time_s": m["wall_time_s"],
            "stopped_by": m["stopped_by"],
            "test": m["test"],
            "time_to_val_force_rmse_0.03_s": time_to_target(
                ROOT / RUN_DIR / run_name / "log.jsonl", TARGET_FORCE_RMSE_eV_PER_A
            ),
            "model": m["model"],
        }
    report = {
        "benchmark": "train_emt_cu",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "load_avg_at_end": os.getloadavg(),
        },
        "versions": {"mdval": __version__, "torch": torch.__version__, "python": platform.python_version()},
        "settings": {
            "budget_min": args.budget_min,
            "parallel_1_thread_each": args.parallel,
            "data": str(data_path.relative_to(ROOT)),
            "configs": {n: CONFIGS[n] for n in names},
            "target_force_rmse_eV_per_A": TARGET_FORCE_RMSE_eV_PER_A,
        },
        "results": results,
    }
    out = ROOT / "benchmarks/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_emt_cu.json").write_text(json.dumps(report, indent=1))
    lines = [
        "# DeepPot-SE on EMT Cu: tanh vs per-layer Chebyshev TAAFS (Adam)",
        "",
        f"{report['date']}; {report['machine']['platform']}, {os.cpu_count()} CPUs (shared); "
        f"torch {torch.__version__}, mdval {__version__}; budget {args.budget_min} min per model"
        f"{', both at once, 1 thread each' if args.parallel else ''}.",
        "",
        "| activation | epochs | steps | wall s | test E RMSE meV/atom | test F RMSE eV/Å | "
        "test F MAE eV/Å | s to val F RMSE ≤ 0.03 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | error: {r['error']} |||||||")
            continue
        t = r["test"]
        lines.append(
            f"| {r['activation']} | {r['epochs']} | {r['steps']} | {r['wall_time_s']} | "
            f"{t['energy_rmse_meV_per_atom']:.3g} | {t['force_rmse_eV_per_A']:.4f} | "
            f"{t['force_mae_eV_per_A']:.4f} | {r['time_to_val_force_rmse_0.03_s'] or 'not reached'} |"
        )
    (out / "train_emt_cu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
