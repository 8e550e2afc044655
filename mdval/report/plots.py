"""Report figures (matplotlib, Agg backend): every function draws one PNG and returns its path.

Inputs are plain data (thermo columns from :func:`mdval.md.results.read_thermo`, RDF dicts from
results.json, training-log records); no estimator is computed here except the straight-line fit
drawn over E_tot(t), which uses the slope/intercept convention of
:func:`mdval.md.observables.energy_drift` (e(t) = a + b·t in meV/atom over the analysed window).

- :func:`energy_plot`: E_tot(t)/N with its linear fit, and kinetic and potential energy per atom;
- :func:`ladder_plot`: RMS energy fluctuation against the time step, log-log, with a dt² guide;
- :func:`overlay_plot`: one quantity (E_tot(t)/N, ρ(t)) of several runs on shared axes;
- :func:`rdf_plot`: g(r) overlays with the difference to the reference in a lower panel;
- :func:`activation_plot`: learned activation curves y(z) per layer beside tanh;
- :func:`activation_evolution_plot`: the curves of one layer at several epochs of training;
- :func:`training_plot`: validation RMSE (energy and force) against training wall time or epoch;
- :func:`parity_engines_plot`: LAMMPS against ASE single-point forces for every model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mdval import fileio

#: One colour per series, stable across figures (tab10 then tab20).
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf", "#aec7e8", "#ffbb78")
REFERENCE_STYLE = {"color": "black", "lw": 2.0, "ls": "--"}
SECONDARY_STYLE = {"color": "0.45", "lw": 1.6, "ls": ":"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "legend.fontsize": 7.5, "figure.dpi": 100})
    return plt


def _save(fig, path) -> Path:
    """Save atomically (temp file + rename) and close the figure."""
    plt = _plt()
    try:
        with fileio.atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)


def production(thermo: dict, warmup_ps: float = 0.0) -> dict:
    """Production rows of a thermo table, time shifted to start at 0, with an ``analysed`` mask
    (t ≥ warm-up) as used by the drift estimator."""
    prod = thermo["phase"] == "production"
    out = {k: np.asarray(v)[prod] for k, v in thermo.items()}
    if out["time_ps"].size:
        out["t_ps"] = out["time_ps"] - out["time_ps"][0]
    else:
        out["t_ps"] = out["time_ps"]
    out["analysed"] = out["t_ps"] >= warmup_ps - 1e-9
    return out


def energy_plot(runs: list[dict], path, *, title: str = "") -> Path:
    """E_tot(t)/N (relative to its first analysed value) with the drift fit, and E_kin/N, E_pot/N.

    Each run: ``{"label", "thermo" (read_thermo columns), "n_atoms", "warmup_ps", "drift"
    (DriftResult dict or None)}``.
    """
    plt = _plt()
    fig, (ax_e, ax_k) = plt.subplots(1, 2, figsize=(11, 3.8))
    for k, run in enumerate(runs):
        color = COLORS[k % len(COLORS)]
        p = production(run["thermo"], run.get("warmup_ps", 0.0))
        if not p["t_ps"].size:
            continue
        n = run["n_atoms"]
        e = p["etot_eV"] * 1000.0 / n
        mask = p["analysed"] & np.isfinite(e)
        e0 = e[mask][0] if mask.any() else e[0]
        ax_e.plot(p["t_ps"], e - e0, color=color, lw=1.0, label=run["label"])
        if mask.sum() >= 3:
            slope, intercept = np.polyfit(p["t_ps"][mask], e[mask] - e0, 1)
            tt = p["t_ps"][mask]
            ax_e.plot(tt, intercept + slope * tt, color=color, lw=1.0, ls=":",
                      label=f"fit: {slope:+.3g} meV/atom/ps")
        ax_k.plot(p["t_ps"], (p["ekin_eV"] - p["ekin_eV"][0]) * 1000.0 / n, color=color, lw=0.9,
                  label=f"{run['label']} kinetic")
        ax_k.plot(p["t_ps"], (p["epot_eV"] - p["epot_eV"][0]) * 1000.0 / n, color=color, lw=0.9, ls="--",
                  label=f"{run['label']} potential")
    ax_e.set_xlabel("time in NVE (ps)")
    ax_e.set_ylabel("E_tot/N − E_tot(t₀)/N (meV/atom)")
    ax_e.set_title("total energy and its linear fit (drift)")
    ax_e.legend(loc="best", ncol=1 if len(runs) <= 3 else 2)
    ax_k.set_xlabel("time in NVE (ps)")
    ax_k.set_ylabel("E − E(0), per atom (meV/atom)")
    ax_k.set_title("kinetic (solid) and potential (dashed) energy")
    if len(runs) <= 3:
        ax_k.legend(loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def ladder_plot(timesteps_fs, fluctuation_meV, path, *, labels=None, title: str = "") -> Path:
    """RMS fluctuation of E_tot/N about its fit against dt (log-log), with a ∝ dt² guide.

    ``fluctuation_meV`` is one list per series (e.g. per model), aligned with ``timesteps_fs``.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4.0))
    dt = np.asarray(timesteps_fs, dtype=float)
    series = fluctuation_meV if labels else [fluctuation_meV]
    labels = labels or ["RMS fluctuation"]
    for k, (y, label) in enumerate(zip(series, labels)):
        y = np.asarray(y, dtype=float)
        ok = np.isfinite(y) & (y > 0)
        ax.loglog(dt[ok], y[ok], "o-", color=COLORS[k % len(COLORS)], label=label)
        if ok.sum() >= 1:
            j = int(np.nonzero(ok)[0][-1])
            guide = y[j] * (dt / dt[j]) ** 2
            ax.loglog(dt, guide, color="0.5", lw=0.8, ls="--", label="∝ dt²" if k == 0 else None)
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.set_xticks(dt)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("time step dt (fs)")
    ax.set_ylabel("RMS fluctuation of E_tot/N (meV/atom)")
    ax.set_title(title or "time-step ladder")
    ax.legend(loc="best")
    fig.tight_layout()
    return _save(fig, path)


def overlay_plot(series: list[dict], path, *, xlabel: str, ylabel: str, title: str = "") -> Path:
    """Several runs on shared axes. Each series: ``{"label", "x", "y", "reference": bool,
    "failed": bool}``; the reference is drawn black and dashed, a failed run ends with an ×."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    k = 0
    for s in series:
        x, y = np.asarray(s["x"], dtype=float), np.asarray(s["y"], dtype=float)
        if s.get("reference"):
            ax.plot(x, y, label=s["label"], zorder=5, **REFERENCE_STYLE)
            continue
        if s.get("secondary"):
            ax.plot(x, y, label=s["label"], zorder=4, **SECONDARY_STYLE)
            continue
        color = COLORS[k % len(COLORS)]
        k += 1
        ax.plot(x, y, color=color, lw=1.0, label=s["label"])
        if s.get("failed") and x.size:
            ax.plot(x[-1:], y[-1:], "x", color=color, ms=9, mew=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return _save(fig, path)


def rdf_plot(reference: dict | None, models: list[dict], path, *, title: str = "",
             secondary: dict | None = None) -> Path:
    """g(r) of the reference and the models (top) and g(r) − g_ref(r) (bottom).

    ``reference``: ``{"label", "r_A", "g"}`` or None (the difference panel is against it);
    ``secondary``: another reference drawn grey and dotted (e.g. another engine's); each model: ``{"label", "r_A", "g",
    "error_percent" (or None)}``.
    """
    plt = _plt()
    fig, (ax, ax_d) = plt.subplots(2, 1, figsize=(5.0, 4.8), sharex=True, gridspec_kw={"height_ratios": [2.2, 1]})
    if reference:
        ax.plot(reference["r_A"], reference["g"], label=reference["label"], zorder=5, **REFERENCE_STYLE)
    if secondary:
        ax.plot(secondary["r_A"], secondary["g"], label=secondary["label"], zorder=4, **SECONDARY_STYLE)
    for k, m in enumerate(models):
        color = COLORS[k % len(COLORS)]
        err = m.get("error_percent")
        label = m["label"] + (f" ({err:.2f} %)" if err is not None else "")
        ax.plot(m["r_A"], m["g"], color=color, lw=1.0, label=label)
        if reference and len(m["g"]) == len(reference["g"]):
            ax_d.plot(m["r_A"], np.asarray(m["g"]) - np.asarray(reference["g"]), color=color, lw=1.0)
    ax_d.axhline(0.0, color="black", lw=0.8)
    ax.axhline(1.0, color="0.7", lw=0.6)
    ax.set_ylabel("g(r)")
    ax_d.set_ylabel("g − g_ref")
    ax_d.set_xlabel("r (Å)")
    ax.set_title(title or "radial distribution function (RDF error in brackets)")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return _save(fig, path)


def _panel_grid(plt, n_panels: int):
    """A figure with up to 4 panels per row for ``n_panels`` panels; unused panels hidden."""
    n = max(n_panels, 1)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.7 * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig, axes


def activation_plot(layers: list[dict], path, *, title: str = "") -> Path:
    """Learned activation curves, one panel per layer, each beside tanh.

    Each layer: ``{"name", "z", "y" ([n_z] or [n_z, n_neurons]), "spec"}``.
    """
    plt = _plt()
    fig, axes = _panel_grid(plt, len(layers))
    for ax, layer in zip(axes.ravel(), layers):
        z, y = np.asarray(layer["z"]), np.asarray(layer["y"])
        ax.plot(z, np.tanh(z), color="0.4", lw=1.2, ls="--", label="tanh")
        if y.ndim == 2:
            ax.plot(z, y, color=COLORS[0], lw=0.5, alpha=0.35)
            ax.plot(z, y.mean(axis=1), color=COLORS[0], lw=1.5, label="learned (mean)")
        else:
            ax.plot(z, y, color=COLORS[0], lw=1.5, label="learned")
        ax.set_title(layer["name"], fontsize=8)
        ax.set_xlabel("z")
        ax.axhline(0, color="0.85", lw=0.5)
        ax.axvline(0, color="0.85", lw=0.5)
    axes.ravel()[0].legend(loc="upper left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def activation_evolution_plot(layers: list[dict], path, *, title: str = "") -> Path:
    """One panel per layer: the activation at several epochs, from light (early) to dark (late).

    Each layer: ``{"name", "z", "curves": [(epoch, y), ...]}``.
    """
    plt = _plt()
    import matplotlib.cm as cm

    fig, axes = _panel_grid(plt, len(layers))
    for ax, layer in zip(axes.ravel(), layers):
        z = np.asarray(layer["z"])
        ax.plot(z, np.tanh(z), color="0.6", lw=1.0, ls="--", label="tanh")
        curves = layer["curves"]
        for j, (epoch, y) in enumerate(curves):
            shade = cm.viridis(0.15 + 0.75 * j / max(len(curves) - 1, 1))
            y = np.asarray(y)
            ax.plot(z, y.mean(axis=1) if y.ndim == 2 else y, color=shade, lw=1.2, label=f"epoch {epoch}")
        ax.set_title(layer["name"], fontsize=8)
        ax.set_xlabel("z")
    axes.ravel()[0].legend(loc="upper left", fontsize=6.5)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def training_plot(curves: list[dict], path, *, title: str = "", x: str = "time_s") -> Path:
    """Validation energy and force RMSE against training wall time (``x="time_s"``) or epoch
    (``x="epoch"``), one line per model (log scale).

    Each curve: ``{"label", "epoch", "time_s", "energy_rmse_meV_per_atom", "force_rmse_eV_per_A"}``.
    """
    xlabel = "training wall time (s)" if x == "time_s" else "epoch"
    plt = _plt()
    fig, (ax_e, ax_f) = plt.subplots(1, 2, figsize=(11, 3.8))
    for k, c in enumerate(curves):
        color = COLORS[k % len(COLORS)]
        ax_e.semilogy(c[x], c["energy_rmse_meV_per_atom"], "o-", ms=3, color=color, label=c["label"])
        ax_f.semilogy(c[x], c["force_rmse_eV_per_A"], "o-", ms=3, color=color, label=c["label"])
    ax_e.set_xlabel(xlabel)
    ax_e.set_ylabel("validation energy RMSE (meV/atom)")
    ax_f.set_xlabel(xlabel)
    ax_f.set_ylabel("validation force RMSE (eV/Å)")
    ax_f.legend(loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle(title or "training curves")
    fig.tight_layout()
    return _save(fig, path)


def parity_engines_plot(models: list[dict], path) -> Path:
    """Force components from LAMMPS (pair_style taafs) against ASE (mdval.Calculator).

    Each model: ``{"label", "ase_forces", "lammps_forces"}`` (arrays [n, 3], eV/Å).
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    lo, hi = np.inf, -np.inf
    for k, m in enumerate(models):
        a, b = np.ravel(m["ase_forces"]), np.ravel(m["lammps_forces"])
        if not a.size:
            continue
        lo, hi = min(lo, a.min(), b.min()), max(hi, a.max(), b.max())
        ax.scatter(a, b, s=6, alpha=0.6, color=COLORS[k % len(COLORS)], label=m["label"], edgecolors="none")
    if np.isfinite(lo):
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8, zorder=0)
    ax.set_xlabel("force component, ASE (eV/Å)")
    ax.set_ylabel("force component, LAMMPS (eV/Å)")
    ax.set_title("single-point parity, ASE vs LAMMPS")
    ax.legend(loc="upper left", fontsize=6.5)
    fig.tight_layout()
    return _save(fig, path)
