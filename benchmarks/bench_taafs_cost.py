"""TAAFS cost over tanh, for each of the nine basis families (issue 9, item 2).

- MD: LAMMPS ``pair_style taafs`` µs/atom/step, fcc Cu 864 atoms, 1 rank, 1 thread, 300 K NVE,
  with the peer-size DeepPot-SE (embedding [25, 50, 100], axis 16, fitting [240, 240, 240],
  rcut 6 Å; untrained weights, which do not change the cost), per-layer TAAFS of default size.
  Exported models run TAAFS in serving mode (exact value and first derivative only). Each model
  runs twice: as exported ('exact') and after ``mdval compress`` ('compressed': embedding nets
  replaced by quintic Hermite tables, mdval/nn/tabulated.py), so that the activation's cost is
  left only in the fitting net.
- Training: seconds per epoch of ``mdval train`` (Adam, batch 2, float64) on a fixed 40-frame
  subset of the EMT-Cu data (32 training frames = 16 steps per epoch, plus validation), with the
  model of the project's Cu configs (models/configs/cu_emt_*.toml: embedding [16, 32], fitting
  [64, 64], axis 8, rcut 5.5 Å); s/epoch is the median over epochs 2.. (epoch 1 holds the set-up).

All subjects interleaved (tanh, bspline, fourier, ... tanh, bspline, ...); medians and ratios to
tanh. Targets (MD): ≤ 1.10× tanh for Chebyshev and Fourier, ≤ 1.3× for B-spline. The paper
reports 1.9-3.6× per training epoch for B-spline and 0.9-1.5× for Chebyshev and Fourier.

    .venv/bin/python benchmarks/bench_taafs_cost.py [--quick] [--repeats 3] [--skip-train|--skip-md]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

NAME = "taafs_cost"
TRAIN_TOML = """[run]
name = "{name}"
dir = "{dir}"
seed = 0

[data]
train = "{data}"
fractions = [0.8, 0.1, 0.1]
split_seed = 0
stat_frames = 20

[model]
architecture = "deeppot_se"
type_names = ["Cu"]
cutoff = 5.5
cutoff_smooth = 3.5
embedding = [16, 32]
fitting = [64, 64]
axis_neuron = 8
neighbor_norm = 45.0
activation = "{activation}"

[learning_rate]
start_lr = 2e-3
stop_lr = 1e-5
decay_steps = 20

[optimizer]
name = "adam"
clip_grad_norm = 10.0

[training]
epochs = {epochs}
batch_size = 2
val_batch_size = 10
checkpoint_every = 0
progress = false
"""


def subset(n_frames: int, out: Path) -> Path:
    """The first n_frames of data/cu_emt_600.xyz (generated if missing), as extxyz."""
    from ase.io import read, write

    src = common.ROOT / "data" / "cu_emt_600.xyz"
    if not src.exists():
        from mdval.data.generate import GenerateSettings, generate

        generate(GenerateSettings(reference="emt", element="Cu", n_frames=600, seed=0), src)
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        write(str(out), read(str(src), index=f":{n_frames}"), format="extxyz")
    return out


def train_seconds_per_epoch(activation: str, label: str, data: Path, epochs: int, work: Path, round_: int) -> float:
    name = f"{label}_r{round_}"
    cfg = work / f"{name}.toml"
    cfg.write_text(TRAIN_TOML.format(name=name, dir=work, data=data, activation=activation, epochs=epochs))
    run = work / name
    if run.exists():
        import shutil

        shutil.rmtree(run)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [sys.executable, "-m", "mdval", "train", str(cfg), "--quiet", "--set", "training.progress=false"],
        cwd=common.ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise RuntimeError(proc.stdout[-1500:] + proc.stderr[-1500:])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    times = [json.loads(line)["time_s"] for line in (run / "log.jsonl").read_text().splitlines()]
    deltas = [b - a for a, b in zip(times, times[1:])]
    return {"wall": common.median(deltas) if deltas else times[0], "cpu_run": cpu}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tanh, chebyshev1, bspline; 1 round")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--md-steps", type=int, default=4)
    parser.add_argument("--atoms", type=int, default=864)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--families", nargs="+", default=None, help="subset of " + " ".join(common.ACTIVATIONS))
    parser.add_argument("--skip-md", action="store_true")
    parser.add_argument(
        "--md-env",
        choices=["plain", "tuned", "both"],
        default="tuned",
        help="lmp as installed, and/or with common.tuned_env() (torch's BLAS first, malloc)",
    )
    parser.add_argument(
        "--md-models",
        nargs="+",
        choices=["exact", "compressed"],
        default=["exact", "compressed"],
        help="serve the exported model as is, and/or after mdval compress",
    )
    parser.add_argument("--skip-train", action="store_true")
    args = parser.parse_args(argv)
    acts = dict(common.ACTIVATIONS)
    if args.quick:
        args.families = args.families or ["tanh", "chebyshev1", "bspline"]
        args.repeats, args.md_steps, args.epochs, args.frames = 1, 2, 2, 12
    if args.families:
        acts = {k: v for k, v in acts.items() if k in args.families}
    work = common.RUNS / NAME
    load_before = common.load()
    from mdval.deploy import lammps_plugin

    lammps_plugin.build()
    md, train, errors = {}, {}, {}
    if not args.skip_md:
        cells = common.fcc_cells(args.atoms)
        subjects = {}
        envs = ["plain", "tuned"] if args.md_env == "both" else [args.md_env]
        for label, spec in acts.items():
            exact = common.export_model({**common.PEER_MODEL, "activation": spec}, work / f"md_{label}.pt")
            for kind in args.md_models:
                model = exact if kind == "exact" else common.compressed_model(exact)
                script = common.cu_script(
                    f"pair_style taafs threads 1\npair_coeff * * {model} Cu", cells, args.md_steps, warmup=1
                )
                for env in envs:
                    subjects[f"{label} [{kind} {env}]"] = lambda s=script, d=work / f"md_{label}_{kind}_{env}", e=env: (
                        common.lmp_per_step(s, d, args.atoms, env=common.tuned_env() if e == "tuned" else None)
                    )
        print("MD, LAMMPS:", flush=True)
        samples, errs = common.interleaved(subjects, args.repeats)
        errors.update({f"md {k}": v for k, v in errs.items()})
        md = {
            k: {
                "samples_s_per_step": v,
                "us_per_atom_step": (common.median(common.pick(v, "wall")) or 0) / args.atoms * 1e6,
                "cpu_us_per_atom_step": (common.median(common.pick(v, "cpu")) or 0) / args.atoms * 1e6,
                "spread": common.spread(common.pick(v, "wall")),
            }
            for k, v in samples.items()
            if v
        }
    if not args.skip_train:
        data = subset(args.frames, work / f"cu_emt_{args.frames}.xyz")
        subjects = {}
        rounds = {label: 0 for label in acts}

        def make(label, spec):
            def fn():
                rounds[label] += 1
                return train_seconds_per_epoch(spec, label, data, args.epochs, work / "train", rounds[label])

            return fn

        subjects = {label: make(label, spec) for label, spec in acts.items()}
        (work / "train").mkdir(parents=True, exist_ok=True)
        print("Training:", flush=True)
        samples, errs = common.interleaved(subjects, args.repeats)
        errors.update({f"train {k}": v for k, v in errs.items()})
        train = {
            k: {
                "samples": v,
                "s_per_epoch": common.median(common.pick(v, "wall")),
                "cpu_s_run": common.median(common.pick(v, "cpu_run")),
                "spread": common.spread(common.pick(v, "wall")),
            }
            for k, v in samples.items()
            if v
        }
    for table, key, out in (
        (md, "us_per_atom_step", "vs_tanh"),
        (md, "cpu_us_per_atom_step", "cpu_vs_tanh"),
        (train, "s_per_epoch", "vs_tanh"),
        (train, "cpu_s_run", "cpu_vs_tanh"),
    ):
        for name, row in table.items():
            tanh = "tanh" + (name[name.index(" [") :] if " [" in name else "")
            ref = table.get(tanh, {}).get(key)
            row[out] = row[key] / ref if ref else None
    report = {
        "benchmark": NAME,
        "created": common.now(),
        "machine": common.machine(),
        "versions": common.versions(),
        "load_before": load_before,
        "load_after": common.load(),
        "repeats": args.repeats,
        "activations": acts,
        "md_settings": {
            "atoms": args.atoms,
            "steps": args.md_steps,
            "ranks": 1,
            "threads": 1,
            "model": common.PEER_MODEL,
            "weights": "untrained",
        },
        "train_settings": {
            "frames": args.frames,
            "epochs": args.epochs,
            "batch_size": 2,
            "threads": 1,
            "optimizer": "adam",
            "model": "embedding [16, 32], fitting [64, 64], axis 8, rcut 5.5",
        },
        "md": md,
        "train": train,
        "errors": errors,
    }
    text = markdown(report)
    common.write_results(NAME, report, text, quick=args.quick)
    print(text)
    return 0


def markdown(rep: dict) -> str:
    targets = {"chebyshev1": 1.10, "chebyshev2": 1.10, "fourier": 1.10, "bspline": 1.3}
    paper = {"bspline": "1.9–3.6", "chebyshev1": "0.9–1.5", "chebyshev2": "0.9–1.5", "fourier": "0.9–1.5"}
    ms, ts = rep["md_settings"], rep["train_settings"]
    lines = [
        f"# TAAFS cost over tanh, per basis family ({rep['created']})",
        "",
        common.header_line(rep),
        "",
        f"MD: LAMMPS pair_style taafs, fcc Cu {ms['atoms']} atoms, 1 rank, 1 thread, {ms['steps']} timed "
        "steps, peer-size DeepPot-SE ([25, 50, 100] / [240, 240, 240], axis 16, rcut 6 Å), untrained "
        f"weights, per-layer TAAFS in serving mode. Training: mdval train, Adam, {ts['frames']}-frame EMT-Cu "
        f"subset, {ts['model']}, 1 thread, median s/epoch over epochs 2–{ts['epochs']}. All subjects "
        f"interleaved, medians of {rep['repeats']} rounds.",
        "",
        "| activation | MD model, env | MD µs/atom/step | MD vs tanh | MD CPU µs/atom/step | MD CPU vs tanh | MD target | "
        "train s/epoch | train vs tanh | train CPU s (run) vs tanh | paper (train) | spread MD / train |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    envs = sorted({k[k.index("[") + 1 : -1] for k in rep["md"]}) or ["plain"]
    for label, spec in rep["activations"].items():
        t = rep["train"].get(label, {})
        tgt = targets.get(label)
        for i, env in enumerate(envs):
            m = rep["md"].get(f"{label} [{env}]", {})
            ok = "" if tgt is None or m.get("vs_tanh") is None else (" ✓" if m["vs_tanh"] <= tgt else " ✗")
            ok_cpu = "" if tgt is None or m.get("cpu_vs_tanh") is None else (" ✓" if m["cpu_vs_tanh"] <= tgt else " ✗")
            train_cells = (
                (
                    f"{common.fmt(t.get('s_per_epoch'))} | {common.fmt(t.get('vs_tanh'))}× | "
                    f"{common.fmt(t.get('cpu_vs_tanh'))}× | {paper.get(label, '')}"
                )
                if i == 0
                else " | | | "
            )
            lines.append(
                f"| {spec} | {env} | {common.fmt(m.get('us_per_atom_step'))} | "
                f"{common.fmt(m.get('vs_tanh'))}×{ok} | {common.fmt(m.get('cpu_us_per_atom_step'))} | "
                f"{common.fmt(m.get('cpu_vs_tanh'))}×{ok_cpu} | {'≤ ' + str(tgt) + '×' if tgt else ''} | "
                f"{train_cells} | {common.fmt(m.get('spread'), 2)} / "
                f"{common.fmt(t.get('spread'), 2) if i == 0 else ''} |"
            )
    lines += [
        "",
        "MD model 'exact': the exported model; 'compressed': the same model after `mdval compress` "
        "(embedding nets tabulated; energies and forces agree with 'exact' to ~1e-9 relative). Targets "
        "are checked for both.",
        "",
        "MD env 'plain': lmp as installed; 'tuned': with LD_PRELOAD of torch's libtorch_cpu.so (so "
        "torch's matrix products use MKL, not the reference BLAS that liblammps.so exports) and glibc "
        "malloc kept from unmapping freed blocks (benchmarks/common.py: tuned_env).",
        "",
        "MD µs/atom/step is wall time; 'CPU' is wall × LAMMPS' 'CPU use' (time on a core of its own, "
        "robust to the machine's load). Training s/epoch is wall time of 1-thread runs; 'train CPU s (run)' compares the whole runs' CPU time (set-up included). 'spread' = "
        "(max − min)/median over the rounds (of wall times): how noisy each median is.",
    ]
    for k, v in rep["errors"].items():
        lines += ["", f"Error, {k}: `{v.strip().splitlines()[-1][:300] if v.strip() else v}`"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
