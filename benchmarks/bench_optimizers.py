"""Benchmark of the optimizers (issue 4): Adam, EKF and RLEKF on the EMT-Cu set.

For each activation (``tanh`` and a per-layer TAAFS family) and each optimizer it trains the same
small DeepPot-SE (same seed, same energy shift and descriptor statistics) on the same split, one
frame per batch, and records after every epoch the validation energy/force RMSE and the training
wall time. Each run is a separate process (so ``ru_maxrss`` is that run's peak memory) with
``torch.set_num_threads(--threads)``. Reported per (activation, optimizer):

- epochs and wall time to reach the target validation force RMSE, where the target is Adam's
  best validation force RMSE for that activation (the published anchor, Hu et al. AAAI 2023 on
  bulk Cu: RLEKF reaches Adam's accuracy in 11.7x fewer epochs and 1.2x less wall time), and
  the same for a common target every optimizer reached (the worst of the three best values);
- final test RMSE (energy per atom, forces), peak RSS, bytes of P.

The runs drive the optimizers through ``mdval.train.optimizers.make_strategy`` (the trainer's
registry), with the trainer's statistics helpers and loss schedule, in a plain epoch loop, so
the benchmark measures the optimizers and not the trainer's I/O. Writes
``benchmarks/results/optimizers.json`` and ``optimizers.md``.

    .venv/bin/python benchmarks/bench_optimizers.py [--frames 240] [--adam-epochs 40]
        [--kalman-epochs 6] [--max-minutes 4] [--threads 1] [--jobs 1] [--optimizers adam ekf rlekf]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CACHE = ROOT / "benchmarks" / ".cache"
ACTIVATIONS = ["tanh", "taafs:basis=bspline,grid=5,scope=layer"]
MODEL = {
    "architecture": "deeppot_se",
    "type_names": ["Cu"],
    "cutoff": 5.0,
    "cutoff_smooth": 0.5,
    "embedding": [8, 16],
    "fitting": [32, 32],
    "axis_neuron": 4,
    "neighbor_norm": 42.0,
    "seed": 0,
}
KALMAN_OPTIONS = {
    "ekf": {"p0": 1.0, "eta": 1.0, "n_force_updates": 4, "force_components": 10, "max_params": 5000},
    "rlekf": {"lambda0": 0.98, "nu": 0.9987, "block_size": 5120, "force_group_size": 6, "n_force_updates": 4},
}


def load_data(n_frames: int):
    from mdval.data.generate import GenerateSettings, generate
    from mdval.data.readers import read_frames

    path = CACHE / f"cu_emt_{n_frames}.xyz"
    generate(GenerateSettings(reference="emt", element="Cu", n_frames=n_frames, seed=0), path, progress=False)
    frames = read_frames(path)
    order = np.random.default_rng(0).permutation(len(frames))
    n_val = n_test = max(1, len(frames) // 10)
    test = [frames[i] for i in order[:n_test]]
    val = [frames[i] for i in order[n_test : n_test + n_val]]
    train = [frames[i] for i in order[n_test + n_val :]]
    return train, val, test


def evaluate(model, batches) -> tuple[float, float]:
    """(energy RMSE eV/atom, force RMSE eV/Å) over ``batches``."""
    from mdval.nn.forces import energy_forces_virial

    se, sf, ne, nf = 0.0, 0.0, 0, 0
    for b in batches:
        b = b.to()
        out = energy_forces_virial(
            model,
            b.species,
            b.edge_index,
            b.edge_vectors,
            b.n_local,
            frame_index=b.frame_index,
            n_frames=b.n_frames,
            virial=False,
        )
        de = (out["energy"].detach() - b.energy) / b.n_atoms_per_frame
        df = out["forces"].detach() - b.forces
        se += float((de * de).sum())
        sf += float((df * df).sum())
        ne += de.numel()
        nf += df.numel()
    return math.sqrt(se / ne), math.sqrt(sf / nf)


def run_one(activation: str, optimizer: str, args) -> dict:
    """One training run (in this process); returns its record."""
    import torch

    from mdval.data.batch import make_batch
    from mdval.nn import build_model
    from mdval.train.loss import LRSchedule, loss_weights
    from mdval.train.optimizers import make_strategy
    from mdval.train.statistics import fit_energy_shift, set_descriptor_statistics, set_energy_shift

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    train, val, test = load_data(args.frames)
    model = build_model({**MODEL, "activation": activation})
    set_energy_shift(model, fit_energy_shift(train, MODEL["type_names"]))
    set_descriptor_statistics(model, train, n_frames=100)
    cut = MODEL["cutoff"]
    train_b = [make_batch([f], MODEL["type_names"], cut) for f in train]
    val_b = [make_batch(val[k : k + 8], MODEL["type_names"], cut) for k in range(0, len(val), 8)]
    test_b = [make_batch(test[k : k + 8], MODEL["type_names"], cut) for k in range(0, len(test), 8)]
    epochs = args.adam_epochs if optimizer == "adam" else args.kalman_epochs
    schedule = LRSchedule(
        start_lr=1e-3, stop_lr=3e-6, stop_steps=epochs * len(train_b), decay_steps=max(1, len(train_b) // 4)
    )
    loss_cfg = {
        "start_pref_e": 0.02,
        "limit_pref_e": 1.0,
        "start_pref_f": 1000.0,
        "limit_pref_f": 1.0,
        "start_pref_v": 0.0,
        "limit_pref_v": 0.0,
        "label_scale": 1.0,
        "slope_recovery": 0.0,
    }
    options = {"name": optimizer, **KALMAN_OPTIONS.get(optimizer, {})}
    strategy = make_strategy(optimizer, model, options, schedule)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    e0, f0 = evaluate(model, val_b)
    curve = [{"epoch": 0, "wall_s": 0.0, "val_rmse_e": e0, "val_rmse_f": f0}]
    rng = np.random.default_rng(1)
    wall, step = 0.0, 0
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        for i in rng.permutation(len(train_b)):
            strategy.step(model, train_b[i].to(), loss_weights(loss_cfg, schedule, step), step)
            step += 1
        wall += time.perf_counter() - t0
        e, f = evaluate(model, val_b)
        curve.append({"epoch": epoch, "wall_s": wall, "val_rmse_e": e, "val_rmse_f": f})
        print(
            f"  {optimizer:5s} {activation[:12]:12s} epoch {epoch:3d} {wall:7.1f} s  "
            f"val E {1000 * e:7.2f} meV/atom  F {1000 * f:7.1f} meV/Å",
            flush=True,
        )
        if not math.isfinite(f) or wall > 60 * args.max_minutes:
            break
    te, tf = evaluate(model, test_b)
    return {
        "activation": activation,
        "optimizer": optimizer,
        "n_params": n_params,
        "n_train": len(train),
        "options": options,
        "curve": curve,
        "epochs_planned": epochs,
        "max_minutes": args.max_minutes,
        "lr_schedule": {"start_lr": schedule.start_lr, "stop_lr": schedule.stop_lr, "stop_steps": schedule.stop_steps},
        "test_rmse_e": te,
        "test_rmse_f": tf,
        "epochs_run": curve[-1]["epoch"],
        "train_wall_s": wall,
        "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "p_bytes": int(getattr(strategy, "memory_bytes", 0)),
    }


def first_reaching(curve: list[dict], target: float):
    for point in curve:
        if point["val_rmse_f"] <= target:
            return point["epoch"], point["wall_s"]
    return None, None


def summarise(records: list[dict]) -> tuple[dict, str]:
    by_act: dict[str, dict[str, dict]] = {}
    for r in records:
        by_act.setdefault(r["activation"], {})[r["optimizer"]] = r
    lines = [
        "# Optimizers on EMT Cu (issue 4)",
        "",
        "Target A = Adam's best validation force RMSE; target C = the worst of the optimizers' "
        "best values (a level all reached). Epochs/wall time = first epoch at or below the "
        "target (training time only, validation excluded).",
        "",
    ]
    summary = {}
    for act, runs in by_act.items():
        best = {o: min(p["val_rmse_f"] for p in r["curve"]) for o, r in runs.items()}
        targets = {"adam_best": best.get("adam"), "common": max(best.values())}
        lines += [
            f"## {act}",
            "",
            f"targets: A = {1000 * (targets['adam_best'] or math.nan):.1f} meV/Å, "
            f"C = {1000 * targets['common']:.1f} meV/Å",
            "",
            "| optimizer | params | P (MiB) | budget (min) | epochs run/planned | epochs to A | wall to A (s) | "
            "epochs to C | wall to C (s) | test E (meV/atom) | test F (meV/Å) | peak RSS (MiB) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for o, r in runs.items():
            row = {}
            for name, t in targets.items():
                ep, w = first_reaching(r["curve"], t) if t is not None else (None, None)
                row[name] = {"epochs": ep, "wall_s": w}
            summary.setdefault(act, {})[o] = {
                **row,
                "best_val_rmse_f": best[o],
                "test_rmse_e": r["test_rmse_e"],
                "test_rmse_f": r["test_rmse_f"],
                "peak_rss_MiB": r["peak_rss_MiB"],
                "p_bytes": r["p_bytes"],
            }

            def cell(x, fmt):
                return "not reached" if x is None else format(x, fmt)

            lines.append(
                f"| {o} | {r['n_params']} | {r['p_bytes'] / 2**20:.1f} | {r.get('max_minutes', '?')} | "
                f"{r['epochs_run']}/{r.get('epochs_planned', '?')} | "
                f"{cell(row['adam_best']['epochs'], 'd')} | {cell(row['adam_best']['wall_s'], '.0f')} | "
                f"{cell(row['common']['epochs'], 'd')} | {cell(row['common']['wall_s'], '.0f')} | "
                f"{1000 * r['test_rmse_e']:.2f} | {1000 * r['test_rmse_f']:.1f} | {r['peak_rss_MiB']:.0f} |"
            )
        lines.append("")
    return summary, "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--adam-epochs", type=int, default=40)
    ap.add_argument("--kalman-epochs", type=int, default=6)
    ap.add_argument(
        "--max-minutes", type=float, default=4.0, help="training-time budget per run (the epoch under way is finished)"
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--jobs", type=int, default=1, help="runs at the same time")
    ap.add_argument("--activations", nargs="+", default=ACTIVATIONS)
    ap.add_argument("--optimizers", nargs="+", default=["adam", "ekf", "rlekf"])
    ap.add_argument(
        "--reuse", action="store_true", help="reuse the cached record of a run that exists (rerun only deleted ones)"
    )
    ap.add_argument("--single", nargs=2, metavar=("ACTIVATION", "OPTIMIZER"), help=argparse.SUPPRESS)
    ap.add_argument("--record", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.single:
        record = run_one(*args.single, args)
        Path(args.record).write_text(json.dumps(record))
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    load_before = common.load()
    load_data(args.frames)  # generate once before the runs
    records = []
    passthrough = [
        "--frames",
        str(args.frames),
        "--adam-epochs",
        str(args.adam_epochs),
        "--kalman-epochs",
        str(args.kalman_epochs),
        "--max-minutes",
        str(args.max_minutes),
        "--threads",
        str(args.threads),
    ]
    jobs = [
        (act, opt, CACHE / f"run_{opt}_{k}.json") for k, act in enumerate(args.activations) for opt in args.optimizers
    ]
    running: list[subprocess.Popen] = []
    for act, opt, rec_path in jobs:  # at most --jobs runs at a time
        if args.reuse and rec_path.exists():
            print(f"== {act} / {opt}: reusing {rec_path}", flush=True)
            continue
        while len(running) >= args.jobs:
            running = [p for p in running if p.poll() is None]
            if len(running) >= args.jobs:
                time.sleep(1.0)
        print(f"== {act} / {opt}", flush=True)
        running.append(
            subprocess.Popen([sys.executable, __file__, "--single", act, opt, "--record", str(rec_path), *passthrough])
        )
    for p in running:
        p.wait()
    missing = [f"{a} / {o}" for a, o, r in jobs if not r.exists()]
    if missing:
        raise SystemExit(f"bench_optimizers: runs failed: {', '.join(missing)}")
    for _act, _opt, rec_path in jobs:
        records.append(json.loads(rec_path.read_text()))
    summary, md = summarise(records)
    out = {
        "benchmark": "optimizers",
        "created": common.now(),
        "machine": common.machine(),
        "versions": common.versions(),
        "load_before": load_before,
        "load_after": common.load(),
        "settings": vars(args) | {"model": MODEL},
        "summary": summary,
        "runs": records,
    }
    title, rest = md.split("\n", 1)
    md = f"{title} ({out['created']})\n\n{common.header_line(out)}\n{rest}"
    if args.reuse:
        md += "\n(--reuse: runs recorded earlier in benchmarks/.cache were summarised again.)\n"
    common.write_results("optimizers", out, md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
