"""The NVE runs of ``mdval report energy-conservation``: the time-step ladder, its checks and its runs.

A ladder is one potential in NVE (velocity Verlet, after an NVT equilibration) at several time
steps, each for the same physical duration, and optionally a float32 copy of the model at the
first time step (the A/B against float64; mdval/deploy/float32.py). Each rung runs in
``<out>/runs/<label>/`` through an MD engine (ASE or LAMMPS), ``jobs`` at a time in the worker
pool of mdval/md/matrix.py (one at a time, or a single rung, in this process: no worker start-up);
mdval/report/energy_conservation.py renders the finished runs.

Resume, as in ``mdval run``: without ``overwrite`` a finished rung is reused (the engine only
analyses it again) and a killed one goes on from its checkpoint, while a rung folder that holds
another run (other model, system or setting) is refused before anything runs; with
``overwrite`` every rung starts afresh.

Before the runs, :func:`estimate_text` times a few velocity-Verlet steps of the potential in ASE
(one torch thread, as in a worker) and states the runs, the steps and the expected wall time.
While they run, a progress bar (tqdm, on stderr) counts the steps each rung has written (its
``thermo.csv``, or the LAMMPS log) and shows the ETA; when stderr is not a terminal the bar is off
and each finished run prints one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from mdval.md import results as res
from mdval.md import run_folder
from mdval.md.matrix import run_one, run_pool
from mdval.md.protocols import ProtocolSettings, make_settings


@dataclass(frozen=True)
class Rung:
    """One NVE run of the ladder: its label, potential, settings and run folder."""

    label: str
    potential: res.Potential
    settings: ProtocolSettings
    folder: Path


@dataclass(frozen=True)
class Ladder:
    """The rungs, and (float64 label, float32 label) of the A/B pair when there is one."""

    rungs: list[Rung]
    ab: tuple[str, str] | None = None


def nve_settings(
    *,
    timestep_fs: float,
    duration_ps: float,
    equilibration_ps: float,
    temperature_K: float,
    warmup_ps: float,
    seed: int = 1,
    sample_every_fs: float = 10.0,
) -> ProtocolSettings:
    """NVE protocol settings for ``duration_ps`` of NVE (after ``equilibration_ps`` of NVT) at
    time step ``timestep_fs``, sampled every ``sample_every_fs``."""
    steps = max(int(round(duration_ps * 1000.0 / timestep_fs)), 3)
    sample = max(int(round(sample_every_fs / timestep_fs)), 1)
    return make_settings(
        "nve",
        timestep_fs=timestep_fs,
        steps=steps,
        equilibration_steps=int(round(equilibration_ps * 1000.0 / timestep_fs)),
        temperature_K=temperature_K,
        warmup_ps=warmup_ps,
        seed=seed,
        sample_interval=sample,
        trajectory_interval=max(steps // 10, 1),
        checkpoint_interval=max(steps, 1),
    )


def plan(
    spec,
    out,
    *,
    timesteps_fs: list[float],
    duration_ps: float,
    equilibration_ps: float,
    warmup_ps: float,
    temperature_K: float,
    seed: int = 1,
    precision_ab: bool = False,
    overwrite: bool = False,
) -> Ladder:
    """The ladder of the potential ``spec`` (model file, emt:El or lammps:PRESET) in the report
    folder ``out``; with ``precision_ab`` the float32 copy of the model is written (or kept) in
    ``<out>/models/``."""
    from mdval.deploy.float32 import float32_copy

    repeated = sorted({dt for dt in timesteps_fs if timesteps_fs.count(dt) > 1})
    if repeated:
        raise ValueError(
            f"--timesteps-fs repeats {', '.join(f'{dt:g}' for dt in repeated)} fs; give each time step once"
        )
    potential = res.Potential.resolve(spec)
    stem = potential.label.replace(":", "-")
    out = Path(out)

    def rung(label: str, who: res.Potential, dt: float) -> Rung:
        settings = nve_settings(
            timestep_fs=dt,
            duration_ps=duration_ps,
            equilibration_ps=equilibration_ps,
            temperature_K=temperature_K,
            warmup_ps=warmup_ps,
            seed=seed,
        )
        return Rung(label, who, settings, out / "runs" / label.replace(" ", "_").replace("=", ""))

    rungs = [rung(f"{stem} dt={dt:g}fs", potential, dt) for dt in timesteps_fs]
    if not precision_ab:
        return Ladder(rungs)
    if not potential.is_model:
        raise ValueError(f"--precision-ab needs --model (a float64 model file), not the reference {potential.spec}")
    copy = float32_copy(potential.path, out / "models" / f"{stem}-float32.pt", replace=overwrite)
    rungs.append(rung(f"{stem} float32 dt={timesteps_fs[0]:g}fs", res.Potential.resolve(copy), timesteps_fs[0]))
    return Ladder(rungs, (rungs[0].label, rungs[-1].label))


def refuse_other_runs(ladder: Ladder, atoms, engine: str) -> None:
    """Raise :class:`~mdval.md.run_folder.RunFolderError` (one line: the folder, what differs,
    the fix) when a rung's folder holds another run than the one planned."""
    for rung in ladder.rungs:
        why = run_folder.problem(rung.folder, run_folder.identity(atoms, rung.potential, rung.settings, engine))
        if why:
            raise run_folder.RunFolderError(f"{why}; {run_folder.FIX}")


def finished_earlier(rung: Rung) -> bool:
    """Whether the rung's folder holds its finished run (results.json of these settings)."""
    try:
        stored = json.loads((rung.folder / res.RESULTS_FILE).read_text())
    except (OSError, ValueError):
        return False
    return stored.get("settings") == json.loads(json.dumps(res.jsonable(rung.settings.as_dict())))


# ------------------------------------------------------------------------------ estimate
@contextlib.contextmanager
def _one_thread(potential: res.Potential):
    """One thread while the block runs, as in a worker of the pool (mdval.md.matrix): one torch
    thread for a model (two ran 32 atoms 9x slower on a loaded 2-core machine: 110 steps in 8.4 s, not 0.95 s) and
    OMP_NUM_THREADS=1 for an lmp started here."""
    before_env = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    torch = None
    if potential.is_model:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch is not None:
            torch.set_num_threads(before)
        if before_env is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = before_env


def time_steps(
    atoms, potential: res.Potential, timestep_fs: float, *, steps: int = 20, budget_s: float = 3.0
) -> tuple[float, float]:
    """(start-up s, s per step) of velocity Verlet with ``potential`` in ASE on one thread.

    The start-up is building the calculator and two warm-up steps (TorchScript optimises on its
    first calls); then up to ``steps`` steps are timed, or as many as fit in ``budget_s``. The
    atoms are rattled so that every step computes new forces."""
    from ase import units
    from ase.md.verlet import VelocityVerlet

    from mdval.md.ase_engine import ase_calculator

    with _one_thread(potential):
        start = time.perf_counter()
        system = atoms.copy()
        system.rattle(0.05, seed=0)
        system.calc = ase_calculator(potential)
        dynamics = VelocityVerlet(system, timestep=timestep_fs * units.fs)
        dynamics.run(2)
        warm = time.perf_counter()
        done = 0
        while done < steps and (done == 0 or time.perf_counter() - warm < budget_s):
            dynamics.run(1)
            done += 1
        return warm - start, (time.perf_counter() - warm) / done


def makespan(durations: list[float], jobs: int) -> float:
    """Wall time of tasks taken in order by ``jobs`` workers, each task by the first free worker."""
    free = [0.0] * max(min(jobs, len(durations)), 1)
    for duration in durations:
        k = free.index(min(free))
        free[k] += duration
    return max(free)


def duration_text(seconds: float) -> str:
    """A wall time for people: "1.2 s", "40 s", "3.5 min", "1.2 h"."""
    if seconds < 10:
        return f"{seconds:.2g} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.2g} min" if seconds < 600 else f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.2g} h"


def estimate_text(ladder: Ladder, atoms, *, engine: str, jobs: int, reused: list[bool]) -> str:
    """What is about to run and how long it should take (one line), from :func:`time_steps` of
    the first rung's potential at its time step."""
    todo = [r for r, done in zip(ladder.rungs, reused) if not done]
    head = f"energy conservation: {len(ladder.rungs)} NVE run(s)"
    if sum(reused):
        head += f", {sum(reused)} finished earlier (reused)"
    if not todo:
        return head + "; nothing to run"
    steps = [r.settings.total_steps for r in todo]
    first = todo[0]
    startup_s, per_step_s = time_steps(atoms, first.potential, first.settings.timestep_fs)
    wall = makespan([startup_s + n * per_step_s for n in steps], jobs)
    where = "" if engine == "ase" else ", timed in ASE"
    return (
        f"{head}; {len(todo)} to run in {engine}, {min(jobs, len(todo))} at a time: {sum(steps)} steps "
        f"(NVT equilibration + NVE) at {per_step_s * 1000:.2g} ms/step{where} -> about {duration_text(wall)} "
        "of MD"
    )


# ------------------------------------------------------------------------------ runs
def steps_written(folder: Path, engine: str) -> int:
    """The last MD step a run folder shows so far (0 before any): ASE appends ``thermo.csv`` as
    it goes; LAMMPS writes its log (thermo.csv only at the end)."""
    if engine == "lammps":
        from mdval.md.lammps_engine import parse_log

        logs = sorted(folder.glob("log.*.lammps"), key=lambda p: int(p.name.split(".")[1]))
        rows = parse_log(logs[-1].read_text(errors="replace"))[0] if logs else []
        return int(rows[-1]["step"]) if rows else 0
    try:
        tail = (folder / res.THERMO_FILE).read_bytes()[-2048:].decode(errors="replace")
    except OSError:
        return 0
    whole = tail.split("\n")[:-1]  # a row is written with its newline: the text after the last one is cut
    first = whole[-1].split(",", 1)[0] if whole else ""
    return int(first) if first.isdigit() else 0


def _claimed_since(folder: Path, started: float) -> bool:
    """Whether a run took the folder since ``started`` (the engine writes run.json as it starts)."""
    try:
        return (folder / run_folder.RUN_FILE).stat().st_mtime >= started
    except OSError:
        return False


def _run_rung(task: dict) -> dict:
    """One rung (in a worker process): its status, reason, steps and wall time in s."""
    start = time.perf_counter()
    result = run_one(
        task["engine"],
        task["atoms"],
        task["potential"],
        task["settings"],
        task["folder"],
        np=task["np"],
        resume=task["resume"],
    )
    return {
        "status": result.status,
        "reason": result.reason,
        "steps_done": int(result.steps_done),
        "wall_s": time.perf_counter() - start,
    }


def run_ladder(
    ladder: Ladder,
    atoms,
    *,
    engine: str = "ase",
    np_ranks: int = 1,
    jobs: int = 2,
    overwrite: bool = False,
    progress: bool | None = None,
    stream=None,
) -> list[dict]:
    """Run every rung, ``jobs`` at a time (a rung finished earlier is reused unless ``overwrite``);
    per rung {"label", "status", "reason", "steps_done", "wall_s", "reused"}. The estimate, the
    progress bar and one line per finished run go to ``stream`` (stderr); ``progress`` (default:
    whether ``stream`` is a terminal) shows the bar."""
    stream = stream or sys.stderr
    progress = stream.isatty() if progress is None else progress
    rungs = ladder.rungs
    reused = [not overwrite and finished_earlier(r) for r in rungs]
    print(estimate_text(ladder, atoms, engine=engine, jobs=jobs, reused=reused), file=stream, flush=True)
    tracker = _Progress(rungs, reused, engine=engine, stream=stream, bar_shown=progress)
    for k in (k for k, was in enumerate(reused) if was):
        tracker.say(k)
    tasks = [
        {
            "engine": engine,
            "atoms": atoms,
            "potential": rungs[k].potential,
            "settings": rungs[k].settings,
            "folder": rungs[k].folder,
            "np": np_ranks,
            "resume": not overwrite,
        }
        for k in tracker.todo
    ]
    try:
        if len(tasks) == 1 or jobs == 1:  # no worker to start: a few seconds saved
            _run_here(tasks, on_done=tracker.done, on_wait=tracker.poll)
        elif tasks:
            run_pool(_run_rung, tasks, jobs=jobs, on_done=tracker.done, on_wait=tracker.poll, wait_s=1.0)
    finally:
        tracker.bar.close()
    return [{"label": r.label, **o, "reused": was} for r, o, was in zip(rungs, tracker.outcomes, reused)]


class _Progress:
    """What the ladder's runs have done so far, shown on ``stream``: a tqdm bar of the steps the
    rungs have written (when ``bar_shown``) and one line per finished or reused run."""

    def __init__(self, rungs: list[Rung], reused: list[bool], *, engine: str, stream, bar_shown: bool):
        from tqdm import tqdm

        self.rungs, self.reused, self.engine, self.stream, self.bar_shown = rungs, reused, engine, stream, bar_shown
        self.todo = [k for k, was in enumerate(reused) if not was]  # the rungs to run, in task order
        self.totals = [r.settings.total_steps for r in rungs]
        self.steps = [total if was else 0 for total, was in zip(self.totals, reused)]
        self.outcomes: list = [_stored_outcome(r) if was else None for r, was in zip(rungs, reused)]
        self.bar = tqdm(
            total=sum(self.totals),
            initial=sum(self.steps),
            desc="NVE ladder",
            unit="step",
            file=stream,
            disable=not bar_shown,
            dynamic_ncols=True,
        )
        self.started = time.time()
        self.lock = threading.Lock()  # poll() runs in a thread when the rungs run in this process

    def say(self, k: int) -> None:
        """One line on rung ``k``'s outcome."""
        o = self.outcomes[k]
        what = (
            "finished earlier, reused"
            if self.reused[k]
            else (
                f"{o['status']}, {o['steps_done']} steps in {duration_text(o['wall_s'])}"
                + (f": {o['reason']}" if o["reason"] else "")
            )
        )
        line = f"run {sum(o is not None for o in self.outcomes)}/{len(self.rungs)}: {self.rungs[k].label} ({what})"
        if self.bar_shown:
            self.bar.write(line, file=self.stream)  # above the bar, which stays the last line
        else:
            print(line, file=self.stream, flush=True)

    def poll(self) -> None:
        """Move the bar to the steps the running rungs have written."""
        with self.lock:
            for k in self.todo:
                if self.outcomes[k] is None and _claimed_since(self.rungs[k].folder, self.started):
                    self.steps[k] = max(
                        self.steps[k], min(steps_written(self.rungs[k].folder, self.engine), self.totals[k])
                    )
            self.bar.n = sum(self.steps)
            self.bar.refresh()

    def done(self, j: int, outcome: dict) -> None:
        """Task ``j`` (the rung ``todo[j]``) finished with ``outcome``."""
        k = self.todo[j]
        with self.lock:
            self.outcomes[k], self.steps[k] = outcome, self.totals[k]
            self.say(k)
        self.poll()


def _run_here(tasks: list[dict], *, on_done, on_wait, wait_s: float = 1.0) -> None:
    """The tasks one after another in this process, with ``on_wait()`` every ``wait_s`` seconds
    from a thread (the progress bar) and ``on_done(k, outcome)`` after each."""
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(wait_s):
            on_wait()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        for k, task in enumerate(tasks):
            with _one_thread(task["potential"]):
                outcome = _run_rung(task)
            on_done(k, outcome)
    finally:
        stop.set()
        ticker.join()


def _stored_outcome(rung: Rung) -> dict:
    """The outcome of a rung finished earlier, from its results.json."""
    stored = json.loads((rung.folder / res.RESULTS_FILE).read_text())
    return {
        "status": stored.get("status"),
        "reason": stored.get("reason"),
        "steps_done": stored.get("steps_done"),
        "wall_s": None,
    }
