"""The compare report's rows, one per (potential, engine), and the verdicts on them.

:func:`summarise` turns the run matrix's summary entries (mdval.md.matrix.run_entries, one per
engine × protocol × potential, replicas combined) into rows that hold every observable as an
estimate of the results.json contract (``{"value", "stderr", "n_eff", "unit"}``), the errors
against the same engine's reference, stability, cost and the replicas' check of the error model.
:func:`judge` states what they show, with mdval/report/verdicts.py: each model against the
reference (every observable) and against the baseline model (every ranked metric), and the best
model at each metric where the data resolve one.
"""

from __future__ import annotations

import math

import numpy as np

from mdval.md.uncertainty import Estimate
from mdval.report import verdicts as vd

#: the observables shown per protocol: (name in the report, key path in results.json's
#: ``observables``, column title with its unit)
OBSERVABLES: dict[str, tuple[tuple[str, tuple[str, ...], str], ...]] = {
    "nve": (
        ("drift_meV_per_atom_ps", ("drift", "drift_meV_per_atom_ps"), "drift (meV/atom/ps)"),
        ("rms_fluctuation_meV_per_atom", ("drift", "rms_fluctuation_meV_per_atom"), "RMS fluct. (meV/atom)"),
        ("temperature_K", ("temperature_K",), "T (K)"),
        ("pressure_bar", ("pressure_bar",), "P (bar)"),
    ),
    "nvt": (
        ("first_peak_position_A", ("first_peak", "total", "position_A"), "1st peak r (Å)"),
        ("first_peak_height", ("first_peak", "total", "height"), "1st peak g(r)"),
        ("temperature_K", ("temperature_K",), "T (K)"),
        ("pressure_bar", ("pressure_bar",), "P (bar)"),
    ),
    "npt": (
        ("density_g_cm3", ("density_g_cm3",), "ρ (g/cm³)"),
        ("temperature_K", ("temperature_K",), "T (K)"),
        ("pressure_bar", ("pressure_bar",), "P (bar)"),
    ),
}
#: the standard error of a median of n normal samples, sqrt(π/2)·σ/sqrt(n), over that of the mean
MEDIAN_STDERR_FACTOR: float = math.sqrt(math.pi / 2.0)


def _at(tree, path: tuple[str, ...]):
    for key in path:
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree


def _is_estimate(value) -> bool:
    return isinstance(value, dict) and {"value", "stderr", "n_eff", "unit"} <= value.keys()


def estimate(value) -> Estimate | None:
    """An Estimate from the contract's JSON form; None for no value."""
    if not _is_estimate(value) or value["value"] is None:
        return None
    return Estimate.from_json(value)


def cost_estimate(per_run: list[float], unit: str = "ms/step") -> Estimate | None:
    """Steady-state cost of a potential in one engine from its runs' ms/step (or their start-up
    times, ``unit`` "s"): their median, with
    the standard error of a median, sqrt(π/2)·s/sqrt(n) (s the runs' sample standard deviation;
    normal approximation), N_eff = n. The runs are the NVE, NVT and NPT protocols: their spread
    holds the protocols' own cost differences too, so the error is on the safe side. None without
    runs; no error from one run."""
    x = np.array([v for v in per_run if v is not None and math.isfinite(v)], dtype=float)
    if x.size == 0:
        return None
    stderr = MEDIAN_STDERR_FACTOR * float(np.std(x, ddof=1)) / math.sqrt(x.size) if x.size > 1 else math.nan
    return Estimate(float(np.median(x)), stderr, float(x.size), unit)


def _new_row(entry: dict) -> dict:
    return {
        "label": entry["label"],
        "role": entry["role"],
        "engine": entry["engine"],
        "stable": True,
        "failures": [],
        "observables": {},
        "vs_reference": {},
        "production_windows": {},
        "drift_meV_per_atom_ps": None,
        "rms_fluctuation_meV_per_atom": None,
        "rdf_error_percent": None,
        "density_error_percent": None,
        "cost_ms_per_step": None,
        "startup_s": None,
        "replicas": {},
        "_cost": [],
        "_startup": [],
    }


def _errors(vs: dict) -> dict:
    """The RDF error (total) and density differences of a summary entry's comparison with a reference."""
    return {
        **(
            {"rdf_error_percent": vs["rdf_error_percent"]["total"]}
            if "total" in vs.get("rdf_error_percent", {})
            else {}
        ),
        **{k: vs[k] for k in ("density_difference_g_cm3", "density_relative_error_percent") if k in vs},
    }


def summarise(entries: list[dict]) -> list[dict]:
    """Per-(potential, engine) rows from the matrix's summary entries (module docstring).

    Each row: label, role, engine, stable, failures; ``observables`` {protocol: {name: estimate}}
    (:data:`OBSERVABLES`); ``vs_reference`` {protocol: {name: estimate}}: the RDF error (NVT, NPT)
    and the density difference (NPT) against the same engine's reference (mdval.md.results.
    compare_to_reference); the table's columns drift, RMS fluctuation, RDF error (NVT) and
    density error (%) as estimates; ``cost_ms_per_step`` (:func:`cost_estimate`) and
    ``startup_s`` (the same, s); ``production_windows`` {protocol: window}; ``replicas``
    {protocol: check} where a run had more than one replica; for the reference of a later engine,
    ``vs_first_engine_reference`` {protocol: errors}: its runs against the first engine's
    reference, the noise floor of the comparisons when both run one potential.
    """
    rows: dict = {}
    for entry in entries:
        row = rows.setdefault((entry["label"], entry["engine"]), _new_row(entry))
        protocol, summary = entry["protocol"], entry.get("summary") or {}
        if entry["status"] != "completed":
            row["stable"] = False
            ttf = entry.get("time_to_failure_ps")
            row["failures"].append(f"{protocol}{f'@{ttf:.3g} ps' if ttf is not None else ''}: {entry['reason']}")
        row["observables"][protocol] = {
            name: summary_value
            for name, path, _ in OBSERVABLES.get(protocol, ())
            if _is_estimate(summary_value := _at(summary, path))
        }
        if "production_window" in summary:
            row["production_windows"][protocol] = summary["production_window"]
        row["vs_reference"][protocol] = _errors(entry.get("vs_reference") or {})
        if entry["role"] == "reference" and entry.get("vs_first_engine_reference"):
            row.setdefault("vs_first_engine_reference", {})[protocol] = _errors(entry["vs_first_engine_reference"])
        if protocol == "nve":
            row["drift_meV_per_atom_ps"] = row["observables"]["nve"].get("drift_meV_per_atom_ps")
            row["rms_fluctuation_meV_per_atom"] = row["observables"]["nve"].get("rms_fluctuation_meV_per_atom")
        if protocol == "nvt":
            row["rdf_error_percent"] = row["vs_reference"]["nvt"].get("rdf_error_percent")
        if protocol == "npt":
            row["density_error_percent"] = row["vs_reference"]["npt"].get("density_relative_error_percent")
        timing = entry.get("timing") or {}
        row["_cost"].append(timing.get("ms_per_step_steady"))
        row["_startup"].append(timing.get("startup_s"))
        check = entry.get("replicas") or {}
        if check.get("n_replicas", 1) > 1:
            row["replicas"][protocol] = check
    out = []
    for row in rows.values():
        cost, startup = cost_estimate(row.pop("_cost")), cost_estimate(row.pop("_startup"), "s")
        row["cost_ms_per_step"] = cost.as_json() if cost else None
        row["startup_s"] = startup.as_json() if startup else None
        out.append(row)
    return out


# ------------------------------------------------------------------------------- verdicts
#: where each ranked metric (mdval.report.verdicts.METRICS) is in a row
METRIC_PATHS: dict[str, tuple[str, ...]] = {
    "drift_meV_per_atom_ps": ("observables", "nve", "drift_meV_per_atom_ps"),
    "rms_fluctuation_meV_per_atom": ("observables", "nve", "rms_fluctuation_meV_per_atom"),
    "rdf_error_percent": ("vs_reference", "nvt", "rdf_error_percent"),
    "density_g_cm3": ("observables", "npt", "density_g_cm3"),
    "cost_ms_per_step": ("cost_ms_per_step",),
}


def metric_estimates(rows: list[dict], metric: vd.Metric) -> tuple[dict, Estimate | None]:
    """({label: estimate} of the stable models' rows of one engine at ``metric``, the target of a
    "zero" metric): the reference's density for the density (its noise then counts once in
    :func:`mdval.report.verdicts.score_difference`), exactly 0 for the drift."""
    path = METRIC_PATHS[metric.key]
    found = {r["label"]: estimate(_at(r, path)) for r in rows if r["role"] == "model" and r["stable"]}
    reference = next((r for r in rows if r["role"] == "reference"), None)
    target = estimate(_at(reference, path)) if metric.key == "density_g_cm3" and reference else None
    if metric.key == "density_g_cm3" and target is None:
        return {}, None  # no distance to a reference without the reference
    return {k: e for k, e in found.items() if e is not None}, target


def _comparison_json(
    kind: str, engine: str, metric: str, a: str, b: str, comparison, protocol: str | None = None
) -> dict:
    head = {
        "kind": kind,
        "engine": engine,
        **({"protocol": protocol} if protocol else {}),
        "metric": metric,
        "a": a,
        "b": b,
    }
    return {**head, **comparison.as_json()}


def versus_reference(rows: list[dict], engine: str) -> dict:
    """{(protocol, observable): {label: Comparison}}: each stable model's observable − the
    reference's, same engine, Bonferroni over the models compared."""
    reference = next((r for r in rows if r["engine"] == engine and r["role"] == "reference"), None)
    if reference is None:
        return {}
    models = [r for r in rows if r["engine"] == engine and r["role"] == "model"]
    out = {}
    for protocol, names in OBSERVABLES.items():
        for name, _, _ in names:
            ref = estimate(_at(reference, ("observables", protocol, name)))
            found = {r["label"]: estimate(_at(r, ("observables", protocol, name))) for r in models}
            found = {k: e for k, e in found.items() if e is not None}
            if ref is not None and found:
                out[protocol, name] = vd.versus(found, ref)
    return out


def versus_baseline(rows: list[dict], engine: str, baseline: str) -> dict:
    """{metric key: {label: Comparison}}: each stable model − the baseline at every ranked metric
    (signed), Bonferroni over the m − 1 other models; {} when the baseline has no stable row in
    this engine."""
    mine = [r for r in rows if r["engine"] == engine]
    out = {}
    for metric in vd.METRICS:
        found, _ = metric_estimates(mine, metric)
        base = found.pop(baseline, None)
        if base is not None and found:
            out[metric.key] = vd.versus(found, base, n_comparisons=len(found))
    return out


def judge(rows: list[dict], engines: list[str], baseline: str | None) -> dict:
    """Every verdict of the report: ``rankings`` {engine: [Ranking per metric]}, ``vs_reference``
    and ``vs_baseline`` as above, per engine, ``unstable`` {engine: [row]}, and ``comparisons``:
    all of them as JSON entries (kind, engine, metric, a, b, then
    :meth:`mdval.md.comparisons.Comparison.as_json`: difference, z, z_critical, resolved, ...)."""
    out: dict = {
        "baseline": baseline,
        "confidence": vd.CONFIDENCE,
        "rankings": {},
        "vs_reference": {},
        "vs_baseline": {},
        "unstable": {},
        "comparisons": [],
    }
    for engine in engines:
        mine = [r for r in rows if r["engine"] == engine]
        out["unstable"][engine] = [r for r in mine if r["role"] == "model" and not r["stable"]]
        rankings = []
        run = {protocol for r in mine for protocol in r["observables"]}
        for metric in vd.METRICS:
            path = METRIC_PATHS[metric.key]
            if len(path) > 1 and path[1] not in run:  # a metric of a protocol this workflow did not run
                continue
            found, target = metric_estimates(mine, metric)
            rankings.append(vd.rank(metric, found, target))
            for label, c in rankings[-1].versus_best.items():
                out["comparisons"].append(_comparison_json("vs_best", engine, metric.key, label, rankings[-1].best, c))
        out["rankings"][engine] = rankings
        out["vs_reference"][engine] = versus_reference(rows, engine)
        for (protocol, name), found in out["vs_reference"][engine].items():
            out["comparisons"] += [
                _comparison_json("vs_reference", engine, name, label, "reference", c, protocol)
                for label, c in found.items()
            ]
        out["vs_baseline"][engine] = versus_baseline(rows, engine, baseline) if baseline else {}
        for key, found in out["vs_baseline"][engine].items():
            out["comparisons"] += [
                _comparison_json("vs_baseline", engine, key, label, baseline, c) for label, c in found.items()
            ]
    return out


def at_a_glance(verdicts: dict) -> dict[str, list[str]]:
    """{engine: sentences}: each metric's ranking (:meth:`mdval.report.verdicts.Ranking.text`), the
    differences to the baseline that are resolved, and the unstable models (reported, not ranked)."""
    out = {}
    for engine, rankings in verdicts["rankings"].items():
        lines = [r.text() for r in rankings]
        baseline = verdicts["baseline"]
        against = verdicts["vs_baseline"].get(engine) or {}
        if baseline and against:
            names = {m.key: m.name for m in vd.METRICS}
            resolved: dict[str, list[str]] = {}
            for key, found in against.items():
                for label, c in found.items():
                    if c.resolved:
                        resolved.setdefault(label, []).append(f"{names[key]} {vd.signed(c.difference)}")
            lines.append(
                f"against the baseline {baseline}: "
                + (
                    "resolved: "
                    + "; ".join(f"{label} ({', '.join(d)})" for label, d in resolved.items())
                    + "; every other difference indistinguishable"
                    if resolved
                    else "no difference resolved"
                )
            )
        unstable = verdicts["unstable"].get(engine) or []
        lines.append(
            "unstable (reported, not ranked): "
            + "; ".join(f"{r['label']} ({', '.join(r['failures'])})" for r in unstable)
            if unstable
            else "every model stable in every run"
        )
        out[engine] = lines
    return out
