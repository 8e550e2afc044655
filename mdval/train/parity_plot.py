"""Parity plots (prediction against label) for energy per atom, force components and virial."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mdval import fileio


def parity_plot(pred, path, *, title: str = "", metrics: dict | None = None) -> Path:
    """Draw the parity plot of ``pred`` (a :class:`mdval.deploy.evaluate.Predictions`) to a PNG.

    One panel each for energy per atom (eV/atom), force components (eV/Å) and, if present,
    virial per atom (eV/atom); the RMSE/MAE of ``metrics`` go in the panel titles.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = metrics or {}
    panels = [
        (
            "energy",
            pred.energy_label,
            pred.energy_pred,
            "eV/atom",
            metrics.get("energy_rmse_meV_per_atom"),
            metrics.get("energy_mae_meV_per_atom"),
            "meV/atom",
        )
    ]
    if pred.force_label.size:
        panels.append(
            (
                "force",
                pred.force_label,
                pred.force_pred,
                "eV/Å",
                metrics.get("force_rmse_eV_per_A"),
                metrics.get("force_mae_eV_per_A"),
                "eV/Å",
            )
        )
    if pred.virial_label.size:
        panels.append(
            (
                "virial",
                pred.virial_label,
                pred.virial_pred,
                "eV/atom",
                metrics.get("virial_rmse_meV_per_atom"),
                metrics.get("virial_mae_meV_per_atom"),
                "meV/atom",
            )
        )
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    for ax, (name, label, value, unit, rmse, mae, munit) in zip(axes[0], panels):
        x, y = np.ravel(label), np.ravel(value)
        lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.5", lw=1, zorder=0)
        ax.scatter(x, y, s=4 if x.size > 500 else 10, alpha=0.5, edgecolors="none")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_aspect("equal")
        ax.set_xlabel(f"reference {name} ({unit})")
        ax.set_ylabel(f"predicted {name} ({unit})")
        if rmse is not None:
            ax.set_title(f"{name}: RMSE {rmse:.3g}, MAE {mae:.3g} {munit}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        with fileio.atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=120)
    finally:
        plt.close(fig)
    return Path(path)
