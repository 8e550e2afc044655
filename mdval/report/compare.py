"""``mdval compare WORKFLOW``: models × protocols × engines against the reference, one report.

The matrix comes from a workflow spec (mdval/md/workflow.py; e.g. workflows/cu_demo.toml) and
runs in :func:`mdval.md.matrix.run_matrix` (worker processes, the cache of finished runs, the
ASE/LAMMPS parity check), called by the command (mdval/report/commands.py); this module only
reads its results and renders them (:func:`write_report`).

Every observable is an estimate, value ± standard error (mdval/md/uncertainty.py); the rows and
the verdicts on them (each model against the reference of the same engine and against the
baseline model, the best model where the data resolve one) are in mdval/report/rows.py and
mdval/report/verdicts.py, the page's words and tables in mdval/report/compare_page.py, its MD
figures in mdval/report/md_figures.py. The report is ``<out>/index.html`` (self-contained),
``index.md``, ``report.json`` and the figures in ``<out>/figures/``.

The JSON of ``report.json`` and its check are in mdval/report/compare_schema.py.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from mdval.md import results as res
from mdval.md.observables import relative_difference_percent
from mdval.md.uncertainty import Estimate
from mdval.report import compare_page as page
from mdval.report import md_figures, plots, training_figures
from mdval.report import rows as rw
from mdval.report.compare_schema import SCHEMA_ID, validate_report
from mdval.report.html import fmt, text_table, write_documents

TABLE_HEADER = (
    "model",
    "engine",
    "activation",
    "optimizer",
    "params",
    "E RMSE (meV/atom)",
    "F RMSE (eV/Å)",
    "drift (meV/atom/ps)",
    "RMS fluct. (meV/atom)",
    "RDF error (%)",
    "ρ − ρ_ref (%)",
    "ρ0 − ρ0_ref at 0 K (%)",
    "stability",
    "ms/step (steady)",
    "start-up (s)",
)
#: the columns of TABLE_HEADER that the terminal shows, with their short headers there
TERMINAL_COLUMNS = {
    "model": "model",
    "engine": "engine",
    "E RMSE (meV/atom)": "E RMSE (meV/at)",
    "drift (meV/atom/ps)": "drift (meV/at/ps)",
    "RDF error (%)": "RDF err (%)",
    "ρ − ρ_ref (%)": "Δρ NPT (%)",
    "ρ0 − ρ0_ref at 0 K (%)": "Δρ 0 K (%)",
    "stability": "stable",
    "ms/step (steady)": "ms/step",
    "start-up (s)": "start (s)",
}


# ---------------------------------------------------------------------------- analysis
def model_info(potential: res.Potential) -> dict:
    """Activation, optimizer, parameter count and test RMSE of a model (its model card next to the
    file, ``NAME.json``, wins for the metrics)."""
    from mdval.nn import activations_from_metadata

    meta = potential.metadata
    metrics = dict(meta.get("metrics") or {})
    card = Path(potential.spec).with_suffix(".json")
    if card.exists():
        try:
            metrics = json.loads(card.read_text()).get("metrics") or metrics
        except json.JSONDecodeError:
            pass
    return {
        "label": potential.label,
        "path": str(potential.path),
        "sha256": potential.sha256,
        "activation": meta.get("activation"),
        "activations": activations_from_metadata(meta)["networks"],
        "optimizer": meta.get("optimizer"),
        "n_parameters": meta.get("n_parameters"),
        "test_energy_rmse_meV_per_atom": metrics.get("energy_rmse_meV_per_atom"),
        "test_force_rmse_eV_per_A": metrics.get("force_rmse_eV_per_A"),
    }


def short_activation(networks: dict) -> str:
    """The table's label of a model's activations ({network: structured spec}, as in the
    metadata's ``activations``): the spec's label when every sub-network has the same, else "mixed"."""
    from mdval.nn import spec_label

    labels = {spec_label(spec) for spec in networks.values()}
    return labels.pop() if len(labels) == 1 else "mixed"


def table(models: list[dict], rows: list[dict], references: dict | None = None) -> list[list[str]]:
    """The page's table (:data:`TABLE_HEADER`): one row per potential and engine, estimates as
    value ± stderr (mdval.report.compare_page.value_cell)."""
    info = {m["label"]: m for m in models}
    references = references or {}
    out = []
    for r in rows:
        m = info.get(r["label"], {})
        stability = "FAIL " + "; ".join(f.split(":")[0] for f in r["failures"]) if r["failures"] else "ok"
        activation = (
            short_activation(m["activations"])
            if "activations" in m
            else references.get(r["engine"], "")
            if r["role"] == "reference"
            else ""
        )
        out.append(
            [
                r["label"],
                r["engine"],
                activation,
                m.get("optimizer", "–"),
                fmt(m.get("n_parameters"), 6),
                fmt(m.get("test_energy_rmse_meV_per_atom")),
                fmt(m.get("test_force_rmse_eV_per_A")),
                page.value_cell(r["drift_meV_per_atom_ps"]),
                page.value_cell(r["rms_fluctuation_meV_per_atom"]),
                page.value_cell(r["rdf_error_percent"]),
                page.value_cell(r["density_error_percent"]),
                _zero_kelvin_cell(r.get("rho0_error_percent")),
                stability,
                page.value_cell(r["cost_ms_per_step"]),
                page.value_cell(r["startup_s"]),
            ]
        )
    return out


def _zero_kelvin_cell(value) -> str:
    """The deterministic 0 K density error to 0.01 % (its fit error is far below: mdval.md.lattice)."""
    return "–" if value is None or value["value"] is None else f"{value['value']:+.2f}"


def zero_kelvin_errors(rows: list[dict], wf, lattice: dict) -> None:
    """Add each model row's ``rho0_error_percent``: 100·(ρ0 − ρ0_ref)/ρ0_ref of the 0 K equilibrium
    densities (``lattice``: {spec: mdval.md.lattice fit as JSON}) against the same engine's
    reference; None where a fit is missing."""
    spec_of = {wf.potential(m).label: m for m in wf.models}
    for r in rows:
        mine = lattice.get(spec_of.get(r["label"], ""), {}) if r["role"] == "model" else {}
        theirs = lattice.get(wf.reference[r["engine"]], {})
        r["rho0_error_percent"] = None
        if "density_g_cm3" in mine and "density_g_cm3" in theirs:
            r["rho0_error_percent"] = relative_difference_percent(
                Estimate.from_json(mine["density_g_cm3"]), Estimate.from_json(theirs["density_g_cm3"])
            ).as_json()


def terminal_table(rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """The :data:`TERMINAL_COLUMNS` of the page's table."""
    keep = [TABLE_HEADER.index(name) for name in TERMINAL_COLUMNS]
    return list(TERMINAL_COLUMNS.values()), [[row[k] for k in keep] for row in rows]


def glance_text(glance: dict[str, list[str]]) -> str:
    """ "At a glance" for the terminal: one line per verdict, by engine."""
    lines = ["At a glance (95 % confidence, Bonferroni-corrected; unstable models are reported, not ranked):"]
    for engine, verdicts in glance.items():
        lines += [f"{engine}:"] + [f"  - {v}" for v in verdicts]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- report
class _Document:
    """The blocks of the report (mdval.report.html.write_documents) and the figures among them."""

    def __init__(self):
        self.blocks: list[tuple] = []

    def fig(self, path, caption: str) -> None:
        self.blocks.append(("img", str(path), caption))

    @property
    def figures(self) -> list[str]:
        return [block[1] for block in self.blocks if block[0] == "img"]


def _md_blocks(doc: _Document, wf, md: list[dict], rows: list[dict], fig_dir: Path) -> None:
    """Per protocol and engine: E_tot(t) (NVE), g(r) (NVT) and ρ(t) (NPT), each with its errors."""
    palette = md_figures.colors([wf.potential(m).label for m in wf.models])
    settings = {s.kind: s for s in wf.protocols}
    n_atoms = len(wf.build_atoms())
    for kind in (k for k in ("nve", "nvt", "npt") if k in settings):
        doc.blocks.append(("h", page.PROTOCOL_TITLES[kind]))
        s = settings[kind]
        for engine in wf.engines:
            if kind == "nve":
                doc.fig(
                    md_figures.nve_figure(md, rows, engine, n_atoms, palette, fig_dir / f"etot_{engine}.png"),
                    f"Left: total energy per atom in NVE ({engine}), {s.steps * s.timestep_fs / 1000:g} ps of "
                    f"{s.timestep_fs:g} fs steps, with each run's least-squares drift fit ± the standard error of "
                    f"its slope (shaded over the fitted span, after the {s.warmup_ps:g} ps warm-up, drawn faint). "
                    "Right: the drift of each potential ± its autocorrelation-aware standard error.",
                )
            elif kind == "nvt":
                path, no_blocks = md_figures.nvt_figure(md, rows, engine, palette, fig_dir / f"rdf_{engine}.png")
                missing = (
                    f" No per-bin error for {', '.join(no_blocks)}: their results.json has fewer than 2 "
                    "blocks of frames (rdf.blocks); run longer or write frames more often."
                    if no_blocks
                    else ""
                )
                doc.fig(
                    path,
                    f"Top left: g(r) at {s.temperature_K:g} K ({engine}), models and the reference "
                    "(dashed). Bottom left: g(r) − g_ref(r), shaded ± its per-bin standard error from the "
                    "blocks of frames of both runs. Right: the RDF error of each model ± its standard "
                    f"error.{missing}",
                )
            else:
                doc.fig(
                    md_figures.npt_figure(md, rows, engine, palette, fig_dir / f"density_{engine}.png"),
                    f"Left: density in NPT ({engine}) at {s.temperature_K:g} K and {s.pressure_bar:g} bar, "
                    f"barostat damping {s.barostat_damping_fs:g} fs. Each run is faint before its production "
                    "window, which starts where the MSER criterion (White 1997) puts it, and solid inside it; the "
                    "shaded band spans the window at its mean ± standard error. Right: those means ± stderr.",
                )


def _parity_blocks(doc: _Document, par: list[dict], reference_parity: dict | None, fig_dir: Path) -> None:
    if not par and not reference_parity:
        return
    doc.blocks.append(("h", "ASE against LAMMPS, single point"))
    ok = [p for p in par if p["error"] is None]
    if ok:
        doc.fig(
            plots.parity_engines_plot(
                [{"label": p["label"], "ase_forces": p["ase_forces"], "lammps_forces": p["lammps_forces"]} for p in ok],
                fig_dir / "parity_engines.png",
            ),
            "Left: force components of a rattled structure from LAMMPS (pair_style taafs) against ASE "
            "(mdval.Calculator); right: their absolute difference against the force (log scale).",
        )
    if reference_parity:
        doc.blocks.append(("p", f"The reference's own check (last row): {reference_parity.get('compared', '')}."))
    doc.blocks.append(("table", page.PARITY_HEADER, page.parity_rows(par, reference_parity)))


def _provenance(wf, models: list[dict], matrix: dict, jobs: int) -> dict:
    return {
        "versions": res.versions(),
        "workflow_source": wf.source,
        "workflow_toml": Path(wf.source).read_text() if wf.source else "",
        "settings": {s.kind: res.jsonable(s.as_dict()) for s in wf.protocols},
        "models": [{k: m[k] for k in ("label", "path", "sha256")} for m in models],
        "wall_time_s": matrix["wall_s"],
        "jobs": jobs,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _analyse(wf, matrix: dict, lattice: dict) -> dict:
    """The models, the rows (with their 0 K density errors), the verdicts and the page's table."""
    models = [model_info(wf.potential(m)) for m in wf.models]
    rows = rw.summarise(matrix["runs"])
    zero_kelvin_errors(rows, wf, lattice)
    baseline = getattr(wf, "baseline", "") or (models[0]["label"] if models else "")
    verdicts = rw.judge(rows, wf.engines, baseline)
    return {
        "models": models,
        "rows": rows,
        "baseline": baseline,
        "verdicts": verdicts,
        "glance": rw.at_a_glance(verdicts),
        "table": table(models, rows, wf.reference),
    }


def _summary_blocks(wf, matrix: dict, found: dict, lattice: dict) -> list[tuple]:
    """The page above the figures: setup, verdicts at a glance, the table, the comparisons."""
    rows, verdicts = found["rows"], found["verdicts"]
    n_failed = sum(not r["stable"] for r in rows)
    blocks = [
        (
            "p",
            f"Workflow {wf.source}: {len(wf.models)} models and the reference, protocols "
            f"{', '.join(s.kind.upper() for s in wf.protocols)}, engines {', '.join(wf.engines)}; "
            f"{len(matrix['md'])} MD runs, {n_failed} potential/engine pair(s) with a failed run. Every model "
            "is compared with the reference of the same engine and with the baseline model "
            f"{found['baseline']}.",
        ),
        ("list", page.setup_sentences(wf, len(wf.build_atoms()))),
    ]
    blocks += page.glance_blocks(found["glance"], wf.engines)
    blocks += [
        ("h", "Models"),
        (
            "p",
            "Each estimate is value ± standard error (PDG rounding). Drift and RMS fluctuation from NVE, "
            "RDF error from NVT (100·∫|g−g_ref|dr/∫|g_ref−1|dr), ρ − ρ_ref from NPT, both against the "
            "same engine's reference; cost = median steady-state wall time per MD step over the "
            "potential's runs, after the warm-up, one core (± the runs' spread); start-up apart.",
        ),
        ("table", TABLE_HEADER, found["table"]),
        ("p", page.lattice_sentence(wf, lattice)),
    ]
    floor = page.noise_floor_sentence(wf, rows)
    blocks += [("p", floor)] if floor else []
    blocks += page.reference_tables(rows, verdicts, wf.engines, [s.kind for s in wf.protocols])
    blocks += page.baseline_blocks(verdicts, wf.engines)
    return blocks + page.adequacy_blocks(rows) + page.replica_blocks(rows)


def _report_json(wf, matrix: dict, found: dict, lattice: dict, provenance: dict, files: dict) -> dict:
    """``report.json`` (the schema of mdval.report.compare_schema)."""
    from mdval import __version__

    terminal_header, terminal_rows = terminal_table(found["table"])
    verdicts, baseline = found["verdicts"], found["baseline"]
    parity = matrix["parity"] + ([matrix["reference_parity"]] if matrix.get("reference_parity") else [])
    return {
        "schema": SCHEMA_ID,
        "created": provenance["created"],
        "mdval_version": __version__,
        "workflow": {
            "name": wf.name,
            "source": wf.source,
            "engines": wf.engines,
            "protocols": [s.kind for s in wf.protocols],
            "system": wf.system,
            "reference": wf.reference,
            "baseline": baseline,
            "replicas": getattr(wf, "replicas", 1),
        },
        "models": found["models"],
        "table": {"header": list(TABLE_HEADER), "rows": found["table"]},
        "terminal_table": {"header": terminal_header, "rows": terminal_rows},
        "results": found["rows"],
        "verdicts": {
            "confidence": verdicts["confidence"],
            "baseline": baseline,
            "at_a_glance": found["glance"],
            "rankings": {e: [r.as_json() for r in ranked] for e, ranked in verdicts["rankings"].items()},
        },
        "comparisons": verdicts["comparisons"],
        "lattice": lattice,
        "parity": [
            {
                k: p.get(k)
                for k in (
                    "label",
                    "energy_abs_diff_eV",
                    "force_max_abs_diff_eV_per_A",
                    "stress_max_abs_diff_eV_per_A3",
                    "error",
                )
            }
            | {"role": p.get("role", "model")}
            for p in parity
        ],
        "runs": matrix["runs"],
        "files": files,
        "provenance": provenance,
    }


def write_report(wf, matrix: dict, *, out_dir=None, jobs: int = 2, lattice: dict | None = None) -> dict:
    """Write the report of the workflow ``wf`` from its finished run matrix (what
    :func:`mdval.md.matrix.run_matrix` returned; ``jobs`` is recorded as its provenance) and the
    potentials' 0 K equilibria (``lattice``, mdval.report.commands.lattice_fits; None: not
    computed); returns the report dict, plus ``table_text`` for the terminal."""
    out = Path(out_dir or f"reports/{wf.name}")
    fig_dir = out / "figures"
    lattice = lattice or {}
    found = _analyse(wf, matrix, lattice)
    provenance = _provenance(wf, found["models"], matrix, jobs)
    doc = _Document()
    doc.blocks += _summary_blocks(wf, matrix, found, lattice)
    _md_blocks(doc, wf, matrix["md"], found["rows"], fig_dir)
    doc.blocks += training_figures.training_blocks(wf.models, fig_dir)
    _parity_blocks(doc, matrix["parity"], matrix.get("reference_parity"), fig_dir)
    doc.blocks += page.provenance_blocks(provenance, provenance["workflow_toml"])
    files = write_documents(out, "index", f"mdval compare: {wf.name}", doc.blocks)
    report = _report_json(
        wf, matrix, found, lattice, provenance, {**files, "json": str(out / "report.json"), "figures": doc.figures}
    )
    res.write_json_atomic(out / "report.json", report)
    problems = validate_report(json.loads((out / "report.json").read_text()))
    if problems:
        raise RuntimeError("compare report does not match its schema: " + "; ".join(problems[:5]))
    terminal = report["terminal_table"]
    report["table_text"] = text_table(terminal["header"], terminal["rows"]) + "\n\n" + glance_text(found["glance"])
    return report
