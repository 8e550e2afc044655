"""The run matrix of a workflow (mdval/md/workflow.py): every (engine, protocol, potential) run.

:func:`runs` is the plan: for each engine and protocol the reference first, then the models, each
in ``<output_dir>/<engine>/<protocol>/<label>/``. Two executors run it and write ``summary.json``:

- :func:`run_workflow` (``mdval run``) runs them one after another in this process; with
  ``resume`` runs go on from their checkpoints (mdval/md/run_folder.py).
- :func:`run_matrix` (``mdval compare``, ``mdval demo``) runs them ``jobs`` at a time in worker
  processes (one torch thread each; a LAMMPS run uses ``np`` MPI ranks), with a progress bar. A
  finished run (``results.json`` + ``timing.json`` in its folder) is reused unless ``resume`` is
  off. Each model also gets a single-point parity check, ASE (mdval.Calculator) against LAMMPS
  (``pair_style taafs`` through the ``lammps`` Python module), on a rattled copy of the structure.

Before either starts, every run folder is checked: one that holds an out-of-date run (a retrained
model, an edited spec: :func:`stale_run_folders`) runs afresh, saying so.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from mdval.md import results as res
from mdval.md import run_folder
from mdval.md.protocols import RunResult
from mdval.md.workflow import Workflow, build_system

TIMING_FILE = "timing.json"


def run_one(engine: str, atoms, potential: res.Potential, settings, output_dir, *, np: int = 1, resume: bool = True):
    """One protocol run on one engine; returns its RunResult."""
    if engine == "ase":
        from mdval.md.ase_engine import run_ase

        return run_ase(atoms, potential, settings, output_dir, resume=resume)
    from mdval.md.lammps_engine import run_lammps

    return run_lammps(atoms, potential, settings, output_dir, np=np, resume=resume)


def runs(workflow: Workflow) -> list[tuple]:
    """Every run of ``workflow`` as (engine, settings, role, Potential, folder); for each engine
    and protocol the reference comes first, then the models."""
    found = []
    for engine in workflow.engines:
        for settings in workflow.protocols:
            base = workflow.output_dir / engine / settings.kind
            found.append((engine, settings, "reference", workflow.potential(workflow.reference[engine]),
                          base / "reference"))
            found += [(engine, settings, "model", p, base / p.label) for p in map(workflow.potential, workflow.models)]
    return found


def stale_run_folders(workflow: Workflow) -> dict[Path, str]:
    """The run folders of ``workflow`` that hold another run than the spec asks for now (a model
    file was retrained, a setting or the system was edited), each with what differs.

    A workflow owns the folders under its ``output_dir``: such a run is out of date, and the
    workflow runs it afresh (saying so) instead of splicing or refusing; ``mdval md --out`` into a
    folder of another run refuses instead (the folder was named by hand)."""
    atoms = workflow.build_atoms()
    stale = {}
    for engine, settings, _, potential, folder in runs(workflow):
        why = run_folder.problem(folder, run_folder.identity(atoms, potential, settings, engine))
        if why:
            stale[Path(folder)] = why
    return stale


def run_workflow(workflow: Workflow, *, resume: bool = True, log=print) -> dict:
    """Run every (engine, protocol, potential) of a workflow; returns and writes ``summary.json``.

    With ``resume`` runs go on from where they stopped (finished ones are only analysed again)
    and a folder that holds an out-of-date run (:func:`stale_run_folders`) starts afresh; without
    it every run starts afresh."""
    stale = stale_run_folders(workflow) if resume else {}
    for why in stale.values():
        log(f"{why}: out of date, running it afresh")
    atoms = workflow.build_atoms()
    summary = {"name": workflow.name, "source": workflow.source, "models": workflow.models,
               "reference": workflow.reference, "engines": workflow.engines, "runs": []}
    first_reference: dict = {}
    reference: dict = {}
    for engine, settings, role, potential, folder in runs(workflow):
        log(f"[{engine} {settings.kind}] {role} {potential.spec}")
        result = run_one(engine, atoms, potential, settings, folder, np=workflow.np,
                         resume=resume and Path(folder) not in stale)
        if role == "reference":
            reference[engine, settings.kind] = result
            first_reference.setdefault(settings.kind, result)
        summary["runs"].append(run_entry(result, potential, role,
                                         reference[engine, settings.kind] if role == "model" else None,
                                         first_reference[settings.kind]))
    res.write_json_atomic(workflow.output_dir / "summary.json", summary)
    return summary


def run_entry(result, potential: res.Potential, role: str, reference, first_reference) -> dict:
    """A run's line of ``summary.json``: its outcome and observables (no RDF), and its errors
    against the same engine's reference and the first engine's (None where not compared)."""
    entry = {"role": role, "potential": potential.spec, "engine": result.engine, "protocol": result.protocol,
             "status": result.status, "reason": result.reason, "time_to_failure_ps": result.time_to_failure_ps,
             "output_dir": result.output_dir,
             "summary": {k: v for k, v in result.observables.items() if k not in ("rdf",)}}
    if reference is not None and result.ok and reference.ok:
        entry["vs_reference"] = res.compare_to_reference(result.observables, reference.observables)
    if first_reference is not None and first_reference is not reference and first_reference is not result \
            and result.ok and first_reference.ok:
        entry["vs_first_engine_reference"] = res.compare_to_reference(result.observables, first_reference.observables)
    return entry


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"  # for lmp started from this worker


def _run_task(task: dict) -> dict:
    """One MD run (in a worker process); returns the RunResult dict, wall time and step count."""
    out = Path(task["out"])
    timing = out / TIMING_FILE
    # With resume, run_compare has checked that the folder holds this same run (model, system,
    # settings but steps), else resume is off: a finished run of the same length is reused.
    if task["resume"] and timing.exists() and (out / res.RESULTS_FILE).exists():
        cached = json.loads((out / res.RESULTS_FILE).read_text())
        if json.loads(json.dumps(res.jsonable(task["settings"].as_dict()))) == cached.get("settings"):
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
    out = {"kind": "parity", "label": task["label"], "error": None, "energy_abs_diff_eV": None,
           "force_max_abs_diff_eV_per_A": None, "stress_max_abs_diff_eV_per_A3": None}
    try:
        from ase.calculators.lammpslib import LAMMPSlib

        from mdval.data.teachers import load_lammps
        from mdval.deploy.calculator import Calculator
        atoms = build_system(**task["system"])
        atoms.rattle(0.05, seed=7)
        a, b = atoms.copy(), atoms.copy()
        a.calc = Calculator(str(task["model"].path))
        load_lammps()
        elements = sorted(set(atoms.get_chemical_symbols()))
        b.calc = LAMMPSlib(lmpcmds=["pair_style taafs",
                                    f"pair_coeff * * {task['model'].path} {' '.join(elements)}"],
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
    """Every (engine, protocol, potential) run of ``workflow`` (:func:`runs`) as a task dict."""
    return [{"kind": "md", "engine": engine, "protocol": settings.kind, "role": role, "potential": potential,
             "label": "reference" if role == "reference" else potential.label, "settings": settings,
             "system": workflow.system, "out": str(folder), "np": workflow.np, "resume": resume}
            for engine, settings, role, potential, folder in runs(workflow)]


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


def run_entries(workflow, md: list[dict]) -> list[dict]:
    """The ``summary.json`` entries of finished md tasks (:func:`run_entry`, plus
    label, wall time and steps): each model against its engine's reference and the first engine's."""
    refs = {(t["engine"], t["protocol"]): RunResult(**t["result"]) for t in md if t["role"] == "reference"}
    first_engine = workflow.engines[0]
    entries = []
    for t in md:
        ref = refs.get((t["engine"], t["protocol"])) if t["role"] == "model" else None
        first = refs.get((first_engine, t["protocol"])) if t["engine"] != first_engine else None
        entry = run_entry(RunResult(**t["result"]), t["potential"], t["role"], ref, first)
        entry.update(label=t["label"], wall_s=t["wall_s"], steps=t["steps"])
        entries.append(entry)
    return entries


def run_matrix(workflow, *, jobs: int = 2, resume: bool = True, progress: bool = True, parity: bool = True,
               log=print) -> dict:
    """Run every task of ``workflow`` (parity checks where LAMMPS is an engine) and write its
    ``summary.json``; returns ``{"md": [...], "parity": [...], "runs": [summary entries]}``."""
    tasks = plan(workflow, resume)
    stale = stale_run_folders(workflow) if resume else {}
    for task in tasks:
        if Path(task["out"]) in stale:  # a retrained model or an edited spec: run it again
            log(f"{stale[Path(task['out'])]}: out of date, running it afresh")
            task["resume"] = False
    if parity and "lammps" in workflow.engines:
        tasks += [{"kind": "parity", "label": p.label, "model": p, "system": workflow.system}
                  for p in map(workflow.potential, workflow.models)]
    log(f"{workflow.name}: {len(workflow.models)} model(s) + reference × {len(workflow.protocols)} protocol(s) × "
        f"{len(workflow.engines)} engine(s) = {sum(t['kind'] == 'md' for t in tasks)} MD runs, {jobs} at a time")
    done = execute(tasks, jobs=jobs, progress=progress)
    md = [d for d in done if d["kind"] == "md"]
    entries = run_entries(workflow, md)
    res.write_json_atomic(workflow.output_dir / "summary.json", {
        "name": workflow.name, "source": workflow.source, "models": workflow.models, "reference": workflow.reference,
        "engines": workflow.engines, "runs": entries})
    return {"md": md, "parity": [d for d in done if d["kind"] == "parity"], "runs": entries}
