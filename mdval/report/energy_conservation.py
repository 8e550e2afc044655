"""``mdval report energy-conservation``: does a model conserve energy in NVE, and how well?

Two ways in:

- a model (and a structure, default FCC Cu 3×3×3): NVT equilibration then NVE with velocity
  Verlet, optionally at several time steps (the ladder) and in float64 and float32 (the A/B
  comparison), run by mdval/md/nve_ladder.py (ASE or LAMMPS engine) into ``<out>/runs/``;
- existing NVE run folders (``thermo.csv`` + ``results.json`` of mdval.md), e.g. from
  ``mdval md nve`` or ``mdval compare``.

This module reads those run folders and renders them; it runs nothing. An earlier report in the
output folder is replaced only when it is of the same runs (:func:`refuse_other_report`).

The metrics are those of :func:`mdval.md.observables.energy_drift` (never re-implemented here):
drift b of the least-squares fit E_tot(t)/N = a + b·t (meV/atom/ps) after the warm-up, RMS
fluctuation about the fit (meV/atom), maximum excursion max|E(t) − E(t₀)|/N (meV/atom) and the
ratio |b|·duration/σ_KE. For a symplectic integrator and smooth forces the fluctuation scales as
dt² (the ladder's log-log slope ≈ 2) and the drift is ~0; a drift that grows with dt, or a slope
far from 2, points at non-smooth forces (cutoff, activation) or a too-large time step.

Outputs in ``--out`` (default ``reports/energy_conservation``): ``report.json``, ``report.md``,
``report.html`` (self-contained, PNGs embedded), ``energy.png`` (and ``ladder.png``), and the
NVE runs themselves under ``runs/`` (and the float32 copy of the model under ``models/``) when
they were made here.

JSON schema (``report.json``; :func:`validate_report` checks it)::

    {
      "schema": "mdval.report.energy_conservation/1",
      "created": str (ISO 8601), "mdval_version": str,
      "max_drift_meV_per_atom_ps": number | null,     # the gate, if one was asked for
      "passed": bool,           # every run completed and, with a gate, |drift| <= max_drift
      "runs": [ {
          "label": str, "potential": str, "engine": "ase" | "lammps",
          "timestep_fs": number, "compute_dtype": str | null, "n_atoms": int,
          "status": "completed" | "failed", "reason": str | null,
          "drift": null | {"drift_meV_per_atom_ps", "rms_fluctuation_meV_per_atom",
                           "max_excursion_meV_per_atom", "sigma_ke_meV_per_atom",
                           "drift_over_sigma_ke", "duration_ps": number, "n_samples": int,
                           "drift_meV_per_atom_ps_stderr", "rms_fluctuation_meV_per_atom_stderr",
                           "start_ps": number},   # the stderrs of results.json's estimates
          "passed": bool, "output_dir": str } ... ],
      "timestep_ladder": null | {"timesteps_fs": [number], "rms_fluctuation_meV_per_atom":
                                 [number | null], "loglog_slope": number | null},
      "precision_ab": null | {"float64": str (label), "float32": str (label),
                              "drift_difference_meV_per_atom_ps": number | null,
                              "rms_ratio_float32_over_float64": number | null},
      "files": {"json": str, "markdown": str, "html": str, "figures": [str]},
      "provenance": {"command": str | null, "versions": {...}, "runs": [provenance of each run]}
    }

Exit status of the command: 0 when ``passed``, 1 otherwise (a drift above ``--max-drift`` or a
failed run), so the command can gate CI.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path

import numpy as np

from mdval.md import observables as obs
from mdval.md import results as res
from mdval.report import plots
from mdval.report.html import fmt, text_table, write_documents

SCHEMA_ID = "mdval.report.energy_conservation/1"
DRIFT_KEYS = (
    "drift_meV_per_atom_ps",
    "rms_fluctuation_meV_per_atom",
    "max_excursion_meV_per_atom",
    "sigma_ke_meV_per_atom",
    "drift_over_sigma_ke",
    "duration_ps",
    "n_samples",
)
RUN_KEYS = (
    "label",
    "potential",
    "engine",
    "timestep_fs",
    "compute_dtype",
    "n_atoms",
    "status",
    "reason",
    "drift",
    "passed",
    "output_dir",
)
TABLE_HEADER = (
    "run",
    "engine",
    "dt (fs)",
    "dtype",
    "status",
    "drift (meV/atom/ps)",
    "RMS fluct. (meV/atom)",
    "max exc. (meV/atom)",
    "|drift|·T/σ_KE",
    "gate",
)


# --------------------------------------------------------------------------- out folder
def refuse_other_report(out_dir, run_dirs) -> None:
    """Raise ValueError (one line: the folder, its runs, the fix) when ``out_dir`` holds an
    earlier report of other runs than ``run_dirs``; a report of the same runs may be written again
    (a resume, or another ``--max-drift``)."""
    path = Path(out_dir) / "report.json"
    if not path.exists():
        return
    try:
        earlier = json.loads(path.read_text()).get("runs") or []
    except (OSError, ValueError, AttributeError):
        earlier = []
    if {str(Path(r.get("output_dir", "")).resolve()) for r in earlier} == {str(Path(d).resolve()) for d in run_dirs}:
        return
    labels = ", ".join(str(r.get("label")) for r in earlier) or "unreadable"
    raise ValueError(
        f"{out_dir} holds an earlier report of other runs ({labels}); use another --out folder, "
        "or --overwrite to replace it"
    )


# ------------------------------------------------------------------------------ records
def load_run(run_dir, label: str | None = None) -> dict:
    """A report record from an NVE run folder (``results.json`` + ``thermo.csv``).

    The drift comes from the run's results.json; if it is missing (an old or failed run) it is
    computed from the thermo table with :func:`mdval.md.observables.energy_drift`.
    """
    run_dir = Path(run_dir)
    results_file, thermo_file = run_dir / res.RESULTS_FILE, run_dir / res.THERMO_FILE
    if not results_file.exists() or not thermo_file.exists():
        raise FileNotFoundError(
            f"{run_dir} is not an mdval MD run folder (needs {res.RESULTS_FILE} and "
            f"{res.THERMO_FILE}); make one with `mdval md nve` or give --model"
        )
    result = json.loads(results_file.read_text())
    if result.get("protocol") != "nve":
        raise ValueError(f"{run_dir} holds a {result.get('protocol')!r} run; energy conservation needs an NVE run")
    thermo = res.read_thermo(thermo_file)
    settings = result.get("settings", {})
    potential = result.get("provenance", {}).get("potential", {})
    n_atoms = _n_atoms(run_dir, thermo)
    drift = _drift_numbers(result.get("observables", {}).get("drift"))
    if drift is None:
        prod = thermo["phase"] == "production"
        try:
            drift = _drift_numbers(
                obs.energy_drift(
                    thermo["time_ps"][prod],
                    thermo["etot_eV"][prod],
                    n_atoms,
                    kinetic_energy_eV=thermo["ekin_eV"][prod],
                    warmup_ps=settings.get("warmup_ps", 0.0),
                ).as_dict()
            )
        except ValueError:
            drift = None
    spec = potential.get("path") or potential.get("spec") or str(run_dir)
    return {
        "label": label or run_dir.name,
        "potential": spec,
        "engine": result.get("engine"),
        "timestep_fs": settings.get("timestep_fs"),
        "compute_dtype": potential.get("compute_dtype"),
        "n_atoms": n_atoms,
        "status": result.get("status"),
        "reason": result.get("reason"),
        "drift": drift,
        "output_dir": str(run_dir),
        "_thermo": thermo,
        "_warmup_ps": settings.get("warmup_ps", 0.0),
        "_provenance": result.get("provenance", {}),
    }


def _drift_numbers(drift: dict | None) -> dict | None:
    """A run's drift metrics as numbers: an estimate of the results.json contract gives its value,
    and its standard error as ``<key>_stderr``."""
    if drift is None:
        return None
    out = {}
    for key, value in drift.items():
        if isinstance(value, dict):
            out[key], out[f"{key}_stderr"] = value["value"], value["stderr"]
        else:
            out[key] = value
    return out


def _n_atoms(run_dir: Path, thermo: dict) -> int:
    traj = run_dir / res.TRAJECTORY_FILE
    if traj.exists() and traj.stat().st_size:
        first = traj.read_text().split("\n", 1)[0].strip()
        if first.isdigit():
            return int(first)
    # no trajectory: from the kinetic energy and temperature, E_kin = 3/2 (N-1) k_B T (ASE's Stationary)
    k_b = 8.617333262e-5
    ok = thermo["temperature_K"] > 0
    return int(round(np.median(thermo["ekin_eV"][ok] / (1.5 * k_b * thermo["temperature_K"][ok]))))


# ------------------------------------------------------------------------------ report
def build_report(
    records: list[dict],
    out_dir,
    *,
    max_drift: float | None = None,
    ladder: bool = False,
    ab: tuple[str, str] | None = None,
    command: str | None = None,
    title: str | None = None,
) -> dict:
    """Write report.json/.md/.html and figures for ``records`` (from :func:`load_run`); returns
    the report dict (schema in the module docstring)."""
    from mdval import __version__

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = _run_entries(records, max_drift)
    figures = [
        str(
            plots.energy_plot(
                [
                    {
                        "label": r["label"],
                        "thermo": r["_thermo"],
                        "n_atoms": r["n_atoms"],
                        "warmup_ps": r["_warmup_ps"],
                        "drift": r["drift"],
                    }
                    for r in records
                ],
                out_dir / "energy.png",
                title="NVE energy conservation",
            )
        )
    ]
    ladder_block = None
    if ladder:
        ladder_block = _ladder_block(runs, ab)
        figures.append(str(_ladder_figure(ladder_block, out_dir / "ladder.png")))
    report = {
        "schema": SCHEMA_ID,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "mdval_version": __version__,
        "max_drift_meV_per_atom_ps": max_drift,
        "passed": bool(runs) and all(r["passed"] for r in runs),
        "runs": runs,
        "timestep_ladder": ladder_block,
        "precision_ab": _ab_block(runs, ab) if ab else None,
        "files": {
            "json": str(out_dir / "report.json"),
            "markdown": str(out_dir / "report.md"),
            "html": str(out_dir / "report.html"),
            "figures": figures,
        },
        "provenance": {"command": command, "versions": res.versions(), "runs": [r["_provenance"] for r in records]},
    }
    blocks = _blocks(report)
    write_documents(out_dir, "report", title or "mdval: NVE energy conservation", blocks)
    res.write_json_atomic(out_dir / "report.json", report)
    problems = validate_report(json.loads((out_dir / "report.json").read_text()))
    if problems:
        raise RuntimeError("energy-conservation report does not match its schema: " + "; ".join(problems))
    return report


def _run_entries(records: list[dict], max_drift: float | None) -> list[dict]:
    """The report's "runs": each record's public keys, and whether it passed (completed, with a
    drift, and |drift| within ``max_drift`` meV/atom/ps when there is a gate)."""
    runs = []
    for r in records:
        d = r["drift"]
        ok = r["status"] == "completed" and d is not None
        within = ok and (max_drift is None or abs(d["drift_meV_per_atom_ps"]) <= max_drift)
        runs.append({**{k: r.get(k) for k in RUN_KEYS if k != "passed"}, "passed": bool(within)})
    return runs


def _ladder_block(runs: list[dict], ab: tuple[str, str] | None) -> dict:
    """The report's "timestep_ladder": RMS fluctuation (meV/atom) against time step (fs), and the
    log-log slope of the rungs with a positive fluctuation (None below two of them)."""
    skip = {ab[1]} if ab else set()  # the float32 run of the A/B is not a rung of the ladder
    order = sorted((k for k in range(len(runs)) if runs[k]["label"] not in skip), key=lambda k: runs[k]["timestep_fs"])
    dts = [runs[k]["timestep_fs"] for k in order]
    fl = [runs[k]["drift"]["rms_fluctuation_meV_per_atom"] if runs[k]["drift"] else None for k in order]
    ok = [(t, f) for t, f in zip(dts, fl) if f and f > 0]
    slope = float(np.polyfit(np.log([t for t, _ in ok]), np.log([f for _, f in ok]), 1)[0]) if len(ok) >= 2 else None
    return {"timesteps_fs": dts, "rms_fluctuation_meV_per_atom": fl, "loglog_slope": slope}


def _ladder_figure(ladder_block: dict, path: Path) -> Path:
    """The ladder's log-log plot, written to ``path``."""
    fl = ladder_block["rms_fluctuation_meV_per_atom"]
    return plots.ladder_plot(
        ladder_block["timesteps_fs"],
        [f if f is not None else math.nan for f in fl],
        path,
        title=f"time-step ladder (log-log slope {fmt(ladder_block['loglog_slope'])}; expected 2)",
    )


def _ab_block(runs: list[dict], ab: tuple[str, str]) -> dict:
    """The report's "precision_ab": float32 minus float64 drift (meV/atom/ps) and the ratio of
    their RMS fluctuations, None where a run has no drift (or the float64 fluctuation is 0)."""
    by_label = {r["label"]: r for r in runs}
    d64, d32 = by_label[ab[0]]["drift"], by_label[ab[1]]["drift"]
    return {
        "float64": ab[0],
        "float32": ab[1],
        "drift_difference_meV_per_atom_ps": (d32["drift_meV_per_atom_ps"] - d64["drift_meV_per_atom_ps"])
        if d64 and d32
        else None,
        "rms_ratio_float32_over_float64": (d32["rms_fluctuation_meV_per_atom"] / d64["rms_fluctuation_meV_per_atom"])
        if d64 and d32 and d64["rms_fluctuation_meV_per_atom"]
        else None,
    }


def table_rows(report: dict) -> list[list[str]]:
    rows = []
    gate = report["max_drift_meV_per_atom_ps"]
    for r in report["runs"]:
        d = r["drift"] or {}
        verdict = ("PASS" if r["passed"] else "FAIL") if gate is not None else ("ok" if r["passed"] else "failed")
        rows.append(
            [
                r["label"],
                r["engine"],
                fmt(r["timestep_fs"]),
                r["compute_dtype"] or "–",
                r["status"] if r["status"] == "completed" else f"failed: {r['reason']}",
                fmt(d.get("drift_meV_per_atom_ps")),
                fmt(d.get("rms_fluctuation_meV_per_atom")),
                fmt(d.get("max_excursion_meV_per_atom")),
                fmt(d.get("drift_over_sigma_ke")),
                verdict,
            ]
        )
    return rows


def terminal_table(report: dict) -> str:
    return text_table(TABLE_HEADER, table_rows(report))


def terminal_summary(report: dict) -> str:
    """The table, the ladder's slope and the A/B differences, three significant digits each."""
    lines = [terminal_table(report)]
    ladder = report["timestep_ladder"]
    if ladder:
        lines.append(
            f"time-step ladder: RMS fluctuation ∝ dt^{fmt(ladder['loglog_slope'])} (log-log slope; "
            "velocity Verlet with smooth forces: 2)"
        )
    ab = report["precision_ab"]
    if ab:
        lines.append(
            f"float32 − float64: drift {fmt(ab['drift_difference_meV_per_atom_ps'])} meV/atom/ps, "
            f"RMS fluctuation ratio {fmt(ab['rms_ratio_float32_over_float64'])}"
        )
    return "\n".join(lines)


def _blocks(report: dict) -> list:
    gate = report["max_drift_meV_per_atom_ps"]
    verdict = (
        ("all runs completed" if report["passed"] else "a run failed")
        if gate is None
        else (
            f"PASS: every |drift| ≤ {gate} meV/atom/ps"
            if report["passed"]
            else f"FAIL: a run failed or |drift| > {gate} meV/atom/ps"
        )
    )
    blocks = [
        (
            "p",
            f"{verdict}. Drift = slope of the least-squares line through E_tot(t)/N after the warm-up; "
            "RMS fluctuation about that line; maximum excursion max|E(t) − E(t₀)|/N; "
            "|drift|·T/σ_KE ≪ 1 means the drift is small against the natural kinetic-energy "
            "fluctuation.",
        ),
        ("table", TABLE_HEADER, table_rows(report)),
        ("h", "Energy against time"),
    ]
    figs = report["files"]["figures"]
    blocks.append(
        (
            "img",
            figs[0],
            "Left: E_tot/N relative to its first analysed value, with the least-squares fit "
            "(dotted). Right: kinetic and potential energy per atom.",
        )
    )
    if report["timestep_ladder"]:
        lad = report["timestep_ladder"]
        blocks += [
            ("h", "Time-step ladder"),
            (
                "p",
                f"RMS fluctuation against dt, log-log; fitted slope {fmt(lad['loglog_slope'])} "
                "(velocity Verlet with smooth forces: 2).",
            ),
            ("img", figs[1], "RMS fluctuation of E_tot/N about its fit against the time step; dashed: ∝ dt²."),
        ]
    if report["precision_ab"]:
        ab = report["precision_ab"]
        blocks += [
            ("h", "float64 / float32 A/B"),
            (
                "p",
                f"{ab['float32']} against {ab['float64']}: drift difference "
                f"{fmt(ab['drift_difference_meV_per_atom_ps'])} meV/atom/ps, RMS fluctuation ratio "
                f"{fmt(ab['rms_ratio_float32_over_float64'])}.",
            ),
        ]
    blocks += [("h", "Provenance"), ("pre", json.dumps(report["provenance"], indent=1, default=str))]
    return blocks


# ------------------------------------------------------------------------------ schema
def _is_num(v, nullable=False) -> bool:
    return (v is None and nullable) or (isinstance(v, (int, float)) and not isinstance(v, bool))


def validate_report(report: dict) -> list[str]:
    """Problems of ``report`` against the JSON schema of the module docstring ([] if none)."""
    p = []
    if not isinstance(report, dict):
        return [f"report must be an object, got {type(report).__name__}"]
    if report.get("schema") != SCHEMA_ID:
        p.append(f"schema must be {SCHEMA_ID!r}, got {report.get('schema')!r}")
    for key in ("created", "mdval_version"):
        if not isinstance(report.get(key), str):
            p.append(f"{key} must be a string")
    if not _is_num(report.get("max_drift_meV_per_atom_ps"), nullable=True):
        p.append("max_drift_meV_per_atom_ps must be a number or null")
    if not isinstance(report.get("passed"), bool):
        p.append("passed must be a boolean")
    runs = report.get("runs")
    if not isinstance(runs, list) or not runs:
        p.append("runs must be a non-empty list")
        runs = []
    for k, r in enumerate(runs):
        missing = [key for key in RUN_KEYS if key not in r]
        if missing:
            p.append(f"runs[{k}] misses {', '.join(missing)}")
            continue
        if r["engine"] not in ("ase", "lammps"):
            p.append(f"runs[{k}].engine must be ase or lammps, got {r['engine']!r}")
        if r["status"] not in ("completed", "failed"):
            p.append(f"runs[{k}].status must be completed or failed, got {r['status']!r}")
        if not _is_num(r["timestep_fs"]) or not isinstance(r["n_atoms"], int) or not isinstance(r["passed"], bool):
            p.append(f"runs[{k}]: timestep_fs must be a number, n_atoms an integer, passed a boolean")
        if r["drift"] is not None:
            dmiss = [key for key in DRIFT_KEYS if key not in r["drift"]]
            if dmiss:
                p.append(f"runs[{k}].drift misses {', '.join(dmiss)}")
            elif not all(_is_num(r["drift"][key], nullable=True) for key in DRIFT_KEYS):
                p.append(f"runs[{k}].drift values must be numbers (or null)")
    lad = report.get("timestep_ladder", "absent")
    if lad == "absent":
        p.append("timestep_ladder must be present (null or an object)")
    elif lad is not None:
        if not (
            isinstance(lad.get("timesteps_fs"), list)
            and isinstance(lad.get("rms_fluctuation_meV_per_atom"), list)
            and len(lad["timesteps_fs"]) == len(lad["rms_fluctuation_meV_per_atom"])
            and _is_num(lad.get("loglog_slope"), nullable=True)
        ):
            p.append(
                "timestep_ladder needs timesteps_fs and rms_fluctuation_meV_per_atom of equal length and loglog_slope"
            )
    ab = report.get("precision_ab", "absent")
    if ab == "absent":
        p.append("precision_ab must be present (null or an object)")
    elif ab is not None:
        for key in ("float64", "float32"):
            if not isinstance(ab.get(key), str):
                p.append(f"precision_ab.{key} must be a run label")
        for key in ("drift_difference_meV_per_atom_ps", "rms_ratio_float32_over_float64"):
            if not _is_num(ab.get(key), nullable=True):
                p.append(f"precision_ab.{key} must be a number or null")
    files = report.get("files", {})
    for key in ("json", "markdown", "html"):
        if not isinstance(files.get(key), str):
            p.append(f"files.{key} must be a path")
    if not isinstance(files.get("figures"), list):
        p.append("files.figures must be a list of paths")
    prov = report.get("provenance")
    if (
        not isinstance(prov, dict)
        or not isinstance(prov.get("versions"), dict)
        or not isinstance(prov.get("runs"), list)
    ):
        p.append("provenance must hold versions (object) and runs (list)")
    return p
