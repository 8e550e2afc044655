"""Why DeepPot-SE misses quadratic SNAP's test energy MAE on mlearn Si (issue 9): a diagnosis of
the models that bench_accuracy_mlearn.py trained, without retraining them.

For every DeepPot-SE run trained with Adam in benchmarks/runs/accuracy_mlearn (RLEKF runs are
skipped: they finish less than one epoch in the budget):

1. **Errors per structure group on the model's own training frames**, beside its validation
   frames and test.json. A training error as large as the test error is underfitting, not
   overfitting.
2. **Readout refit** (mdval.train.readout, the ``training.readout_refit`` option). The model's
   energy is linear in its last layer: with h_i the last hidden layer of atom i (width K),
   E = w·Σ_i h_i + N e0 and F = -Σ_k w_k ∂(Σ_i h_ik)/∂r. The training loss at its final
   prefactors (mdval.train.loss: p_e mean_f ΔE_f²/N_f + p_f mean ΔF², p at stop_lr) is therefore
   a quadratic in (w, e0) with the rest of the network frozen, and its minimum is a linear
   least-squares solve. Comparing that minimum with what Adam reached tells
   whether the optimiser left energy on the table, and the test errors at the minimum tell how
   far the learned features carry to test structures. A ridge α‖w - w_trained‖² (α in the
   loss's units, eV²/atom per unit weight²) shows how much of the gain needs large weights.
3. **Residual plot**: test energy error per atom against the DFT energy, by group, for qSNAP
   and each model, as trained and refit.

    .venv/bin/python benchmarks/analyse_mlearn_energy.py [--elements Si Li]

Writes benchmarks/results/mlearn_energy_gap.{json,md,png} and appends the Markdown to RESULTS.md.
About 2-5 min per model on one core (K batched backward passes per frame for the force features).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_accuracy_mlearn import MLEARN, snap_predictions  # noqa: E402
from bench_accuracy_mlearn import NAME as ACCURACY

import common  # noqa: E402

NAME = "mlearn_energy_gap"
RIDGES = (0.0, 1e-4)


def predict(data: list[dict], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame energy error per atom (meV/atom) and force component errors (eV/Å) of readout x."""
    de = np.array([1e3 * (d["H"] @ x - d["E"]) / d["n"] for d in data])
    df = np.concatenate([d["F"] @ x - d["F_label"] for d in data])
    return de, df


def by_group(de: np.ndarray, groups: list[str]) -> dict:
    g = np.asarray(groups)
    return {
        name: {
            "n": int((g == name).sum()),
            "mae": float(np.abs(de[g == name]).mean()),
            "bias": float(de[g == name].mean()),
        }
        for name in sorted(set(groups))
    }


def summary(data, x) -> dict:
    de, df = predict(data, x)
    return {
        "energy_mae_meV_per_atom": float(np.abs(de).mean()),
        "force_mae_eV_per_A": float(np.abs(df).mean()),
        "groups": by_group(de, [d["group"] for d in data]),
        "energy_error_meV_per_atom": de.tolist(),
    }


def analyse(run: Path, element: str, log=print) -> dict:
    import torch

    from mdval.data.mlearn import read_mlearn
    from mdval.train.checkpoint import load_checkpoint, model_from_checkpoint
    from mdval.train.loss import prefactor
    from mdval.train.readout import count_columns, frame_features, readout_vector, solve_readout, training_loss

    state = load_checkpoint(run / "checkpoints" / "best.pt")
    model = model_from_checkpoint(state)
    cfg = state["config"]
    lr, lc = cfg["learning_rate"], cfg["loss"]
    pe = prefactor(lc["start_pref_e"], lc["limit_pref_e"], lr["stop_lr"], lr["start_lr"])
    pf = prefactor(lc["start_pref_f"], lc["limit_pref_f"], lr["stop_lr"], lr["start_lr"])
    splits = json.loads((run / "splits.json").read_text())
    frames = read_mlearn(MLEARN / element / "training.json")
    test_frames = read_mlearn(MLEARN / element / "test.json")

    def features(fr):
        d = frame_features(model, fr, model.type_names, model.cutoff)
        d["group"] = fr.info.get("group", "?")
        return d

    with torch.enable_grad():
        sets = {
            "train": [features(frames[i]) for i in splits["train"]],
            "validation": [features(frames[i]) for i in splits["validation"]],
            "test": [features(f) for f in test_frames],
        }
    x0 = readout_vector(model)  # the best checkpoint: before any refit at the end of training
    counts = count_columns(model)
    check = max(abs(d["H"] @ x0 - d["E_model"]) for d in sets["test"])
    if check > 1e-8:
        raise RuntimeError(f"readout features do not reproduce the model's energies (max |ΔE| {check:.2e} eV)")
    w_norm = np.linalg.norm(x0[~counts])
    metrics_file = run / "metrics.json"
    refit_in_training = metrics_file.exists() and "readout_refit" in json.loads(metrics_file.read_text())
    out = {
        "run": str(run),
        "activation": model.activation_specs()["fitting"],
        "refit_in_training": refit_in_training,
        "prefactors_at_stop_lr": {"energy": pe, "forces": pf},
        "readout_width": int((~counts).sum()),
        "trained": {s: summary(d, x0) for s, d in sets.items()},
        "trained_loss": training_loss(sets["train"], x0, pe, pf),
        "refits": [],
    }
    for ridge in RIDGES:
        x = solve_readout(sets["train"], x0, pe, pf, ridge, counts)
        out["refits"].append(
            {
                "ridge": ridge,
                "loss": training_loss(sets["train"], x, pe, pf),
                "weight_change": float(np.linalg.norm((x - x0)[~counts]) / w_norm),
                **{s: summary(d, x) for s, d in sets.items()},
            }
        )
        log(f"{run.name} ridge {ridge}: train loss {out['trained_loss']:.4f} -> {out['refits'][-1]['loss']:.4f}")
    out["test_groups"] = [d["group"] for d in sets["test"]]
    out["test_energy_label_meV_per_atom"] = [1e3 * d["E"] / d["n"] for d in sets["test"]]
    return out


def residual_png(element: str, snap: dict, models: dict, path: Path) -> None:
    """Test energy error per atom against the DFT energy per atom, one panel per model (shared
    y axis), coloured by structure group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("qSNAP (Zuo 2020)", snap)] + list(models.items())
    ncol = 3
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.3 * nrow), sharex=True, sharey=True, squeeze=False)
    colours = {"AIMD-NVT": "tab:blue", "Elastic": "tab:green", "Surface": "tab:red", "Vacancy": "tab:orange"}
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (label, p) in zip(axes.flat, panels):
        ref = np.asarray(p["label"])
        err = np.asarray(p["error"])
        groups = np.asarray(p["groups"])
        for g in sorted(set(p["groups"])):
            sel = groups == g
            ax.scatter(
                ref[sel] - ref.min(),
                err[sel],
                s=16,
                label=f"{g} ({np.abs(err[sel]).mean():.1f})",
                color=colours.get(g, "grey"),
            )
        ax.axhline(0.0, color="k", lw=0.6)
        ax.set_title(f"{label}: E MAE {np.abs(err).mean():.2f} meV/atom", fontsize=9)
        ax.legend(fontsize=7, title="group (MAE)", title_fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel(f"DFT energy per atom − lowest (meV), {element} test.json")
    for ax in axes[:, 0]:
        ax.set_ylabel("predicted − DFT (meV/atom)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", nargs="+", default=["Si"])
    parser.add_argument(
        "--runs",
        nargs="+",
        type=Path,
        help="analyse these run folders instead (one element, --elements): a table of the "
        "validation errors before and after the refit, e.g. over runs of different "
        "data.split_seed (results/mlearn_energy_gap_runs.*, RESULTS.md untouched)",
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if args.runs:
        return runs_table(args.runs, args.elements[0])
    work = common.RUNS / ACCURACY
    report = {
        "benchmark": NAME,
        "created": common.now(),
        "machine": common.machine(),
        "versions": common.versions(),
        "load_before": common.load(),
        "results": {},
    }
    for el in args.elements:
        runs = sorted(p for p in work.glob(f"{el}_*_adam") if (p / "checkpoints" / "best.pt").exists())
        if not runs:
            print(f"no trained {el} runs in {work}: run benchmarks/bench_accuracy_mlearn.py first")
            return 1
        snap = snap_predictions(el, f"{el}_Zuo_JPCA2020.quadratic.snap")
        res = {"qsnap_test_energy_mae_meV_per_atom": float(np.mean(np.abs(snap["error"]))), "models": {}}
        for run in runs:
            res["models"][run.name] = analyse(run, el)
        report["results"][el] = res
        png = common.RESULTS_DIR / f"{NAME}_{el}.png"
        models = {}
        for name, m in res["models"].items():
            models[f"{name} (trained)"] = {
                "label": m["test_energy_label_meV_per_atom"],
                "groups": m["test_groups"],
                "error": m["trained"]["test"]["energy_error_meV_per_atom"],
            }
            models[f"{name} (readout refit)"] = {
                "label": m["test_energy_label_meV_per_atom"],
                "groups": m["test_groups"],
                "error": m["refits"][0]["test"]["energy_error_meV_per_atom"],
            }
        residual_png(el, snap, models, png)
        res["residual_png"] = str(png.relative_to(common.ROOT))
    report["load_after"] = common.load()
    text = markdown(report)
    common.write_results(NAME, report, text)
    print(text)
    return 0


def runs_table(runs: list[Path], element: str) -> int:
    """Validation E/F MAE as trained and refit for each run, and the mean over runs."""
    rows = {run.name: analyse(run, element) for run in runs}
    cols = [("as trained", lambda m: m["trained"])] + [
        (f"refit, ridge {r:g}", lambda m, k=k: m["refits"][k]) for k, r in enumerate(RIDGES)
    ]
    lines = [
        f"# Readout refit on held-out frames: {element}, {len(runs)} runs ({common.now()})",
        "",
        "Validation E MAE (meV/atom) / F MAE (eV/Å) of each run's own split, as trained and after the refit "
        "(test.json not used).",
        "",
        "| run | " + " | ".join(c for c, _ in cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    means = np.zeros((len(cols), 2))
    for name, m in rows.items():
        vals = [
            (get(m)["validation"]["energy_mae_meV_per_atom"], get(m)["validation"]["force_mae_eV_per_A"])
            for _, get in cols
        ]
        means += np.array(vals) / len(rows)
        lines.append(f"| {name} | " + " | ".join(f"{e:.2f} / {f:.4f}" for e, f in vals) + " |")
    lines.append("| **mean** | " + " | ".join(f"**{e:.2f} / {f:.4f}**" for e, f in means) + " |")
    report = {
        "benchmark": NAME + "_runs",
        "created": common.now(),
        "machine": common.machine(),
        "versions": common.versions(),
        "element": element,
        "runs": rows,
    }
    text = "\n".join(lines)
    common.write_results(NAME + "_runs", report, text, section=False)
    print(text)
    return 0


def markdown(rep: dict) -> str:
    lines = [
        f"# Why the mlearn energy MAE misses qSNAP: errors by group and a readout refit ({rep['created']})",
        "",
        common.header_line(rep),
        "",
        "Models: the Adam runs of benchmarks/runs/accuracy_mlearn (bench_accuracy_mlearn.py), best "
        "checkpoint (*as trained*: the weights gradient training reached), not retrained. *Refit*: the last "
        "layer (w, e0) solved by least squares for the training loss at its final prefactors, the network "
        "below frozen (mdval.train.readout). When a run's config sets training.readout_refit, its exported "
        "model.pt is the refit with that ridge, i.e. the benchmark's numbers. "
        "E MAE in meV/atom, F MAE in eV/Å.",
        "",
        "How to read it: a training-set error as large as the test error means the model underfits "
        "the energies; a refit that lowers the training loss means the optimiser had not found the best "
        "readout for the features it learned, and the refit's test error is how far those features carry; "
        "‖Δw‖/‖w‖ is how far the refit moved the readout (large: the gain lies along poorly conditioned "
        "directions). The validation split holds about 20 frames, so one badly predicted structure "
        "moves its MAE by 1-2 meV/atom.",
        "",
    ]
    for el, res in rep["results"].items():
        lines += [
            f"### {el} (qSNAP test E MAE {res['qsnap_test_energy_mae_meV_per_atom']:.2f} meV/atom)",
            "",
            "| model | readout | train loss | ‖Δw‖/‖w‖ | train E | train F | val E | val F | test E | test F |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, m in res["models"].items():
            t = m["trained"]
            lines.append(
                f"| {name} | as trained | {m['trained_loss']:.4f} | 0 | "
                + " | ".join(
                    f"{t[s]['energy_mae_meV_per_atom']:.2f} | {t[s]['force_mae_eV_per_A']:.3f}"
                    for s in ("train", "validation", "test")
                )
                + " |"
            )
            for r in m["refits"]:
                lines.append(
                    f"| {name} | refit, ridge {r['ridge']:g} | {r['loss']:.4f} | {r['weight_change']:.1f} | "
                    + " | ".join(
                        f"{r[s]['energy_mae_meV_per_atom']:.2f} | {r[s]['force_mae_eV_per_A']:.3f}"
                        for s in ("train", "validation", "test")
                    )
                    + " |"
                )
        groups = sorted(next(iter(res["models"].values()))["trained"]["train"]["groups"])
        lines += [
            "",
            f"{el} energy MAE (mean signed error) by group, meV/atom, as trained and after the exact refit:",
            "",
            "| model | set | " + " | ".join(groups) + " |",
            "|---|---|" + "---:|" * len(groups),
        ]
        for name, m in res["models"].items():
            for tag, src in (("trained", m["trained"]), ("refit", m["refits"][0])):
                for s in ("train", "validation", "test"):
                    gm = src[s]["groups"]
                    lines.append(
                        f"| {name} {tag} | {s} | "
                        + " | ".join(
                            f"{gm[g]['mae']:.1f} ({gm[g]['bias']:+.1f}) n={gm[g]['n']}" if g in gm else ""
                            for g in groups
                        )
                        + " |"
                    )
        lines += ["", f"![{el} test energy errors]({Path(res['residual_png']).relative_to('benchmarks')})", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
