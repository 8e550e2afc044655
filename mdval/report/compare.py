"""``mdval compare WORKFLOW``: models × protocols × engines against the reference, one report.

The matrix comes from a workflow spec (mdval/md/workflow.py; e.g. workflows/cu_demo.toml) and
runs in :func:`mdval.md.matrix.run_matrix` (worker processes, the cache of finished runs, the
ASE/LAMMPS parity check); this module only reads its results and renders them.

Comparisons use the estimators of mdval.md (``compare_to_reference``: RDF error
100·∫|g − g_ref|dr/∫|g_ref − 1|dr and density relative error against the reference run of the
same engine). The report (``<out>/index.html``, ``index.md``, ``report.json``, figures in
``<out>/figures/``) holds: the table of models (activation, optimizer, parameter count, test
RMSE) against drift, RDF error, density error, stability and cost per MD step; overlays of
E_tot(t), g(r) (with the difference to the reference) and ρ(t); the learned activation curves per
layer beside tanh and their evolution during training; training curves; the ASE/LAMMPS parity;
provenance.

JSON schema (``report.json``; :func:`validate_report` checks it)::

    {
      "schema": "mdval.report.compare/1", "created": str, "mdval_version": str,
      "workflow": {"name": str, "source": str, "engines": [str], "protocols": [str],
                   "system": {...}, "reference": {engine: spec}},
      "models": [ {"label": str, "path": str, "sha256": str, "activation": str | dict,
                   "optimizer": str, "n_parameters": int | null,
                   "test_energy_rmse_meV_per_atom": number | null,
                   "test_force_rmse_eV_per_A": number | null} ],
      "table": {"header": [str], "rows": [[str]]},       # what the terminal and HTML show
      "results": [ {"label": str, "role": "model" | "reference", "engine": str,
                    "drift_meV_per_atom_ps": number | null, "rms_fluctuation_meV_per_atom": ...,
                    "rdf_error_percent": number | null, "density_error_percent": number | null,
                    "stable": bool, "failures": [str], "cost_ms_per_step": number | null} ],
      "parity": [ {"label": str, "energy_abs_diff_eV": number | null,
                   "force_max_abs_diff_eV_per_A": number | null,
                   "stress_max_abs_diff_eV_per_A3": number | null, "error": str | null} ],
      "runs": [ summary entries as in mdval.md.workflow (status, reason, summary, vs_reference,
                plus wall_s and steps) ],
      "files": {"html": str, "markdown": str, "json": str, "figures": [str]},
      "provenance": {"versions": {...}, "workflow_toml": str, "settings": {protocol: {...}},
                     "wall_time_s": number}
    }
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from pathlib import Path

import numpy as np

from mdval.md import results as res
from mdval.md.protocols import RunResult
from mdval.report import plots
from mdval.report.html import fmt, text_table, write_documents

SCHEMA_ID = "mdval.report.compare/1"
TABLE_HEADER = ("model", "engine", "activation", "optimizer", "params", "E RMSE (meV/at)", "F RMSE (eV/Å)",
                "drift (meV/at/ps)", "RMS fluct. (meV/at)", "RDF err (%)", "ρ err (%)", "stability",
                "ms/step")


# ---------------------------------------------------------------------------- analysis
def model_info(potential: res.Potential) -> dict:
    """Activation, optimizer, parameter count and test RMSE of a model (its model card next to the
    file, ``NAME.json``, wins for the metrics)."""
    meta = potential.metadata
    metrics = dict(meta.get("metrics") or {})
    card = Path(potential.spec).with_suffix(".json")
    if card.exists():
        try:
            metrics = json.loads(card.read_text()).get("metrics") or metrics
        except json.JSONDecodeError:
            pass
    return {"label": potential.label, "path": str(potential.path), "sha256": potential.sha256,
            "activation": meta.get("activation"), "optimizer": meta.get("optimizer"),
            "n_parameters": meta.get("n_parameters"),
            "test_energy_rmse_meV_per_atom": metrics.get("energy_rmse_meV_per_atom"),
            "test_force_rmse_eV_per_A": metrics.get("force_rmse_eV_per_A")}


def short_activation(spec) -> str:
    if isinstance(spec, dict):
        return "mixed"
    s = str(spec)
    if s.startswith("taafs:"):
        opts = dict(kv.split("=", 1) for kv in s[6:].split(",") if "=" in kv)
        size = f"g{opts['grid']}" if "grid" in opts else f"d{opts.get('degree', '')}"
        basis = {"chebyshev1": "cheb1", "chebyshev2": "cheb2"}.get(opts.get("basis", "?"), opts.get("basis", "?"))
        return f"TAAFS {basis} {size}/{opts.get('scope', '')}"
    if s.startswith("laaf:"):
        opts = dict(kv.split("=", 1) for kv in s[5:].split(",") if "=" in kv)
        return f"LAAF {opts.get('base', 'tanh')} n{opts.get('n', '')}/{opts.get('scope', '')}"
    return s


def summarise(md: list[dict], entries: list[dict]) -> list[dict]:
    """Per-(potential, engine) results of the md tasks and their run entries (mdval.md.matrix)."""
    rows = {}
    for t, entry in zip(md, entries):
        result = RunResult(**t["result"])
        row = rows.setdefault((t["label"], t["engine"]), {
            "label": t["label"], "role": t["role"], "engine": t["engine"], "drift_meV_per_atom_ps": None,
            "rms_fluctuation_meV_per_atom": None, "rdf_error_percent": None, "density_error_percent": None,
            "stable": True, "failures": [], "_cost": []})
        if not result.ok:
            row["stable"] = False
            ttf = f"@{result.time_to_failure_ps:.3g} ps" if result.time_to_failure_ps is not None else ""
            row["failures"].append(f"{t['protocol']}{ttf}: {result.reason}")
        row["_cost"].append(1000.0 * t["wall_s"] / max(t["steps"], 1))
        drift = result.observables.get("drift")
        if drift and t["protocol"] == "nve":
            row["drift_meV_per_atom_ps"] = drift["drift_meV_per_atom_ps"]
            row["rms_fluctuation_meV_per_atom"] = drift["rms_fluctuation_meV_per_atom"]
        # The ground truth is the teacher: the first engine's reference (EMT in ASE for the Cu zoo);
        # another engine's own reference (e.g. Cu_u3.eam in LAMMPS) is a stand-in shown beside it.
        vs = entry.get("vs_first_engine_reference") or entry.get("vs_reference", {})
        if t["protocol"] == "nvt" and "rdf_error_percent" in vs:
            row["rdf_error_percent"] = vs["rdf_error_percent"]["total"]
        if t["protocol"] == "npt" and "density_relative_error_percent" in vs:
            row["density_error_percent"] = vs["density_relative_error_percent"]
    out = []
    for row in rows.values():
        row["cost_ms_per_step"] = float(np.median(row.pop("_cost"))) if row.get("_cost") else None
        out.append(row)
    return out


def table(models: list[dict], results: list[dict], references: dict | None = None) -> list[list[str]]:
    info = {m["label"]: m for m in models}
    references = references or {}
    rows = []
    for r in results:
        m = info.get(r["label"], {})
        if r["failures"]:
            stability = "FAIL " + "; ".join(f.split(":")[0] for f in r["failures"])
        else:
            stability = "ok"
        rows.append([r["label"], r["engine"], short_activation(m.get("activation", references.get(r["engine"], "") if r["role"] == "reference" else "")),
                     m.get("optimizer", "–"), fmt(m.get("n_parameters"), 6), fmt(m.get("test_energy_rmse_meV_per_atom")),
                     fmt(m.get("test_force_rmse_eV_per_A")), fmt(r["drift_meV_per_atom_ps"]),
                     fmt(r["rms_fluctuation_meV_per_atom"]), fmt(r["rdf_error_percent"]),
                     fmt(r["density_error_percent"]), stability, fmt(r["cost_ms_per_step"])])
    return rows


def at_a_glance(results: list[dict]) -> str:
    """One sentence per engine: the best model for each metric, and the unstable ones."""
    out = []
    for engine in dict.fromkeys(r["engine"] for r in results):
        rows = [r for r in results if r["engine"] == engine and r["role"] == "model"]
        if not rows:
            continue
        parts = []
        for key, what, unit in (("drift_meV_per_atom_ps", "smallest |drift|", "meV/atom/ps"),
                                ("rdf_error_percent", "best g(r)", "%"),
                                ("density_error_percent", "best density", "%"),
                                ("cost_ms_per_step", "cheapest", "ms/step")):
            ok = [r for r in rows if r[key] is not None and r["stable"]]
            if ok:
                best = min(ok, key=lambda r: abs(r[key]))
                parts.append(f"{what}: {best['label']} ({fmt(best[key])} {unit})")
        unstable = [r["label"] for r in rows if not r["stable"]]
        parts.append(f"unstable: {', '.join(unstable)}" if unstable else "every model stable")
        out.append(f"{engine}: " + "; ".join(parts) + ".")
    return "At a glance (stable models only) — " + " ".join(out)


# ---------------------------------------------------------------------------- activations
def _layer_name(module_name: str) -> str:
    parts = module_name.split(".")
    net = "embedding" if parts[0].startswith("embedding") else parts[0]
    idx = [p for p in parts if p.isdigit()]
    return f"{net} net {idx[0] if idx else ''} layer {int(idx[-1]) + 1 if idx else ''}".replace("  ", " ")


def _eager(spec: str, tensor_values: dict):
    """An eager activation module for ``spec`` with parameters set from ``tensor_values``."""
    import torch

    from mdval.nn.activations import make_activation

    first = next(iter(tensor_values.values()))
    width = int(first.shape[0]) if first.ndim == 2 or (first.ndim == 1 and spec.startswith("laaf")) else 1
    act = make_activation(spec, width)
    with torch.no_grad():
        for name, p in act.named_parameters():
            if name in tensor_values:
                p.copy_(tensor_values[name].reshape(p.shape))
    return act, width


def _curve(act, width: int, z: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        zz = torch.as_tensor(z, dtype=torch.float64)[:, None].expand(-1, width)
        y = act(zz).numpy()
    return y[:, 0] if width == 1 else y


def adaptive_layers(model_path: str) -> dict:
    """{module name: (spec, {param name: tensor})} of the trainable activations (TAAFS, LAAF)."""
    from mdval.deploy.model_file import load

    mf = load(model_path)
    out = {}
    for name, module in mf.module.named_modules():
        spec = getattr(module, "spec", None)
        if isinstance(spec, str) and spec.startswith(("taafs", "laaf")):
            params = {n: p.detach().clone() for n, p in module.named_parameters() if "." not in n}
            if params:
                out[name] = (spec, params)
    return out


def activation_figures(model_path: str, fig_dir: Path, log_path: Path | None) -> list[tuple[str, str]]:
    """Activation curves (and their evolution, from the training log) of one model."""
    import torch

    layers = adaptive_layers(model_path)
    if not layers:
        return []
    z = np.linspace(-4.0, 4.0, 201)
    stem = Path(model_path).stem
    curves = []
    for name, (spec, params) in layers.items():
        act, width = _eager(spec, params)
        curves.append({"name": _layer_name(name), "z": z, "y": _curve(act, width, z), "spec": spec})
    figs = [(str(plots.activation_plot(curves, fig_dir / f"activation_{stem}.png",
                                       title=f"{stem}: learned activations ({short_activation(curves[0]['spec'])})")),
             f"{stem}: learned activation y(z) per layer (solid) beside tanh (dashed).")]
    if log_path is not None and log_path.exists():
        records = [json.loads(ln) for ln in log_path.read_text().splitlines() if ln.strip()]
        snaps = [(r["epoch"], r.get("activation_coefficients") or {}) for r in records]
        snaps = [s for s in snaps if s[1]]
        if snaps:
            pick = sorted({round(k) for k in np.linspace(0, len(snaps) - 1, min(5, len(snaps)))})
            evo = []
            for name, (spec, params) in layers.items():
                series = []
                for k in pick:
                    epoch, coeffs = snaps[k]
                    values = {pn: torch.tensor(coeffs[f"{name}.{pn}"], dtype=torch.float64)
                              for pn in params if f"{name}.{pn}" in coeffs}
                    if values:
                        act, width = _eager(spec, values)
                        series.append((epoch, _curve(act, width, z)))
                if series:
                    evo.append({"name": _layer_name(name), "z": z, "curves": series})
            if evo:
                figs.append((str(plots.activation_evolution_plot(evo, fig_dir / f"activation_evolution_{stem}.png",
                                                                 title=f"{stem}: activations during training")),
                             f"{stem}: activation of each layer at several epochs (light: early, dark: late)."))
    return figs


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


# ---------------------------------------------------------------------------- report
class _Document:
    """The blocks of the report (mdval.report.html.write_documents) and the figures among them."""

    def __init__(self):
        self.blocks: list[tuple] = []
        self.figures: list[str] = []

    def fig(self, path, caption: str) -> None:
        self.figures.append(str(path))
        self.blocks.append(("img", str(path), caption))


def _nve_figure(doc: _Document, wf, md: list[dict], engine: str, fig_dir: Path) -> None:
    series = []
    for t in md:
        if t["engine"] == engine and t["protocol"] == "nve":
            p = plots.production(res.read_thermo(Path(t["out"]) / res.THERMO_FILE))
            if p["t_ps"].size:
                series.append({"label": f"reference ({wf.reference[engine]})" if t["role"] == "reference"
                               else t["label"],
                               "x": p["t_ps"], "y": (p["etot_eV"] - p["etot_eV"][0]) * 1000.0 / _n_atoms(wf),
                               "reference": t["role"] == "reference",
                               "failed": t["result"]["status"] != "completed"})
    doc.fig(plots.overlay_plot(series, fig_dir / f"etot_{engine}.png", xlabel="time in NVE (ps)",
                               ylabel="E_tot/N − E_tot(0)/N (meV/atom)", title=f"E_tot(t), {engine}"),
            f"Total energy per atom in NVE ({engine}); × marks a run that failed.")


def _nvt_figure(doc: _Document, wf, md: list[dict], results: list[dict], engine: str, fig_dir: Path) -> None:
    ref, mods, secondary = None, [], None
    err = {r["label"]: r["rdf_error_percent"] for r in results if r["engine"] == engine}
    for t in md:
        if t["protocol"] != "nvt" or (t["engine"] != engine and not (
                t["role"] == "reference" and t["engine"] == wf.engines[0])):
            continue
        g = t["result"]["observables"].get("rdf")
        if g:
            if t["role"] == "reference":
                entry = {"label": f"reference ({wf.reference[t['engine']]})", "r_A": g["r_A"], "g": g["total"]}
                if t["engine"] == wf.engines[0]:
                    ref = entry
                else:
                    secondary = entry
            else:
                mods.append({"label": t["label"], "r_A": g["r_A"], "g": g["total"],
                             "error_percent": err.get(t["label"])})
    temperature_K = {s.kind: s for s in wf.protocols}["nvt"].temperature_K
    doc.fig(plots.rdf_plot(ref, mods, fig_dir / f"rdf_{engine}.png", secondary=secondary,
                           title=f"g(r) at {temperature_K:g} K, {engine} (RDF error in brackets)"),
            f"Top: g(r) of the models ({engine}) and of the teacher {wf.reference[wf.engines[0]]} "
            f"(dashed){'; dotted: ' + wf.reference[engine] + ', this engine’s stand-in reference' if secondary else ''}. "
            "Bottom: g(r) − g_ref(r) against the teacher.")


def _npt_figure(doc: _Document, wf, md: list[dict], engine: str, fig_dir: Path) -> None:
    series = []
    for t in md:
        teacher = t["role"] == "reference" and t["engine"] == wf.engines[0]
        if t["protocol"] == "npt" and (t["engine"] == engine or teacher):
            p = plots.production(res.read_thermo(Path(t["out"]) / res.THERMO_FILE))
            if p["t_ps"].size:
                role = t["role"] == "reference"
                series.append({"label": f"reference ({wf.reference[t['engine']]})" if role else t["label"],
                               "x": p["t_ps"], "y": p["density_g_cm3"], "reference": teacher,
                               "secondary": role and not teacher,
                               "failed": t["result"]["status"] != "completed"})
    pressure_bar = {s.kind: s for s in wf.protocols}["npt"].pressure_bar
    doc.fig(plots.overlay_plot(series, fig_dir / f"density_{engine}.png", xlabel="time in NPT (ps)",
                               ylabel="ρ (g/cm³)", title=f"ρ(t) at {pressure_bar:g} bar, {engine}"),
            f"Density in NPT ({engine}); dashed: the teacher {wf.reference[wf.engines[0]]}. The production half "
            "is averaged (block averaging) for the table's error against the teacher.")


def _md_blocks(doc: _Document, wf, md: list[dict], results: list[dict], fig_dir: Path) -> None:
    """Per protocol and engine: E_tot(t) (NVE), g(r) (NVT) and ρ(t) (NPT) overlays."""
    kinds = {s.kind for s in wf.protocols}
    headings = {"nve": "Energy conservation (NVE)", "nvt": "Structure (NVT g(r))", "npt": "Density (NPT)"}
    for kind, engine in [(k, e) for k in ("nve", "nvt", "npt") if k in kinds for e in wf.engines]:
        if engine == wf.engines[0]:
            doc.blocks.append(("h", headings[kind]))
        if kind == "nve":
            _nve_figure(doc, wf, md, engine, fig_dir)
        elif kind == "nvt":
            _nvt_figure(doc, wf, md, results, engine, fig_dir)
        else:
            _npt_figure(doc, wf, md, engine, fig_dir)


def _training_blocks(doc: _Document, wf, fig_dir: Path) -> None:
    """The learned activations of every model and the validation curves of their training logs."""
    doc.blocks.append(("h", "Learned activations"))
    curves = []
    for m in wf.models:
        log_path = training_log(m)
        for path, caption in activation_figures(m, fig_dir, log_path):
            doc.fig(path, caption)
        if log_path is not None:
            recs = [json.loads(ln) for ln in log_path.read_text().splitlines() if ln.strip()]
            recs = [r for r in recs if r.get("val")]
            if recs:
                curves.append({"label": Path(m).stem, "epoch": [r["epoch"] for r in recs],
                               "time_s": [r.get("time_s", r["epoch"]) for r in recs],
                               "energy_rmse_meV_per_atom": [r["val"].get("energy_rmse_meV_per_atom") for r in recs],
                               "force_rmse_eV_per_A": [r["val"].get("force_rmse_eV_per_A") for r in recs]})
    if not any(b[0] == "img" and "activation" in b[1] for b in doc.blocks):
        doc.blocks.append(("p", "No model with a trainable activation (TAAFS or LAAF) in this workflow."))
    doc.blocks.append(("h", "Training curves"))
    if curves:
        doc.fig(plots.training_plot(curves, fig_dir / "training.png"), "Validation RMSE against training wall time, one point per epoch (from each model's log; "
                "every zoo model had the same time budget).")
    else:
        doc.blocks.append(("p", "No training log found next to the models (NAME.log.jsonl) or in their run folders."))


def _parity_blocks(doc: _Document, par: list[dict], fig_dir: Path) -> None:
    if not par:
        return
    doc.blocks.append(("h", "ASE against LAMMPS, single point"))
    ok = [p for p in par if p["error"] is None]
    if ok:
        doc.fig(plots.parity_engines_plot([{"label": p["label"], "ase_forces": p["ase_forces"],
                                            "lammps_forces": p["lammps_forces"]} for p in ok],
                                          fig_dir / "parity_engines.png"),
                "Force components of a rattled structure from LAMMPS (pair_style taafs) against ASE (mdval.Calculator).")
    parity_rows = [[p["label"], fmt(p["energy_abs_diff_eV"]), fmt(p["force_max_abs_diff_eV_per_A"]),
                    fmt(p["stress_max_abs_diff_eV_per_A3"]), p["error"] or "ok"] for p in par]
    doc.blocks.append(("table", ("model", "|ΔE| (eV)", "max |ΔF| (eV/Å)", "max |Δσ| (eV/Å³)", "status"), parity_rows))


def run_compare(workflow_path, *, out_dir=None, jobs: int = 2, resume: bool = True, progress: bool = True,
                parity: bool = True, log=print) -> dict:
    """Run the matrix of ``workflow_path`` and write the report; returns the report dict."""
    from mdval import __version__
    from mdval.md.matrix import run_matrix
    from mdval.md.workflow import load_workflow

    t_start = time.perf_counter()
    wf = load_workflow(workflow_path)
    out = Path(out_dir or f"reports/{wf.name}")
    fig_dir = out / "figures"
    matrix = run_matrix(wf, jobs=jobs, resume=resume, progress=progress, parity=parity, log=log)
    md, par, entries = matrix["md"], matrix["parity"], matrix["runs"]
    models = [model_info(wf.potential(m)) for m in wf.models]
    results = summarise(md, entries)
    rows = table(models, results, wf.reference)
    doc = _Document()
    n_failed = sum(not r["stable"] for r in results)
    doc.blocks += [("p", f"Workflow {wf.source}: {len(wf.models)} models and the reference, protocols "
                         f"{', '.join(s.kind.upper() for s in wf.protocols)}, engines {', '.join(wf.engines)}; "
                         f"{len(md)} MD runs, {n_failed} potential/engine pair(s) with a failed run. Drift from NVE "
                         "(meV/atom/ps), RDF error from NVT (100·∫|g−g_ref|dr/∫|g_ref−1|dr), density error from NPT, "
                         f"both against the teacher {wf.reference[wf.engines[0]]} (the reference that labelled the "
                         "training data; for another engine, its own reference is shown as a stand-in), cost = median wall time per MD step "
                         "(one core, including start-up)."),
                   ("p", at_a_glance(results)), ("table", TABLE_HEADER, rows)]
    _md_blocks(doc, wf, md, results, fig_dir)
    _training_blocks(doc, wf, fig_dir)
    _parity_blocks(doc, par, fig_dir)
    settings = {s.kind: s.as_dict() for s in wf.protocols}
    wall = time.perf_counter() - t_start
    provenance = {"versions": res.versions(), "workflow_toml": Path(wf.source).read_text() if wf.source else "",
                  "settings": settings, "models": [{k: m[k] for k in ("label", "path", "sha256")} for m in models],
                  "wall_time_s": wall, "jobs": jobs,
                  "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    doc.blocks += [("h", "Provenance"), ("pre", json.dumps(provenance, indent=1, default=str))]
    files = write_documents(out, "index", f"mdval compare: {wf.name}", doc.blocks)
    report = {"schema": SCHEMA_ID, "created": provenance["created"], "mdval_version": __version__,
              "workflow": {"name": wf.name, "source": wf.source, "engines": wf.engines,
                           "protocols": [s.kind for s in wf.protocols], "system": wf.system,
                           "reference": wf.reference},
              "models": models, "table": {"header": list(TABLE_HEADER), "rows": rows}, "results": results,
              "parity": [{k: p[k] for k in ("label", "energy_abs_diff_eV", "force_max_abs_diff_eV_per_A",
                                            "stress_max_abs_diff_eV_per_A3", "error")} for p in par],
              "runs": entries, "files": {**files, "json": str(out / "report.json"), "figures": doc.figures},
              "provenance": provenance}
    res.write_json_atomic(out / "report.json", report)
    problems = validate_report(json.loads((out / "report.json").read_text()))
    if problems:
        raise RuntimeError("compare report does not match its schema: " + "; ".join(problems))
    report["table_text"] = text_table(TABLE_HEADER, rows) + "\n\n" + at_a_glance(results)
    return report


def _n_atoms(wf) -> int:
    return len(wf.build_atoms())


def validate_report(report: dict) -> list[str]:
    """Problems of a compare ``report.json`` against the schema of the module docstring."""
    p = []
    if report.get("schema") != SCHEMA_ID:
        p.append(f"schema must be {SCHEMA_ID!r}")
    for key, kind in (("created", str), ("mdval_version", str), ("workflow", dict), ("models", list),
                      ("table", dict), ("results", list), ("parity", list), ("runs", list), ("files", dict),
                      ("provenance", dict)):
        if not isinstance(report.get(key), kind):
            p.append(f"{key} must be a {kind.__name__}")
    if p:
        return p
    for k, m in enumerate(report["models"]):
        for key in ("label", "path", "sha256", "activation", "optimizer", "n_parameters",
                    "test_energy_rmse_meV_per_atom", "test_force_rmse_eV_per_A"):
            if key not in m:
                p.append(f"models[{k}] misses {key}")
    header, rows = report["table"].get("header"), report["table"].get("rows")
    if not isinstance(header, list) or not isinstance(rows, list) or any(len(r) != len(header) for r in rows):
        p.append("table needs header and rows of the same width")
    for k, r in enumerate(report["results"]):
        for key in ("label", "role", "engine", "drift_meV_per_atom_ps", "rms_fluctuation_meV_per_atom",
                    "rdf_error_percent", "density_error_percent", "stable", "failures", "cost_ms_per_step"):
            if key not in r:
                p.append(f"results[{k}] misses {key}")
        if r.get("role") not in ("model", "reference"):
            p.append(f"results[{k}].role must be model or reference")
        if not isinstance(r.get("stable"), bool):
            p.append(f"results[{k}].stable must be a boolean")
    for k, r in enumerate(report["parity"]):
        for key in ("label", "energy_abs_diff_eV", "force_max_abs_diff_eV_per_A", "stress_max_abs_diff_eV_per_A3", "error"):
            if key not in r:
                p.append(f"parity[{k}] misses {key}")
    for key in ("html", "markdown", "json", "figures"):
        if key not in report["files"]:
            p.append(f"files misses {key}")
    for key in ("versions", "workflow_toml", "settings", "wall_time_s"):
        if key not in report["provenance"]:
            p.append(f"provenance misses {key}")
    return p
