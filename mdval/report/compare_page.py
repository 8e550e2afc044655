"""The words and tables of the compare report's page (blocks of mdval/report/html.py): the set-up
in words, "At a glance", every observable against the reference, every metric against the
baseline, the replicas' check of the error model, the ASE/LAMMPS parity and the provenance.

The numbers and verdicts come from mdval/report/rows.py; estimates are printed with PDG rounding
(:meth:`mdval.md.uncertainty.Estimate.text`), units in the column headers.
"""

from __future__ import annotations

import math

from mdval.md.protocols import ProtocolSettings
from mdval.md.uncertainty import MIN_N_EFF
from mdval.report import verdicts as vd
from mdval.report.html import fmt
from mdval.report.rows import OBSERVABLES, estimate

THERMOSTATS = {
    "langevin": "Langevin thermostat",
    "bussi": "Bussi stochastic velocity-rescaling thermostat",
    "nose-hoover-chain": "Nosé–Hoover chain thermostat",
}
PROTOCOL_TITLES = {"nve": "NVE (energy conservation)", "nvt": "NVT (structure)", "npt": "NPT (density)"}


def value_cell(value) -> str:
    """An estimate of the JSON contract as ``"8.806 ± 0.004"`` (unit in the header), "–" for none."""
    e = estimate(value)
    if e is None:
        return "–"
    return type(e)(e.value, e.stderr, e.n_eff, "").text(with_n_eff=False)


# ---------------------------------------------------------------------------- set-up in words
def _ps(steps: int, settings: ProtocolSettings) -> str:
    return f"{steps * settings.timestep_fs / 1000.0:g} ps ({steps} steps of {settings.timestep_fs:g} fs)"


def protocol_sentence(s: ProtocolSettings) -> str:
    """What one protocol runs, in words: equilibration, production, thermostat/barostat and damping."""
    thermostat = f"{THERMOSTATS[s.thermostat]}, damping {s.thermostat_damping_fs:g} fs"
    head = (
        f"{s.kind.upper()}: {_ps(s.equilibration_steps, s)} of NVT equilibration at {s.temperature_K:g} K "
        f"({thermostat}), then {_ps(s.steps, s)} of "
    )
    if s.kind == "nve":
        body = "velocity-Verlet NVE"
    elif s.kind == "nvt":
        body = (
            f"NVT at {s.temperature_K:g} K with the same thermostat; g(r) up to {s.rdf_r_max_A:g} Å in "
            f"{s.rdf_bins} bins from a frame every {s.trajectory_interval} steps"
        )
    else:
        body = (
            f"NPT at {s.temperature_K:g} K and {s.pressure_bar:g} bar: {THERMOSTATS['nose-hoover-chain']} "
            f"(damping {s.thermostat_damping_fs:g} fs) with the isotropic MTK barostat (damping "
            f"{s.barostat_damping_fs:g} fs)"
        )
    skip = (
        f"the estimators skip the first {s.warmup_ps:g} ps of production"
        if s.warmup_ps > 0
        else "the estimators use all of production"
    )
    window = ", then the production window starts where the data say" if s.kind != "nve" else ""
    return f"{head}{body}. Thermo every {s.sample_interval} steps; {skip}{window}; seed {s.seed}."


def setup_sentences(wf, n_atoms: int) -> list[str]:
    """The system, engines, references, replicas and every protocol of a workflow, in words."""
    system = wf.system
    cells = "×".join(str(n) for n in system.get("supercell", (3, 3, 3)))
    replicas = getattr(wf, "replicas", 1)
    engines = "; ".join(f"{engine}: reference {wf.reference[engine]}" for engine in wf.engines)
    return [
        f"System: {n_atoms} atoms of {system.get('lattice', 'fcc')} {system.get('element', 'Cu')} "
        f"({cells} cubic cells, a = {system.get('a_A', 3.61):g} Å at the start), periodic. Engines: {engines} "
        f"(MPI ranks per LAMMPS run: {wf.np}). "
        + (
            f"Every run has {replicas} replicas (seeds), combined."
            if replicas > 1
            else "One run (seed) per potential, engine and protocol."
        )
    ] + [protocol_sentence(s) for s in wf.protocols]


def lattice_sentence(wf, lattice: dict) -> str:
    """What the 0 K column is, with the references' fits, or why it is empty."""
    if not lattice:
        return "ρ0 − ρ0_ref at 0 K: not computed (the command computes it for a cubic crystal; mdval.md.lattice)."
    parts = []
    for spec in dict.fromkeys(wf.reference[e] for e in wf.engines):
        fit = lattice.get(spec, {})
        parts.append(
            f"{spec}: {fit['error']}"
            if "error" in fit
            else f"{spec}: a0 = {fit['a0_A']['value']:.4f} Å, ρ0 = {fit['density_g_cm3']['value']:.4f} g/cm³, "
            f"B = {fit['bulk_modulus_GPa']['value']:.1f} GPa"
        )
    failed = [spec for spec, fit in lattice.items() if "error" in fit and spec not in wf.reference.values()]
    return (
        "ρ0 − ρ0_ref at 0 K: the same density comparison for the perfect crystal at 0 K, from a Birch–Murnaghan "
        "fit of E(V) (mdval.md.lattice; deterministic, the fit's error is below 0.001 %). Reference "
        + "; ".join(parts)
        + "."
        + (f" No fit for {', '.join(failed)}." if failed else "")
    )


def noise_floor_sentence(wf, rows: list[dict]) -> str | None:
    """The reference of each later engine against the first engine's, where both run one potential:
    two independent runs of the same potential, so what their RDF error and density difference
    show is noise (and any engine difference)."""
    first = wf.engines[0]
    parts = []
    for r in rows:
        found = r.get("vs_first_engine_reference") or {}
        if r["role"] != "reference" or not found or wf.reference[r["engine"]] != wf.reference[first]:
            continue
        rdf = (found.get("nvt") or {}).get("rdf_error_percent")
        rho = (found.get("npt") or {}).get("density_relative_error_percent")
        values = [f"RDF error {value_cell(rdf)} %" if rdf else "", f"Δρ/ρ {value_cell(rho)} %" if rho else ""]
        parts.append(
            f"the reference in {r['engine']} against the same potential in {first}: "
            + ", ".join(v for v in values if v)
        )
    if not parts:
        return None
    return (
        "Noise floor: " + "; ".join(parts) + ". Two runs of one potential (with each engine's own thermostat "
        "and integrator) differ by this much: a model's error of that size is within what the reference shows "
        "against itself."
    )


# ---------------------------------------------------------------------------- verdict tables
def glance_blocks(glance: dict[str, list[str]], engines: list[str]) -> list[tuple]:
    blocks = [
        ("h", "At a glance"),
        (
            "p",
            f"Verdicts at {100 * vd.CONFIDENCE:g} % confidence, Bonferroni-corrected for the number of "
            "comparisons of each metric: a model is named best only when its difference to every other "
            "model is resolved. Unstable models are reported, never ranked.",
        ),
    ]
    for engine in engines:
        blocks += [("p", f"{engine}:"), ("list", glance.get(engine, []))]
    return blocks


def reference_tables(rows: list[dict], verdicts: dict, engines: list[str], protocols: list[str]) -> list[tuple]:
    """Per protocol: every observable of every potential (value ± stderr) and each model's
    difference to the same engine's reference (Δ ± stderr, * where resolved)."""
    blocks = [
        ("h", "Every observable, and each model against the reference"),
        (
            "p",
            "Value ± standard error of each observable over its production window; Δ = model − reference "
            "of the same engine ± the error of the difference. RDF error = 100·∫|g − g_ref|dr/∫|g_ref − 1|dr "
            "(it is a distance, ≥ 0 and biased up by noise; no resolved mark).",
        ),
    ]
    for protocol in protocols:
        names = OBSERVABLES[protocol]
        extra = [("rdf_error_percent", "RDF error (%)")] if protocol in ("nvt", "npt") else []
        extra += [("density_relative_error_percent", "Δρ/ρ_ref (%)")] if protocol == "npt" else []
        header = ["model", "engine"] + [h for _, _, title in names for h in (title, "Δ")] + [t for _, t in extra]
        table, n_models = [], 1
        for engine in engines:
            found = verdicts["vs_reference"].get(engine, {})
            for r in (r for r in rows if r["engine"] == engine):
                cells = [r["label"], engine]
                for name, _, _ in names:
                    comparison = found.get((protocol, name), {}).get(r["label"])
                    n_models = max(n_models, comparison.n_comparisons if comparison else 1)
                    cells += [
                        value_cell(r["observables"].get(protocol, {}).get(name)),
                        vd.cell(comparison) if comparison else "–",
                    ]
                cells += [value_cell(r["vs_reference"].get(protocol, {}).get(key)) for key, _ in extra]
                table.append(cells)
        blocks += [("p", PROTOCOL_TITLES[protocol]), ("table", header, table), ("p", vd.star_note(n_models))]
    return blocks


def baseline_blocks(verdicts: dict, engines: list[str]) -> list[tuple]:
    """Each model − the baseline at every ranked metric, per engine."""
    baseline = verdicts["baseline"]
    if not baseline:
        return []
    blocks = [
        ("h", f"Against the baseline model {baseline}"),
        (
            "p",
            f"Δ = model − {baseline}, same engine, ± the error of the difference (signed; cost in ms/step "
            "at steady state).",
        ),
    ]
    for engine in engines:
        found = verdicts["vs_baseline"].get(engine) or {}
        if not found:
            blocks.append(("p", f"{engine}: {baseline} has no stable run with a value here; nothing to compare."))
            continue
        metrics = [m for m in vd.METRICS if m.key in found]
        units = {m.key: next(iter(found[m.key].values())).difference.unit for m in metrics}
        header = ["model"] + [f"Δ {m.name} ({units[m.key]})" for m in metrics]
        labels = list(dict.fromkeys(label for m in metrics for label in found[m.key]))
        table = [
            [label] + [vd.cell(found[m.key][label]) if label in found[m.key] else "–" for m in metrics]
            for label in labels
        ]
        n = max(c.n_comparisons for m in metrics for c in found[m.key].values())
        blocks += [("p", f"{engine}:"), ("table", header, table), ("p", vd.star_note(n))]
    return blocks


def _replica_lines(check: dict, path: tuple = ()) -> list[tuple[str, dict]]:
    """(observable path, check) of every estimate in a replicas check's ``observables``."""
    out = []
    for key, value in check.items():
        if isinstance(value, dict) and "between_sd" in value:
            out.append((".".join(path + (key,)), value))
        elif isinstance(value, dict):
            out += _replica_lines(value, path + (key,))
    return out


def _number(x) -> str:
    """Two significant figures, without an exponent between 1e-3 and 1e5."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{float(f'{x:.2g}'):g}"


def replica_blocks(rows: list[dict]) -> list[tuple]:
    """Within-run standard error against between-replica spread, for runs with replicas."""
    table = []
    for r in rows:
        for protocol, check in r["replicas"].items():
            for name, c in _replica_lines(check.get("observables") or {}):
                if name.startswith("first_peak.") and not name.startswith("first_peak.total."):
                    continue  # partial g(r)s: the total's check stands for them in the table
                verdict = {True: "consistent", False: "scatter too large", None: "–"}[c.get("consistent")]
                table.append(
                    [
                        r["label"],
                        r["engine"],
                        protocol,
                        name,
                        str(c.get("n_replicas")),
                        _number(c.get("within_stderr")),
                        _number(c.get("between_sd")),
                        _number(c.get("chi2_per_dof")),
                        _number(c.get("p_value")),
                        verdict,
                    ]
                )
    if not table:
        return []
    return [
        ("h", "Replicas: within-run stderr against between-replica spread"),
        (
            "p",
            "For each observable: the root mean square of the replicas' own standard errors (within-run) "
            "and the replicas' sample standard deviation (between). The error model is right when they "
            "agree: χ²/dof ≈ 1, p ≥ 0.05.",
        ),
        (
            "table",
            (
                "model",
                "engine",
                "protocol",
                "observable",
                "replicas",
                "within-run stderr",
                "between SD",
                "χ²/dof",
                "p",
                "verdict",
            ),
            table,
        ),
    ]


def _warnings(tree: dict, path: tuple = ()) -> list[tuple[str, str]]:
    """(name, warning) of every estimate in ``tree`` that carries the "run longer" flag."""
    out = []
    for key, value in tree.items():
        if isinstance(value, dict) and "warning" in value and "value" in value:
            out.append((".".join(path + (key,)), value["warning"]))
        elif isinstance(value, dict):
            out += _warnings(value, path + (key,))
    return out


def adequacy_blocks(rows: list[dict]) -> list[tuple]:
    """The estimates that rest on too few independent samples (mdval.md.uncertainty.adequacy)."""
    items = []
    for r in rows:
        for protocol in dict.fromkeys([*r["observables"], *r["vs_reference"]]):
            found = _warnings(r["observables"].get(protocol, {})) + _warnings(r["vs_reference"].get(protocol, {}))
            if found:
                items.append(
                    f"{r['label']}, {r['engine']}, {protocol.upper()}: "
                    + "; ".join(f"{name} ({warning})" for name, warning in found)
                )
    if not items:
        return []
    return [
        ("h", "Estimates on too few samples"),
        (
            "p",
            f"These rest on fewer than {MIN_N_EFF:g} independent samples (or have no error estimate): their "
            "standard errors are themselves uncertain by more than 25 % and the verdicts that use them are "
            "weak. Run longer.",
        ),
        ("list", items),
    ]


# ---------------------------------------------------------------------------- parity, provenance
def parity_rows(parity: list[dict], reference_parity: dict | None) -> list[list[str]]:
    found = parity + ([reference_parity] if reference_parity else [])
    return [
        [
            p["label"],
            fmt(p["energy_abs_diff_eV"]),
            fmt(p["force_max_abs_diff_eV_per_A"]),
            fmt(p["stress_max_abs_diff_eV_per_A3"]),
            p["error"] or "ok",
        ]
        for p in found
    ]


PARITY_HEADER = ("potential", "|ΔE| (eV)", "max |ΔF| (eV/Å)", "max |Δσ| (eV/Å³)", "status")


def provenance_blocks(provenance: dict, workflow_toml: str) -> list[tuple]:
    """Versions and models as tables, the workflow spec as TOML (as written), how it was run."""
    versions = [[name, str(version or "–")] for name, version in provenance["versions"].items()]
    models = [[m["label"], m["path"], m["sha256"]] for m in provenance["models"]]
    return [
        ("h", "Provenance"),
        (
            "p",
            f"Written {provenance['created']} by mdval; matrix wall time {provenance['wall_time_s']:.0f} s with "
            f"{provenance['jobs']} runs at a time. report.json holds the same numbers and every setting.",
        ),
        ("table", ("package", "version"), versions),
        ("table", ("model", "file", "sha256"), models),
        ("p", f"Workflow spec ({provenance['workflow_source'] or 'no file'}):"),
        ("pre", workflow_toml or "(no TOML file)"),
    ]
