"""``mdval compare WORKFLOW``: models × protocols × engines against the reference, one report.

The matrix comes from a workflow spec (mdval/md/workflow.py; e.g. workflows/cu_demo.toml). Every
(engine, protocol, potential) run is independent, so they run ``jobs`` at a time in worker
processes (one torch thread each; a LAMMPS run uses ``np`` MPI ranks), with a progress bar. A
finished run (``results.json`` + ``timing.json`` in its folder) is reused unless ``resume`` is
off. Each model also gets a single-point parity check, ASE (mdval.Calculator) against LAMMPS
(``pair_style taafs`` through the ``lammps`` Python module), on a rattled copy of the structure.

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
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from mdval.md import results as res
from mdval.md.protocols import RunResult
from mdval.report import plots
from mdval.report.html import fmt, text_table, write_documents

SCHEMA_ID = "mdval.report.compare/1"
TIMING_FILE = "timing.json"
TABLE_HEADER = ("model", "engine", "activation", "optimizer", "params", "E RMSE (meV/at)", "F RMSE (eV/Å)",
                "drift (meV/at/ps)", "RMS fluct. (meV/at)", "RDF err (%)", "ρ err (%)", "stability",
                "ms/step")


# ---------------------------------------------------------------------------- running
def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"  # for lmp started from this worker


def _run_task(task: dict) -> dict:
    """One MD run (in a worker process); returns the RunResult dict, wall time and step count."""
    from mdval.md.workflow import build_system, run_one

    out = Path(task["out"])
    timing = out / TIMING_FILE
    # With resume, run_compare has checked that the folder holds this same run (model, system,
    # settings but steps), else resume is off: a finished run of the same length is reused.
    if task["resume"] and timing.exists() and (out / res.RESULTS_FILE).exists():
        cached = json.loads((out / res.RESULTS_FILE).read_text())
        if json.loads(json.dumps(res._jsonable(task["settings"].as_dict()))) == cached.get("settings"):
            return {**task, "result": cached, **json.loads(timing.read_text()), "cached": True}
    if timing.exists():
        timing.unlink()
    t0 = time.perf_counter()
    result = run_one(task["engine"], build_system(**task["system"]), task["potential"], task["settings"], out,
                     np=task["np"], resume=False)
    wall = time.perf_counter() - t0
    record = {"wall_s": wall, "steps": int(result.steps_done) or task["settings"].total_steps}
    res.write_json_atomic(timing, record)
    return {**task, "result": result.as_dict(), **record, "cached": False}


def _parity_task(task: dict) -> dict:
    """ASE against LAMMPS single point for one model (in a worker process)."""
    from mdval.md.workflow import build_system

    out = {"kind": "parity", "label": task["label"], "error": None, "energy_abs_diff_eV": None,
           "force_max_abs_diff_eV_per_A": None, "stress_max_abs_diff_eV_per_A3": None}
    try:
        from ase.calculators.lammpslib import LAMMPSlib

        from mdval.data.teachers import load_lammps
        from mdval.deploy.calculator import Calculator
        atoms = build_system(**task["system"])
        atoms.rattle(0.05, seed=7)
        a, b = atoms.copy(), atoms.copy()
        a.calc = Calculator(task["model"])
        load_lammps()
        elements = sorted(set(atoms.get_chemical_symbols()))
        b.calc = LAMMPSlib(lmpcmds=["pair_style taafs",
                                    f"pair_coeff * * {Path(task['model']).resolve()} {' '.join(elements)}"],
                           atom_types={e: k + 1 for k, e in enumerate(elements)},
                           lammps_header=["units metal", "atom_style atomic", "atom_modify map array sort 0 0"],
                           log_file=None, keep_alive=False)
        fa, fb = a.get_forces(), b.get_forces()
        out.update(energy_ase_eV=float(a.get_potential_energy()), energy_lammps_eV=float(b.get_potential_energy()),
                   ase_forces=fa.tolist(), lammps_forces=fb.tolist())
        out["energy_abs_diff_eV"] = abs(out["energy_ase_eV"] - out["energy_lammps_eV"])
        out["force_max_abs_diff_eV_per_A"] = float(np.abs(fa - fb).max())
        out["stress_max_abs_diff_eV_per_A3"] = float(np.abs(a.get_stress() - b.get_stress()).max())
    except Exception as exc:  # parity is a finding, not a crash
        out["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return out


def plan(workflow, resume: bool = True) -> list[dict]:
    """Every (engine, protocol, potential) run of ``workflow`` as a task dict."""
    tasks = []
    for engine in workflow.engines:
        for settings in workflow.protocols:
            base = workflow.output_dir / engine / settings.kind
            specs = [("reference", workflow.reference[engine])] + [("model", m) for m in workflow.models]
            for role, spec in specs:
                label = "reference" if role == "reference" else res.Potential(spec).label
                tasks.append({"kind": "md", "engine": engine, "protocol": settings.kind, "role": role,
                              "potential": spec, "label": label, "settings": settings, "system": workflow.system,
                              "out": str(base / label), "np": workflow.np, "resume": resume})
    return tasks


def execute(tasks: list[dict], *, jobs: int = 2, progress: bool = True) -> list[dict]:
    """Run tasks ("md" or "parity") in ``jobs`` worker processes; results in task order."""
    import multiprocessing

    from tqdm import tqdm

    results: list = [None] * len(tasks)
    bar = tqdm(total=len(tasks), desc="compare", unit="run", disable=not progress, dynamic_ncols=True)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(jobs, 1), mp_context=ctx, initializer=_worker_init) as pool:
        futures = {pool.submit(_run_task if t["kind"] == "md" else _parity_task, t): k for k, t in enumerate(tasks)}
        for future in as_completed(futures):
            k = futures[future]
            results[k] = future.result()
            t = tasks[k]
            what = f"{t['engine']} {t['protocol']} {t['label']}" if t["kind"] == "md" else f"parity {t['label']}"
            bar.set_postfix_str(what[:48])
            bar.update(1)
    bar.close()
    return results


# ---------------------------------------------------------------------------- analysis
def model_info(path: str) -> dict:
    """Activation, optimizer, parameter count and test RMSE of a model file (its model card next
    to it, ``NAME.json``, wins for the metrics)."""
    from mdval.deploy.model_file import read_metadata

    meta = read_metadata(path)
    metrics = dict(meta.get("metrics") or {})
    card = Path(path).with_suffix(".json")
    if card.exists():
        try:
            metrics = json.loads(card.read_text()).get("metrics") or metrics
        except json.JSONDecodeError:
            pass
    return {"label": Path(path).stem, "path": str(Path(path).resolve()), "sha256": res.sha256_file(path),
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


def summarise(workflow, md: list[dict]) -> tuple[list[dict], list[dict]]:
    """Per-(potential, engine) results and the workflow-style run entries."""
    from mdval.md.workflow import _entry

    refs = {(t["engine"], t["protocol"]): RunResult(**t["result"]) for t in md if t["role"] == "reference"}
    first_engine = workflow.engines[0]
    entries, rows = [], {}
    for t in md:
        result = RunResult(**t["result"])
        ref = refs.get((t["engine"], t["protocol"])) if t["role"] == "model" else None
        first = refs.get((first_engine, t["protocol"])) if t["engine"] != first_engine else None
        entry = _entry(result, t["potential"], t["role"], ref, first)
        entry.update(label=t["label"], wall_s=t["wall_s"], steps=t["steps"])
        entries.append(entry)
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
    return out, entries


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
def run_compare(workflow_path, *, out_dir=None, jobs: int = 2, resume: bool = True, progress: bool = True,
                parity: bool = True, log=print) -> dict:
    """Run the matrix of ``workflow_path`` and write the report; returns the report dict."""
    from mdval import __version__
    from mdval.md.workflow import load_workflow, stale_run_folders

    t_start = time.perf_counter()
    wf = load_workflow(workflow_path)
    out = Path(out_dir or f"reports/{wf.name}")
    fig_dir = out / "figures"
    tasks = plan(wf, resume)
    stale = stale_run_folders(wf) if resume else {}
    for task in tasks:
        if Path(task["out"]) in stale:  # a retrained model or an edited spec: run it again
            log(f"{stale[Path(task['out'])]}: out of date, running it afresh")
            task["resume"] = False
    if parity and "lammps" in wf.engines:
        tasks += [{"kind": "parity", "label": res.Potential(m).label, "model": m, "system": wf.system}
                  for m in wf.models]
    log(f"{wf.name}: {len(wf.models)} model(s) + reference × {len(wf.protocols)} protocol(s) × "
        f"{len(wf.engines)} engine(s) = {sum(t['kind'] == 'md' for t in tasks)} MD runs, {jobs} at a time")
    done = execute(tasks, jobs=jobs, progress=progress)
    md = [d for d in done if d["kind"] == "md"]
    par = [d for d in done if d["kind"] == "parity"]
    models = [model_info(m) for m in wf.models]
    results, entries = summarise(wf, md)
    rows = table(models, results, wf.reference)
    res.write_json_atomic(wf.output_dir / "summary.json", {"name": wf.name, "source": wf.source, "models": wf.models,
                                                           "reference": wf.reference, "engines": wf.engines,
                                                           "runs": entries})
    figures, blocks = [], []

    def fig(path, caption):
        figures.append(str(path))
        blocks.append(("img", str(path), caption))

    n_failed = sum(not r["stable"] for r in results)
    blocks += [("p", f"Workflow {wf.source}: {len(wf.models)} models and the reference, protocols "
                     f"{', '.join(s.kind.upper() for s in wf.protocols)}, engines {', '.join(wf.engines)}; "
                     f"{len(md)} MD runs, {n_failed} potential/engine pair(s) with a failed run. Drift from NVE "
                     "(meV/atom/ps), RDF error from NVT (100·∫|g−g_ref|dr/∫|g_ref−1|dr), density error from NPT, "
                     f"both against the teacher {wf.reference[wf.engines[0]]} (the reference that labelled the "
                     "training data; for another engine, its own reference is shown as a stand-in), cost = median wall time per MD step "
                     "(one core, including start-up)."),
               ("p", at_a_glance(results)), ("table", TABLE_HEADER, rows)]
    by_kind = {s.kind: s for s in wf.protocols}
    headings = {"nve": "Energy conservation (NVE)", "nvt": "Structure (NVT g(r))", "npt": "Density (NPT)"}
    for kind, engine in [(k, e) for k in ("nve", "nvt", "npt") if k in by_kind for e in wf.engines]:
        ref_label = f"reference ({wf.reference[engine]})"
        if engine == wf.engines[0]:
            blocks.append(("h", headings[kind]))
        if kind == "nve":
            series = []
            for t in md:
                if t["engine"] == engine and t["protocol"] == "nve":
                    th = res.read_thermo(Path(t["out"]) / res.THERMO_FILE)
                    p = plots.production(th)
                    if p["t_ps"].size:
                        n = _n_atoms(wf)
                        series.append({"label": ref_label if t["role"] == "reference" else t["label"],
                                       "x": p["t_ps"], "y": (p["etot_eV"] - p["etot_eV"][0]) * 1000.0 / n,
                                       "reference": t["role"] == "reference",
                                       "failed": t["result"]["status"] != "completed"})
            fig(plots.overlay_plot(series, fig_dir / f"etot_{engine}.png", xlabel="time in NVE (ps)",
                                   ylabel="E_tot/N − E_tot(0)/N (meV/atom)", title=f"E_tot(t), {engine}"),
                f"Total energy per atom in NVE ({engine}); × marks a run that failed.")
        if kind == "nvt":
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
                        mods.append({"label": t["label"], "r_A": g["r_A"], "g": g["total"], "error_percent": err.get(t["label"])})
            fig(plots.rdf_plot(ref, mods, fig_dir / f"rdf_{engine}.png", secondary=secondary,
                               title=f"g(r) at {by_kind['nvt'].temperature_K:g} K, {engine} (RDF error in brackets)"),
                f"Top: g(r) of the models ({engine}) and of the teacher {wf.reference[wf.engines[0]]} "
                f"(dashed){'; dotted: ' + wf.reference[engine] + ', this engine’s stand-in reference' if secondary else ''}. "
                "Bottom: g(r) − g_ref(r) against the teacher.")
        if kind == "npt":
            series = []
            for t in md:
                teacher = t["role"] == "reference" and t["engine"] == wf.engines[0]
                if t["protocol"] == "npt" and (t["engine"] == engine or teacher):
                    th = res.read_thermo(Path(t["out"]) / res.THERMO_FILE)
                    p = plots.production(th)
                    if p["t_ps"].size:
                        role = t["role"] == "reference"
                        series.append({"label": f"reference ({wf.reference[t['engine']]})" if role else t["label"],
                                       "x": p["t_ps"], "y": p["density_g_cm3"], "reference": teacher,
                                       "secondary": role and not teacher,
                                       "failed": t["result"]["status"] != "completed"})
            fig(plots.overlay_plot(series, fig_dir / f"density_{engine}.png", xlabel="time in NPT (ps)",
                                   ylabel="ρ (g/cm³)", title=f"ρ(t) at {by_kind['npt'].pressure_bar:g} bar, {engine}"),
                f"Density in NPT ({engine}); dashed: the teacher {wf.reference[wf.engines[0]]}. The production half "
                "is averaged (block averaging) for the table's error against the teacher.")
    blocks.append(("h", "Learned activations"))
    curves = []
    for m in wf.models:
        log_path = training_log(m)
        for path, caption in activation_figures(m, fig_dir, log_path):
            fig(path, caption)
        if log_path is not None:
            recs = [json.loads(ln) for ln in log_path.read_text().splitlines() if ln.strip()]
            recs = [r for r in recs if r.get("val")]
            if recs:
                curves.append({"label": Path(m).stem, "epoch": [r["epoch"] for r in recs],
                               "time_s": [r.get("time_s", r["epoch"]) for r in recs],
                               "energy_rmse_meV_per_atom": [r["val"].get("energy_rmse_meV_per_atom") for r in recs],
                               "force_rmse_eV_per_A": [r["val"].get("force_rmse_eV_per_A") for r in recs]})
    if not any(b[0] == "img" and "activation" in b[1] for b in blocks):
        blocks.append(("p", "No model with a trainable activation (TAAFS or LAAF) in this workflow."))
    blocks.append(("h", "Training curves"))
    if curves:
        fig(plots.training_plot(curves, fig_dir / "training.png"), "Validation RMSE against training wall time, one point per epoch (from each model's log; "
                "every zoo model had the same time budget).")
    else:
        blocks.append(("p", "No training log found next to the models (NAME.log.jsonl) or in their run folders."))
    parity_rows = []
    if par:
        blocks.append(("h", "ASE against LAMMPS, single point"))
        ok = [p for p in par if p["error"] is None]
        if ok:
            fig(plots.parity_engines_plot([{"label": p["label"], "ase_forces": p["ase_forces"],
                                            "lammps_forces": p["lammps_forces"]} for p in ok],
                                          fig_dir / "parity_engines.png"),
                "Force components of a rattled structure from LAMMPS (pair_style taafs) against ASE (mdval.Calculator).")
        parity_rows = [[p["label"], fmt(p["energy_abs_diff_eV"]), fmt(p["force_max_abs_diff_eV_per_A"]),
                        fmt(p["stress_max_abs_diff_eV_per_A3"]), p["error"] or "ok"] for p in par]
        blocks.append(("table", ("model", "|ΔE| (eV)", "max |ΔF| (eV/Å)", "max |Δσ| (eV/Å³)", "status"), parity_rows))
    settings = {s.kind: s.as_dict() for s in wf.protocols}
    wall = time.perf_counter() - t_start
    provenance = {"versions": res.versions(), "workflow_toml": Path(wf.source).read_text() if wf.source else "",
                  "settings": settings, "models": [{k: m[k] for k in ("label", "path", "sha256")} for m in models],
                  "wall_time_s": wall, "jobs": jobs,
                  "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    blocks += [("h", "Provenance"), ("pre", json.dumps(provenance, indent=1, default=str))]
    files = write_documents(out, "index", f"mdval compare: {wf.name}", blocks)
    report = {"schema": SCHEMA_ID, "created": provenance["created"], "mdval_version": __version__,
              "workflow": {"name": wf.name, "source": wf.source, "engines": wf.engines,
                           "protocols": [s.kind for s in wf.protocols], "system": wf.system,
                           "reference": wf.reference},
              "models": models, "table": {"header": list(TABLE_HEADER), "rows": rows}, "results": results,
              "parity": [{k: p[k] for k in ("label", "energy_abs_diff_eV", "force_max_abs_diff_eV_per_A",
                                            "stress_max_abs_diff_eV_per_A3", "error")} for p in par],
              "runs": entries, "files": {**files, "json": str(out / "report.json"), "figures": figures},
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
