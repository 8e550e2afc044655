"""The training section of the compare report: each model's learned activations and the
validation curves of the training logs.

The activation figures show the trainable activation layers (TAAFS, LAAF) of one model file,
evaluated by the file's own modules: the curve y(z) of each layer beside tanh, and the curves at up
to 5 epochs of the training log (its ``activation_coefficients``). A model's log is
``NAME.log.jsonl`` next to it or the ``log.jsonl`` of its run folder (mdval/train/trainer.py writes
one line per epoch); mdval/report/plots.py draws.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mdval.report import plots


def activation_figures(model_path: str, fig_dir: Path, log_path: Path | None) -> list[tuple[str, str]]:
    """Activation curves (and their evolution, from the training log) of the trainable activation
    layers (TAAFS, LAAF) of one model, evaluated by the model file's own modules."""
    from mdval.deploy.model_file import load
    from mdval.nn import activation_layers

    layers = [layer for layer in activation_layers(load(model_path)) if layer.trainable]
    if not layers:
        return []
    z = np.linspace(-4.0, 4.0, 201)
    stem = Path(model_path).stem
    curves = [{"name": layer.title, "z": z, "y": layer.curve(z), "spec": layer.spec.canonical} for layer in layers]
    figs = [
        (
            str(
                plots.activation_plot(
                    curves, fig_dir / f"activation_{stem}.png", title=f"{stem}: learned activations ({layers[0].label})"
                )
            ),
            f"{stem}: learned activation y(z) per layer (solid) beside tanh (dashed).",
        )
    ]
    evolution = _evolution(layers, log_path, z) if log_path is not None and log_path.exists() else []
    if evolution:
        figs.append(
            (
                str(
                    plots.activation_evolution_plot(
                        evolution,
                        fig_dir / f"activation_evolution_{stem}.png",
                        title=f"{stem}: activations during training",
                    )
                ),
                f"{stem}: activation of each layer at several epochs, coloured along viridis from dark "
                "purple (the earliest) to yellow (the latest); epochs in the legend.",
            )
        )
    return figs


def _evolution(layers: list, log_path: Path, z: np.ndarray) -> list[dict]:
    """Each layer's curve at up to 5 epochs spread over the training log (those it logged)."""
    from mdval.nn import logged_coefficients

    records = [json.loads(ln) for ln in log_path.read_text().splitlines() if ln.strip()]
    snaps = [(r["epoch"], r["activation_coefficients"]) for r in records if r.get("activation_coefficients")]
    if not snaps:
        return []
    pick = sorted({round(k) for k in np.linspace(0, len(snaps) - 1, min(5, len(snaps)))})
    evolution = []
    for layer in layers:
        series = []
        for k in pick:
            epoch, logged = snaps[k]
            values = logged_coefficients(logged, layer)
            if values is not None:
                series.append((epoch, layer.curve(z, values)))
        if series:
            evolution.append({"name": layer.title, "z": z, "curves": series})
    return evolution


def training_log(model_path: str) -> Path | None:
    """The training log of a model: ``NAME.log.jsonl`` next to it, or its run folder's log.jsonl."""
    p = Path(model_path)
    beside = p.with_suffix(".log.jsonl")
    if beside.exists():
        return beside
    from mdval.deploy.model_file import read_metadata

    ckpt = (read_metadata(p).get("training") or {}).get("checkpoint")
    for cand in ([Path(ckpt).resolve().parent.parent / "log.jsonl"] if ckpt else []) + [p.parent / "log.jsonl"]:
        if cand.exists():
            return cand
    return None


def _validation_curve(model_path: str, log_path: Path) -> dict | None:
    """Validation RMSE per epoch of one training log (None when it logged no validation)."""
    recs = [json.loads(ln) for ln in log_path.read_text().splitlines() if ln.strip()]
    recs = [r for r in recs if r.get("val")]
    if not recs:
        return None
    return {
        "label": Path(model_path).stem,
        "epoch": [r["epoch"] for r in recs],
        "time_s": [r.get("time_s", r["epoch"]) for r in recs],
        "energy_rmse_meV_per_atom": [r["val"].get("energy_rmse_meV_per_atom") for r in recs],
        "force_rmse_eV_per_A": [r["val"].get("force_rmse_eV_per_A") for r in recs],
    }


def training_blocks(model_paths: list[str], fig_dir: Path) -> list[tuple]:
    """The report blocks (mdval.report.html.write_documents) of the learned activations of every
    model and of the validation curves of their training logs; figures go to ``fig_dir``."""
    activations, curves = [], []
    for m in model_paths:
        log_path = training_log(m)
        activations += [("img", path, caption) for path, caption in activation_figures(m, fig_dir, log_path)]
        curve = _validation_curve(m, log_path) if log_path is not None else None
        curves += [curve] if curve else []
    blocks = [("h", "Learned activations")]
    blocks += activations or [("p", "No model with a trainable activation (TAAFS or LAAF) in this workflow.")]
    blocks.append(("h", "Training curves"))
    if curves:
        blocks.append(
            (
                "img",
                str(plots.training_plot(curves, fig_dir / "training.png")),
                "Validation RMSE against training wall time, one point per epoch (from each model's log; "
                "every zoo model had the same time budget).",
            )
        )
    else:
        blocks.append(("p", "No training log found next to the models (NAME.log.jsonl) or in their run folders."))
    return blocks
