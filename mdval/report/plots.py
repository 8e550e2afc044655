"""Report figures (matplotlib, Agg backend): every function draws one PNG and returns its path.

Inputs are plain data (thermo columns from :func:`mdval.md.results.read_thermo`, RDF dicts from
results.json, estimates as value and stderr, training-log records); no estimator is computed here
except the straight-line fit drawn over E_tot(t) by :func:`energy_plot`, which uses the
slope/intercept convention of :func:`mdval.md.observables.energy_drift` (e(t) = a + b·t in
meV/atom over the analysed window). Figures are saved at :data:`DPI` dots per inch; the wide ones
(:data:`WIDE`) fill a report page and keep their legends below the axes, out of the data.

- :func:`energy_plot`: E_tot(t)/N with its linear fit, and kinetic and potential energy per atom;
- :func:`ladder_plot`: RMS energy fluctuation against the time step, log-log, with a dt² guide;
- :func:`timeseries_plot`: one quantity of several runs with shaded uncertainty bands and the
  production windows marked, beside a panel of each run's estimate ± its standard error;
- :func:`rdf_plot`: g(r) overlays, the difference to the reference with its per-bin error band,
  and the RDF errors ± their standard errors;
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
COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#aec7e8",
    "#ffbb78",
)
REFERENCE_STYLE = {"color": "black", "lw": 2.0, "ls": "--"}
SECONDARY_STYLE = {"color": "0.45", "lw": 1.6, "ls": ":"}
#: dots per inch of every saved figure: sharp when a page is zoomed to 200 %
DPI: int = 150
#: size (inches) of a figure that spans the report page
WIDE: tuple[float, float] = (13.0, 4.6)
#: two-sided 95 % normal quantile: the thin whiskers of an estimate panel
Z95: float = 1.959964


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "legend.fontsize": 8, "figure.dpi": DPI})
    return plt


def _save(fig, path) -> Path:
    """Save atomically (temp file + rename) and close the figure."""
    plt = _plt()
    try:
        with fileio.atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=DPI, bbox_inches="tight")
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
            ax_e.plot(tt, intercept + slope * tt, color=color, lw=1.0, ls=":", label=f"fit: {slope:+.3g} meV/atom/ps")
        ax_k.plot(
            p["t_ps"],
            (p["ekin_eV"] - p["ekin_eV"][0]) * 1000.0 / n,
            color=color,
            lw=0.9,
            label=f"{run['label']} kinetic",
        )
        ax_k.plot(
            p["t_ps"],
            (p["epot_eV"] - p["epot_eV"][0]) * 1000.0 / n,
            color=color,
            lw=0.9,
            ls="--",
            label=f"{run['label']} potential",
        )
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


def _legend_below(fig, axes, extra: tuple = (), ncol: int | None = None) -> None:
    """One legend for the figure, under its axes (out of the data), from the labelled artists of
    ``axes`` (each label once) and the ``extra`` proxy artists (labelled)."""
    handles, labels = [], []
    found = [pair for ax in axes for pair in zip(*ax.get_legend_handles_labels())]
    for handle, label in found + [(h, h.get_label()) for h in extra]:
        if label not in labels:
            handles.append(handle)
            labels.append(label)
    if handles:
        fig.legend(
            handles,
            labels,
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            frameon=False,
            ncol=ncol or min(5, len(labels)),
            markerscale=2.0,
        )


def _estimate_panel(ax, entries: list[dict], xlabel: str) -> None:
    """Each entry's value ± stderr (thick bar) and ± 1.96 stderr (thin whisker), one row per run, the
    first reference's interval shaded across the panel. Entry: ``{"label", "value", "stderr",
    "color", "reference": bool}``; one without a value is left out."""
    entries = [e for e in entries if e.get("value") is not None and np.isfinite(e["value"])]
    for k, e in enumerate(entries):
        y = len(entries) - 1 - k
        stderr = e.get("stderr")
        stderr = stderr if stderr is not None and np.isfinite(stderr) else 0.0
        color = "black" if e.get("reference") else e["color"]
        if e.get("reference") and stderr > 0:
            ax.axvspan(e["value"] - stderr, e["value"] + stderr, color="0.85", zorder=0)
        ax.errorbar(e["value"], y, xerr=Z95 * stderr, color=color, lw=1.0, capsize=2, zorder=3)
        ax.errorbar(e["value"], y, xerr=stderr, color=color, lw=3.2, fmt="o", ms=4, zorder=4)
    ax.set_yticks(range(len(entries)))
    ax.set_yticklabels([e["label"] for e in reversed(entries)], fontsize=8)
    ax.set_ylim(-0.7, len(entries) - 0.3)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", color="0.9", lw=0.6)
    ax.set_title("estimate: thick ± stderr, thin ± 1.96 stderr", fontsize=8)


def timeseries_plot(
    series: list[dict],
    estimates: list[dict],
    path,
    *,
    xlabel: str,
    ylabel: str,
    estimate_label: str,
    band_label: str,
    title: str = "",
) -> Path:
    """Several runs' time series (left) beside their estimates (right, :func:`_estimate_panel`).

    Each series: ``{"label", "x", "y", "color", "reference": bool, "failed": bool, "window_start"
    (x where the production window starts, or None), "band": {"x", "lo", "hi"} or None}``. A
    series is drawn faint before its production window starts and solid inside it, its band
    shaded in its colour (labelled ``band_label``, e.g. mean ± stderr over the window); the
    reference is black and dashed; a failed run ends with an ×.
    """
    plt = _plt()
    fig, (ax, ax_e) = plt.subplots(1, 2, figsize=WIDE, gridspec_kw={"width_ratios": [2.6, 1]})
    for s in series:
        x, y = np.asarray(s["x"], dtype=float), np.asarray(s["y"], dtype=float)
        style = dict(REFERENCE_STYLE, lw=1.6) if s.get("reference") else {"color": s["color"], "lw": 1.0}
        start = s.get("window_start")
        inside = x >= start - 1e-9 if start is not None else np.ones(x.size, bool)
        ax.plot(x[inside], y[inside], label=s["label"], zorder=5 if s.get("reference") else 3, **style)
        if (~inside).any():
            before = np.flatnonzero(~inside)
            stop = min(before[-1] + 2, x.size)  # join the faint part to the solid one
            ax.plot(x[:stop], y[:stop], alpha=0.3, zorder=2, **{**style, "lw": 0.8})
        band = s.get("band")
        if band is not None:
            ax.fill_between(band["x"], band["lo"], band["hi"], color=style["color"], alpha=0.28, lw=0, zorder=4)
        if s.get("failed") and x.size:
            ax.plot(x[-1:], y[-1:], "x", color=style["color"], ms=9, mew=2)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    keys = [
        Line2D([], [], color="0.3", alpha=0.3, lw=0.8, label="faint: before the analysed window"),
        Patch(color="0.3", alpha=0.28, label=band_label),
    ]
    if any(s.get("failed") for s in series):
        keys.append(Line2D([], [], color="0.3", marker="x", ls="none", label="× a run that failed"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    _estimate_panel(ax_e, estimates, estimate_label)
    fig.tight_layout()
    _legend_below(fig, [ax], keys)
    return _save(fig, path)


def rdf_plot(
    reference: dict | None,
    models: list[dict],
    estimates: list[dict],
    path,
    *,
    title: str = "",
    error_label: str = "RDF error (%)",
) -> Path:
    """g(r) of the reference and the models (top left), g(r) − g_ref(r) with a band of ± its
    per-bin standard error (bottom left), the RDF errors ± their standard errors (right,
    :func:`_estimate_panel`).

    ``reference``: ``{"label", "r_A", "g"}`` or None (the differences are against it); each model:
    ``{"label", "r_A", "g", "color", "dg_stderr" (per bin, or None)}``.
    """
    plt = _plt()
    fig = plt.figure(figsize=(WIDE[0], 5.6))
    grid = fig.add_gridspec(2, 2, width_ratios=[2.6, 1], height_ratios=[2.0, 1.2])
    ax, ax_e = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[:, 1])
    ax_d = fig.add_subplot(grid[1, 0], sharex=ax)
    if reference:
        ax.plot(reference["r_A"], reference["g"], label=reference["label"], zorder=5, **REFERENCE_STYLE)
    for m in models:
        ax.plot(m["r_A"], m["g"], color=m["color"], lw=1.0, label=m["label"])
        if reference and len(m["g"]) == len(reference["g"]):
            dg = np.asarray(m["g"]) - np.asarray(reference["g"])
            ax_d.plot(m["r_A"], dg, color=m["color"], lw=1.0)
            if m.get("dg_stderr") is not None:
                s = np.asarray(m["dg_stderr"])
                ax_d.fill_between(m["r_A"], dg - s, dg + s, color=m["color"], alpha=0.22, lw=0)
    from matplotlib.patches import Patch

    band = Patch(color="0.3", alpha=0.22, label="bottom: g − g_ref ± per-bin stderr")
    ax_d.axhline(0.0, color="black", lw=0.8)
    ax.axhline(1.0, color="0.7", lw=0.6)
    curves = [np.asarray(c["g"]) for c in ([reference] if reference else []) + models]
    if curves:  # start the r axis a little before the first neighbours: below, g(r) is 0
        r = np.asarray((reference or models[0])["r_A"])
        occupied = np.flatnonzero(np.max([np.abs(c) for c in curves if c.shape == r.shape], axis=0) > 0.02)
        if occupied.size:
            ax.set_xlim(max(r[occupied[0]] - 0.3, 0.0), r[-1] + 0.05)
    ax.set_ylabel("g(r)")
    ax_d.set_ylabel("g − g_ref")
    ax_d.set_xlabel("r (Å)")
    plt.setp(ax.get_xticklabels(), visible=False)
    ax.set_title(title or "radial distribution function")
    _estimate_panel(ax_e, estimates, error_label)
    fig.tight_layout()
    _legend_below(fig, [ax, ax_d], (band,))
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


def evolution_colors(n: int) -> list[tuple]:
    """RGBA colours of n snapshots in time order, along viridis from 0.15 (dark purple, the first)
    to 0.9 (yellow, the last)."""
    import matplotlib

    return [matplotlib.colormaps["viridis"](0.15 + 0.75 * j / max(n - 1, 1)) for j in range(n)]


def activation_evolution_plot(layers: list[dict], path, *, title: str = "") -> Path:
    """One panel per layer: the activation at several epochs, coloured along viridis from dark
    purple (earliest epoch) through green to yellow (latest).

    Each layer: ``{"name", "z", "curves": [(epoch, y), ...]}``.
    """
    plt = _plt()
    fig, axes = _panel_grid(plt, len(layers))
    for ax, layer in zip(axes.ravel(), layers):
        z = np.asarray(layer["z"])
        ax.plot(z, np.tanh(z), color="0.6", lw=1.0, ls="--", label="tanh")
        curves = layer["curves"]
        for (epoch, y), shade in zip(curves, evolution_colors(len(curves))):
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
    """Force components from LAMMPS (pair_style taafs) against ASE (mdval.Calculator), left, and
    their absolute difference against the force, right (log scale: zeros drawn at the floor).

    Each model: ``{"label", "ase_forces", "lammps_forces"}`` (arrays [n, 3], eV/Å).
    """
    plt = _plt()
    fig, (ax, ax_d) = plt.subplots(1, 2, figsize=(WIDE[0], 4.2))
    lo, hi, floor = np.inf, -np.inf, 1e-17
    for k, m in enumerate(models):
        a, b = np.ravel(m["ase_forces"]), np.ravel(m["lammps_forces"])
        if not a.size:
            continue
        color = COLORS[k % len(COLORS)]
        lo, hi = min(lo, a.min(), b.min()), max(hi, a.max(), b.max())
        ax.scatter(a, b, s=6, alpha=0.6, color=color, label=m["label"], edgecolors="none")
        ax_d.scatter(np.abs(a), np.maximum(np.abs(b - a), floor), s=6, alpha=0.6, color=color, edgecolors="none")
    if np.isfinite(lo):
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8, zorder=0)
    ax.set_xlabel("force component, ASE (eV/Å)")
    ax.set_ylabel("force component, LAMMPS (eV/Å)")
    ax.set_title("single-point parity, ASE vs LAMMPS")
    ax_d.set_yscale("log")
    ax_d.set_xlabel("|force component|, ASE (eV/Å)")
    ax_d.set_ylabel("|LAMMPS − ASE| (eV/Å)")
    ax_d.set_title(f"their difference (below {floor:g} drawn at {floor:g})")
    fig.tight_layout()
    _legend_below(fig, [ax], ncol=min(8, max(len(models), 1)))
    return _save(fig, path)
