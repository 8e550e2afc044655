"""The JSON contract of the compare report, ``report.json`` (mdval/report/compare.py writes it),
and :func:`validate_report`, which checks a report against it (the writer checks what it wrote).

Below, E is an estimate ``{"value": x, "stderr": s, "n_eff": n, "unit": "..."}`` (null: unknown;
plus ``"warning"`` when N_eff is small), C a comparison: ``{"difference": E, "z", "z_critical",
"confidence", "n_comparisons", "resolved": bool, "run_length_factor_to_resolve"}``::

    {
      "schema": "mdval.report.compare/2", "created": str, "mdval_version": str,
      "workflow": {"name", "source", "engines": [str], "protocols": [str], "system": {...},
                   "reference": {engine: spec}, "baseline": str, "replicas": int},
      "models": [ {"label", "path", "sha256", "activation", "activations", "optimizer",
                   "n_parameters", "test_energy_rmse_meV_per_atom", "test_force_rmse_eV_per_A"} ],
      "table": {"header": [str], "rows": [[str]]},          # the page's table (the terminal shows
      "terminal_table": {"header": [str], "rows": [[str]]}, # the essentials of it)
      "results": [ {"label", "role": "model" | "reference", "engine", "stable": bool, "failures": [str],
                    "observables": {protocol: {name: E}},   # nve: drift, RMS fluctuation, T, P; nvt:
                                                            # first peak position and height, T, P; npt: ρ, T, P
                    "vs_reference": {protocol: {"rdf_error_percent": E, "density_difference_g_cm3": E,
                                                "density_relative_error_percent": E}},
                    "drift_meV_per_atom_ps": E, "rms_fluctuation_meV_per_atom": E,
                    "rdf_error_percent": E, "density_error_percent": E,   # the table's columns
                    "cost_ms_per_step": E,        # steady state, median over the runs
                    "startup_s": estimate | null, "production_windows": {protocol: {...}},
                    "rho0_error_percent": E | null,   # 0 K, from the "lattice" fits
                    "replicas": {protocol: check of mdval.md.replicas},
                    "vs_first_engine_reference": {protocol: {...}}} ],   # a later engine's reference only
      "verdicts": {"confidence": 0.95, "baseline": str, "at_a_glance": {engine: [str]},
                   "rankings": {engine: [{"metric", "best", "resolved", "indistinguishable_from_best",
                                          "estimates": {label: E}, "versus_best": {label: C},
                                          "unranked": {label: why}, "text"}]}},
      "comparisons": [ {"kind": "vs_reference" | "vs_baseline" | "vs_best", "engine", "protocol"?,
                        "metric", "a", "b", ...C} ],        # a − b
      "lattice": {spec: mdval.md.lattice fit as JSON (a0_A, density_g_cm3, bulk_modulus_GPa, ...)
                  or {"error": str}},                       # {} when not computed
      "parity": [ {"label", "role": "model" | "reference", "energy_abs_diff_eV",
                   "force_max_abs_diff_eV_per_A", "stress_max_abs_diff_eV_per_A3", "error"} ],
      "runs": [ summary entries as in mdval.md.matrix.run_entry (plus wall_s and steps) ],
      "files": {"html", "markdown", "json", "figures": [str]},
      "provenance": {"versions": {...}, "workflow_source", "workflow_toml", "settings": {protocol: {...}},
                     "models": [...], "wall_time_s", "jobs", "created"}
    }
"""

from __future__ import annotations

SCHEMA_ID = "mdval.report.compare/2"


def _estimate_problem(value, where: str) -> str | None:
    """Why ``value`` is not an estimate of the JSON contract (None where it is, or is null)."""
    if value is None:
        return None
    if not isinstance(value, dict) or not {"value", "stderr", "n_eff", "unit"} <= value.keys():
        return f"{where} must be an estimate {{value, stderr, n_eff, unit}} or null"
    numbers = all(
        value[k] is None or (isinstance(value[k], (int, float)) and not isinstance(value[k], bool))
        for k in ("value", "stderr", "n_eff")
    )
    return None if numbers and isinstance(value["unit"], str) else f"{where} has a non-numeric value, stderr or n_eff"


def _comparison_problems(c: dict, where: str) -> list[str]:
    p = [f"{where} misses {key}" for key in ("difference", "z", "z_critical", "resolved") if key not in c]
    if not p:
        p += [x for x in [_estimate_problem(c["difference"], f"{where}.difference")] if x]
        if not isinstance(c["resolved"], bool):
            p.append(f"{where}.resolved must be a boolean")
        if not isinstance(c["z_critical"], (int, float)):
            p.append(f"{where}.z_critical must be a number")
    return p


def _result_problems(r: dict, k: int) -> list[str]:
    p = [
        f"results[{k}] misses {key}"
        for key in (
            "label",
            "role",
            "engine",
            "stable",
            "failures",
            "observables",
            "vs_reference",
            "drift_meV_per_atom_ps",
            "rms_fluctuation_meV_per_atom",
            "rdf_error_percent",
            "density_error_percent",
            "cost_ms_per_step",
            "startup_s",
        )
        if key not in r
    ]
    if p:
        return p
    if r["role"] not in ("model", "reference"):
        p.append(f"results[{k}].role must be model or reference")
    if not isinstance(r["stable"], bool):
        p.append(f"results[{k}].stable must be a boolean")
    found = [
        (f"results[{k}].{key}", r.get(key))
        for key in (
            "drift_meV_per_atom_ps",
            "rms_fluctuation_meV_per_atom",
            "rdf_error_percent",
            "density_error_percent",
            "rho0_error_percent",
            "cost_ms_per_step",
            "startup_s",
        )
    ]
    for group in ("observables", "vs_reference"):
        found += [
            (f"results[{k}].{group}.{protocol}.{name}", v)
            for protocol, values in r[group].items()
            for name, v in values.items()
        ]
    return p + [x for x in (_estimate_problem(v, where) for where, v in found) if x]


def _verdict_problems(verdicts: dict, comparisons: list) -> list[str]:
    """Problems of the ``verdicts`` and ``comparisons`` of a report."""
    p = []
    if not isinstance(verdicts.get("at_a_glance"), dict) or not isinstance(verdicts.get("rankings"), dict):
        p.append("verdicts needs at_a_glance and rankings, by engine")
    else:
        for engine, rankings in verdicts["rankings"].items():
            for j, ranking in enumerate(rankings):
                where = f"verdicts.rankings.{engine}[{j}]"
                p += [f"{where} misses {key}" for key in ("metric", "best", "resolved", "text") if key not in ranking]
                for label, c in (ranking.get("versus_best") or {}).items():
                    p += _comparison_problems(c, f"{where}.versus_best.{label}")
    for k, c in enumerate(comparisons):
        if c.get("kind") not in ("vs_reference", "vs_baseline", "vs_best"):
            p.append(f"comparisons[{k}].kind must be vs_reference, vs_baseline or vs_best")
        p += [f"comparisons[{k}] misses {key}" for key in ("engine", "metric", "a", "b") if key not in c]
        p += _comparison_problems(c, f"comparisons[{k}]")
    return p


def validate_report(report: dict) -> list[str]:
    """Problems of a compare ``report.json`` against the schema of the module docstring ([] when none)."""
    p = []
    if report.get("schema") != SCHEMA_ID:
        p.append(f"schema must be {SCHEMA_ID!r}")
    for key, kind in (
        ("created", str),
        ("mdval_version", str),
        ("workflow", dict),
        ("models", list),
        ("table", dict),
        ("terminal_table", dict),
        ("results", list),
        ("verdicts", dict),
        ("comparisons", list),
        ("parity", list),
        ("runs", list),
        ("files", dict),
        ("provenance", dict),
    ):
        if not isinstance(report.get(key), kind):
            p.append(f"{key} must be a {kind.__name__}")
    if p:
        return p
    for k, m in enumerate(report["models"]):
        p += [
            f"models[{k}] misses {key}"
            for key in (
                "label",
                "path",
                "sha256",
                "activation",
                "optimizer",
                "n_parameters",
                "test_energy_rmse_meV_per_atom",
                "test_force_rmse_eV_per_A",
            )
            if key not in m
        ]
    for name in ("table", "terminal_table"):
        header, rows = report[name].get("header"), report[name].get("rows")
        if not isinstance(header, list) or not isinstance(rows, list) or any(len(r) != len(header) for r in rows):
            p.append(f"{name} needs header and rows of the same width")
    for k, r in enumerate(report["results"]):
        p += _result_problems(r, k)
    p += _verdict_problems(report["verdicts"], report["comparisons"])
    for k, r in enumerate(report["parity"]):
        p += [
            f"parity[{k}] misses {key}"
            for key in (
                "label",
                "energy_abs_diff_eV",
                "force_max_abs_diff_eV_per_A",
                "stress_max_abs_diff_eV_per_A3",
                "error",
            )
            if key not in r
        ]
    p += [f"files misses {key}" for key in ("html", "markdown", "json", "figures") if key not in report["files"]]
    p += [
        f"provenance misses {key}"
        for key in ("versions", "workflow_toml", "settings", "wall_time_s")
        if key not in report["provenance"]
    ]
    return p
