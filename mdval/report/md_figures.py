"""The MD figures of the compare report, one per protocol and engine, each with its uncertainty:

- NVE: E_tot(t)/N of every run, its drift fit ± the slope's standard error shaded over the fitted
  span, beside each potential's drift ± stderr;
- NVT: g(r), g − g_ref with ± its per-bin standard error (from the blocks of frames that
  results.json keeps), beside each model's RDF error ± stderr;
- NPT: ρ(t), the mean ± stderr over each run's production window shaded across that window,
  beside each potential's mean density ± stderr.

Time series come from the run folders (``thermo.csv`` of the run, or of replica 1 where a run has
replicas, with that replica's own estimates for its bands); the right-hand panels show the report's
rows (replicas combined). mdval/report/plots.py draws.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mdval.md import results as res
from mdval.report import plots
from mdval.report.rows import estimate


def colors(labels: list[str]) -> dict[str, str]:
    """One colour per model label, the same in every figure; no grey (the reference's bands are)."""
    palette = [c for c in plots.COLORS if c != "#7f7f7f"]
    return {label: palette[k % len(palette)] for k, label in enumerate(labels)}


def _plotted_result(task: dict) -> dict:
    """The result whose time series ``task["out"]`` holds: the run's, or replica 1's."""
    return (task.get("replicas") or [task])[0]["result"]


def _thermo(task: dict) -> dict:
    """Production rows of the run's thermo table; ``t_ps`` from the production start, ``t0_ps`` that start."""
    p = plots.production(res.read_thermo(Path(task["out"]) / res.THERMO_FILE))
    p["t0_ps"] = float(p["time_ps"][0]) if p["time_ps"].size else 0.0
    return p


def _entry(label: str, row: dict | None, value, color: str, reference: bool) -> dict:
    e = estimate(value) if row is not None else None
    return {
        "label": label,
        "value": e.value if e else None,
        "stderr": e.stderr if e else None,
        "color": color,
        "reference": reference,
    }


def _tasks(md: list[dict], engine: str, protocol: str) -> list[dict]:
    return [t for t in md if t["engine"] == engine and t["protocol"] == protocol]


def _row(rows: list[dict], label: str, engine: str) -> dict | None:
    return next((r for r in rows if r["label"] == label and r["engine"] == engine), None)


def nve_figure(md: list[dict], rows: list[dict], engine: str, n_atoms: int, palette: dict, path) -> Path:
    """E_tot(t)/N − its first value (meV/atom) with the drift fit band, and the drift estimates."""
    series, estimates = [], []
    for t in _tasks(md, engine, "nve"):
        p, drift = _thermo(t), (_plotted_result(t).get("observables") or {}).get("drift") or {}
        if not p["t_ps"].size:
            continue
        reference = t["role"] == "reference"
        e = (p["etot_eV"] - p["etot_eV"][0]) * 1000.0 / n_atoms
        start = drift.get("start_ps")
        band = None
        slope = estimate(drift.get("drift_meV_per_atom_ps"))
        if start is not None and slope is not None and math.isfinite(slope.stderr):
            fitted = (p["time_ps"] >= start - 1e-9) & np.isfinite(e)
            tf, mean_t, mean_e = p["t_ps"][fitted], p["t_ps"][fitted].mean(), e[fitted].mean()
            lines = [mean_e + (slope.value + k * slope.stderr) * (tf - mean_t) for k in (-1.0, 1.0)]
            band = {"x": tf, "lo": np.minimum(*lines), "hi": np.maximum(*lines)}
        series.append(
            {
                "label": "reference" if reference else t["label"],
                "x": p["t_ps"],
                "y": e,
                "color": palette.get(t["label"], "black"),
                "reference": reference,
                "failed": t["result"]["status"] != "completed",
                "band": band,
                "window_start": start - p["t0_ps"] if start is not None else None,
            }
        )
        estimates.append(
            _entry(
                series[-1]["label"],
                _row(rows, t["label"], engine),
                (_row(rows, t["label"], engine) or {}).get("drift_meV_per_atom_ps"),
                series[-1]["color"],
                reference,
            )
        )
    return plots.timeseries_plot(
        series,
        estimates,
        path,
        xlabel="time in NVE (ps)",
        ylabel="E_tot/N − E_tot(0)/N (meV/atom)",
        estimate_label="drift (meV/atom/ps)",
        band_label="drift fit ± stderr of its slope",
        title=f"E_tot(t) in NVE, {engine}",
    )


def npt_figure(md: list[dict], rows: list[dict], engine: str, palette: dict, path) -> Path:
    """ρ(t) with each run's mean ± stderr over its production window, and the density estimates."""
    series, estimates = [], []
    for t in _tasks(md, engine, "npt"):
        p, observables = _thermo(t), _plotted_result(t).get("observables") or {}
        if not p["t_ps"].size:
            continue
        reference = t["role"] == "reference"
        window, rho = observables.get("production_window"), estimate(observables.get("density_g_cm3"))
        band, start = None, None
        if window and rho is not None:
            start = window["start_ps"] - p["t0_ps"]
            x = np.array([start, window["end_ps"] - p["t0_ps"]])
            stderr = rho.stderr if math.isfinite(rho.stderr) else 0.0
            band = {"x": x, "lo": np.full(2, rho.value - stderr), "hi": np.full(2, rho.value + stderr)}
        series.append(
            {
                "label": "reference" if reference else t["label"],
                "x": p["t_ps"],
                "y": p["density_g_cm3"],
                "color": palette.get(t["label"], "black"),
                "reference": reference,
                "failed": t["result"]["status"] != "completed",
                "band": band,
                "window_start": start,
            }
        )
        row = _row(rows, t["label"], engine)
        estimates.append(
            _entry(
                series[-1]["label"],
                row,
                ((row or {}).get("observables") or {}).get("npt", {}).get("density_g_cm3"),
                series[-1]["color"],
                reference,
            )
        )
    return plots.timeseries_plot(
        series,
        estimates,
        path,
        xlabel="time in NPT (ps)",
        ylabel="ρ (g/cm³)",
        estimate_label="mean ρ over the production window (g/cm³)",
        band_label="mean ± stderr over the production window",
        title=f"ρ(t) in NPT, {engine}",
    )


def per_bin_stderr(rdf: dict) -> np.ndarray | None:
    """Standard error of g(r) per bin from the run's blocks of frames (results.json ``rdf.blocks``):
    the standard deviation of the blocks' g over sqrt(number of blocks); None with fewer than 2."""
    blocks = np.asarray((rdf.get("blocks") or {}).get("total") or [], dtype=float)
    if blocks.ndim != 2 or blocks.shape[0] < 2:
        return None
    return blocks.std(axis=0, ddof=1) / math.sqrt(blocks.shape[0])


def nvt_figure(md: list[dict], rows: list[dict], engine: str, palette: dict, path) -> tuple[Path, list[str]]:
    """g(r), g − g_ref ± per-bin stderr and the RDF errors; also the labels of the runs whose
    results.json had no blocks for a per-bin error."""
    reference, models, estimates, no_blocks = None, [], [], []
    for t in _tasks(md, engine, "nvt"):
        g = (t["result"].get("observables") or {}).get("rdf")
        if not g:
            continue
        stderr = per_bin_stderr(g)
        if stderr is None:
            no_blocks.append(t["label"])
        if t["role"] == "reference":
            reference = {"label": "reference", "r_A": g["r_A"], "g": g["total"], "stderr": stderr}
        else:
            models.append(
                {"label": t["label"], "r_A": g["r_A"], "g": g["total"], "color": palette[t["label"]], "stderr": stderr}
            )
            row = _row(rows, t["label"], engine)
            estimates.append(_entry(t["label"], row, (row or {}).get("rdf_error_percent"), palette[t["label"]], False))
    for m in models:
        own, theirs = m.pop("stderr"), reference["stderr"] if reference else None
        m["dg_stderr"] = np.sqrt(own**2 + theirs**2) if own is not None and theirs is not None else None
    return plots.rdf_plot(
        reference,
        models,
        estimates,
        path,
        title=f"g(r) in NVT, {engine}",
        error_label="RDF error against the reference (%)",
    ), no_blocks
