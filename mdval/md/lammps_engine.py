"""The LAMMPS MD engine: NVE / NVT / NPT protocols with ``lmp`` (optionally under ``mpirun -np N``).

    result = run_lammps(atoms, "models/cu.pt", NVTSettings(), "runs/md/cu-nvt", np=2)   # pair_style taafs
    result = run_lammps(atoms, "lammps:Cu_u3.eam", NPTSettings(), "runs/md/eam-npt")    # reference

The input is rendered from ``mdval/resources/md.in`` (placeholders ``@{name}``, so LAMMPS'
own ``${var}`` syntax is untouched). Fixes, with τ_T = ``thermostat_damping_fs`` and
τ_P = ``barostat_damping_fs`` (converted to ps, the metal time unit):

- NVE production: ``fix nve`` (velocity Verlet);
- thermostats: "langevin" → ``fix nve`` + ``fix langevin T T τ_T seed zero yes``; "bussi" →
  ``fix nve`` + ``fix temp/csvr T T τ_T seed``; "nose-hoover-chain" → ``fix nvt temp T T τ_T``;
- NPT production: ``fix npt temp T T τ_T iso P P τ_P`` (MTK equations, Nosé-Hoover chains).

Stability detectors run inside LAMMPS as ``fix halt ... error soft`` (temperature, minimum
distance through ``compute coord/atom`` with the limit as cutoff, volume change); lost atoms
through ``thermo_modify lost error``; non-finite energies from the parsed log. The log is parsed
into ``thermo.csv``, the dumps into ``trajectory.extxyz`` (whole frames only: a frame cut by a kill
is dropped). ``restart N restart.*`` writes restart files; a second call with the same
``output_dir`` resumes from the newest one with ``read_restart`` when the folder holds the same
run (mdval/md/run_folder.py: another run there is refused), and a larger ``steps`` extends the
run (the stochastic thermostats are reseeded with seed + step: the continuation is
statistically, not bitwise, the same). A run that finished is analysed again, not rerun.
results.json's ``timing`` comes from the log (:func:`loop_times`): the production run's "Loop
time" per step, and the rest of lmp's wall time as start-up.

``lmp`` (or ``mpirun``) runs under mdval/md/guard.py, so that it dies with mdval, even when mdval
is killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from string import Template

from mdval import fileio, resources
from mdval.md import guard, run_folder
from mdval.md import results as res
from mdval.md.protocols import ProtocolSettings, RunResult
from mdval.md.stability import Failure

STATE_FILE = "lammps_state.json"
#: LAMMPS' summary of a ``run``: the wall time of its MD steps (set-up before them excluded)
_LOOP_TIME = re.compile(r"^Loop time of (\S+) on (\d+) procs for (\d+) steps", re.MULTILINE)
_LOG_COLUMNS = {
    "Step": "step",
    "Time": "time_ps",
    "PotEng": "epot_eV",
    "KinEng": "ekin_eV",
    "TotEng": "etot_eV",
    "Temp": "temperature_K",
    "Press": "pressure_bar",
    "Volume": "volume_A3",
    "Density": "density_g_cm3",
}


class _AtTemplate(Template):
    delimiter = "@"


def executable(name: str) -> str:
    """``lmp`` / ``mpirun`` next to this Python (the venv), else on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"'{name}' not found next to {sys.executable} or on PATH; install 'lammps[mpi]'")
    return found


def pair_lines(potential: res.Potential, elements: list[str]) -> list[str]:
    """``pair_style``/``pair_coeff`` lines: ``taafs`` for a model file, the preset's (or EAM file's) lines otherwise."""
    if potential.kind == "model":
        return ["pair_style      taafs", f"pair_coeff      * * {potential.path} {' '.join(elements)}"]
    if potential.kind in ("lammps", "eam"):
        from mdval.data.teachers import eam_potential, lammps_preset

        preset = (lammps_preset if potential.kind == "lammps" else eam_potential)(potential.preset)
        if list(preset.elements) != list(elements):
            raise ValueError(f"{preset.name} describes elements {list(preset.elements)}, the structure has {elements}")
        # An EAM file sets its own masses (Cu_u3.eam: 63.55 amu); put back ASE's, which the data file
        # and the ASE engine use, so that densities of one potential agree between the engines.
        from ase.data import atomic_masses, atomic_numbers

        masses = [f"mass            {k} {atomic_masses[atomic_numbers[e]]:.6f}" for k, e in enumerate(elements, 1)]
        return preset.commands() + masses
    raise ValueError(
        f"the LAMMPS engine cannot run '{potential.spec}' (EMT exists only in ASE); use a model file, "
        "a lammps:PRESET reference (e.g. lammps:Cu_u3.eam) or the ASE engine"
    )


def _thermostat_fix(settings: ProtocolSettings, seed: int) -> list[str]:
    T, tau = settings.temperature_K, settings.thermostat_damping_fs / 1000.0
    if settings.thermostat == "langevin":
        return ["fix integrate all nve", f"fix thermostat all langevin {T} {T} {tau} {seed} zero yes"]
    if settings.thermostat == "bussi":
        return ["fix integrate all nve", f"fix thermostat all temp/csvr {T} {T} {tau} {seed}"]
    return [f"fix integrate all nvt temp {T} {T} {tau}"]


def _phases(settings: ProtocolSettings, start_step: int, elements: list[str], segment: int) -> str:
    seed = settings.seed + 1 + start_step  # LAMMPS seeds must be positive
    lines, n_eq, total = [], settings.equilibration_steps, settings.total_steps
    if start_step < n_eq:
        lines += (
            ["# --- equilibration (NVT) ---"]
            + _thermostat_fix(settings, seed)
            + [f"run {n_eq} upto", "unfix integrate"]
        )
        if settings.thermostat != "nose-hoover-chain":
            lines.append("unfix thermostat")
    lines += [
        "# --- production ---",
        f"dump traj all custom {settings.trajectory_interval} traj.{segment}.lammpstrj id type element x y z",
        f"dump_modify traj element {' '.join(elements)} sort id",
    ]
    if settings.kind == "nve":
        lines.append("fix integrate all nve")
    elif settings.kind == "npt":
        T, tau, P = settings.temperature_K, settings.thermostat_damping_fs / 1000.0, settings.pressure_bar
        lines.append(f"fix integrate all npt temp {T} {T} {tau} iso {P} {P} {settings.barostat_damping_fs / 1000.0}")
    else:
        lines += _thermostat_fix(settings, seed + 7)
    lines += [f"run {total} upto", "write_restart restart.final"]
    return "\n".join(lines)


def render_input(
    settings: ProtocolSettings,
    potential: res.Potential,
    elements: list[str],
    *,
    structure: str,
    velocity: bool,
    start_step: int,
    volume0_A3: float,
    segment: int,
    lost: str = "error",
) -> str:
    """The LAMMPS input for one segment of a run (a fresh start or a resume)."""
    limits = settings.limits
    velocity_line = (
        f"velocity all create {settings.temperature_K} {settings.seed + 1} mom yes rot no dist gaussian"
        if velocity
        else "# velocities from the restart file"
    )
    values = {
        "protocol": settings.kind,
        "segment": segment,
        "structure": structure,
        "pair_lines": "\n".join(pair_lines(potential, elements)),
        "skin_A": 1.0,
        "timestep_ps": settings.timestep_fs / 1000.0,
        "min_distance_A": limits.min_distance_A,
        "volume0_A3": repr(volume0_A3),
        "check_interval": limits.check_interval,
        "temperature_limit_K": limits.temperature_limit_factor * settings.temperature_K,
        "max_volume_change": limits.max_volume_change,
        "lost": lost,
        "sample_interval": settings.sample_interval,
        "velocity": velocity_line,
        "checkpoint_interval": settings.checkpoint_interval,
        "phases": _phases(settings, start_step, elements, segment),
    }
    return _AtTemplate(resources.path("md.in").read_text()).substitute(values)


def parse_log(text: str) -> tuple[list[dict], list[str]]:
    """Thermo rows (dicts keyed by thermo-CSV columns, plus ``nclose``) and ERROR/halt lines of a log."""
    rows, events, header = [], [], None
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "Step" and "PotEng" in words:
            header = words
            continue
        if line.startswith("ERROR") or "Fix halt condition" in line or line.startswith("Loop time"):
            if not line.startswith("Loop time"):
                events.append(line.strip())
            header = None if line.startswith("Loop time") else header
            continue
        if header and len(words) == len(header):
            try:
                values = [float(w) for w in words]
            except ValueError:
                continue
            row = {_LOG_COLUMNS.get(h, h.replace("c_", "")): v for h, v in zip(header, values)}
            row["step"] = int(row["step"])
            rows.append(row)
    return rows, events


def loop_times(text: str, equilibration_steps: int) -> list[tuple[float, int, bool]]:
    """(seconds, steps, production) of each ``run`` of a log, from LAMMPS' "Loop time of X on N
    procs for M steps" line: the wall time of the run's M steps, without its set-up (neighbour
    lists and forces before the first step). A run is production when its thermo rows end
    after the equilibration steps."""
    found, start = [], 0
    for match in _LOOP_TIME.finditer(text):
        rows = parse_log(text[start : match.start()])[0]
        found.append(
            (float(match.group(1)), int(match.group(3)), bool(rows) and rows[-1]["step"] > equilibration_steps)
        )
        start = match.end()
    return found


def _timing(log: Path, settings: ProtocolSettings, wall_s: float) -> dict:
    """:func:`mdval.md.results.timing_record` of the segment that wrote ``log`` in ``wall_s``:
    start-up is the wall time outside every run's steps (MPI, plugin and model loading, each
    run's set-up, tear-down); steady state the production runs' Loop time per step (the NVT
    equilibration before them is the warm-up)."""
    loops = loop_times(log.read_text(errors="replace"), settings.equilibration_steps) if log.exists() else []
    production = [(seconds, steps) for seconds, steps, is_production in loops if is_production]
    return res.timing_record(
        wall_s - sum(seconds for seconds, _, _ in loops),
        sum(s for s, _ in production),
        sum(n for _, n in production),
        "LAMMPS: wall time of lmp outside its runs' steps; Loop time of the production run",
    )


def _failure_from(events: list[str], rows: list[dict], settings: ProtocolSettings) -> Failure | None:
    dt_ps = settings.timestep_fs / 1000.0
    for row in rows:
        if not all(math.isfinite(row[k]) for k in ("epot_eV", "etot_eV", "temperature_K")):
            return Failure(
                "non_finite",
                f"non-finite energy in the LAMMPS thermo output at step {row['step']} ({row['step'] * dt_ps:.4g} ps)",
                row["step"],
                row["step"] * dt_ps,
            )
    for line in events:
        match = re.search(r"fix-id halt_(\w+) met on step (\d+) with value (\S+)", line)
        if match:
            detector, step, value = match.group(1), int(match.group(2)), float(match.group(3))
            at = f"at step {step} ({step * dt_ps:.4g} ps)"
            limits = settings.limits
            reason = {
                "temperature": f"temperature {value:.0f} K exceeded limit "
                f"{limits.temperature_limit_factor * settings.temperature_K:.0f} K {at}",
                "min_distance": f"an atom has {value:.0f} neighbour(s) closer than the limit {limits.min_distance_A} Å {at}",
                "volume": f"volume changed by {100 * value:.1f}%, beyond the limit ±{100 * limits.max_volume_change:.0f}% {at}",
            }[detector]
            return Failure(detector, reason, step, step * dt_ps)
        if line.startswith("ERROR"):
            step = rows[-1]["step"] if rows else 0
            detector = "lost_atoms" if "Lost atoms" in line else "engine_error"
            return Failure(detector, f"LAMMPS {line} after step {step} ({step * dt_ps:.4g} ps)", step, step * dt_ps)
    return None


def _restarts(out: Path, state: dict) -> list[tuple[int, Path]]:
    """(step, file) of the run's restart files, oldest first: ``restart.<step>``, and
    ``restart.final`` when the state says the run finished (a failed segment writes one too)."""
    found = [(int(p.name.split(".")[1]), p) for p in out.glob("restart.*") if p.name.split(".")[1].isdigit()]
    if state.get("finished_step") is not None and (out / "restart.final").exists():
        found.append((state["finished_step"], out / "restart.final"))
    # LAMMPS writes a restart file in place: a kill during the write leaves it cut short. Every
    # restart of one run has the same size (same atoms, same fix state), so a smaller one is cut.
    full = max((path.stat().st_size for _, path in found), default=0)
    return sorted((step, path) for step, path in found if path.stat().st_size == full)


def _collect(out: Path, settings: ProtocolSettings, upto_step: int | None = None) -> list[dict]:
    """Thermo rows of every segment log, the later segment winning for a step, with phases."""
    by_step: dict[int, dict] = {}
    for log in sorted(out.glob("log.*.lammps"), key=lambda p: int(p.name.split(".")[1])):
        for row in parse_log(log.read_text(errors="replace"))[0]:
            by_step[row["step"]] = row
    rows = [by_step[s] for s in sorted(by_step) if upto_step is None or s <= upto_step]
    for row in rows:
        row["phase"] = "equilibration" if row["step"] < settings.equilibration_steps else "production"
    return rows


def _dump_frame_lines(lines: list[str], k: int) -> int:
    """Lines of the ``dump custom`` frame at line ``k``: 9 header lines, then one per atom."""
    if lines[k] != "ITEM: TIMESTEP" or lines[k + 2] != "ITEM: NUMBER OF ATOMS":
        raise ValueError(f"no dump frame starts at line {k + 1}")
    return 9 + int(lines[k + 3])


def _trajectory(out: Path, settings: ProtocolSettings) -> None:
    """All dump segments into one extxyz with ``step``/``time_ps`` in each frame's info (whole
    frames only: a frame cut by a kill is dropped, the ones before it are kept)."""
    from ase.io import read, write

    frames: dict[int, object] = {}
    for dump in sorted(out.glob("traj.*.lammpstrj"), key=lambda p: int(p.name.split(".")[1])):
        text = res.whole_frames(dump.read_text(), _dump_frame_lines)
        steps = [int(s) for s in re.findall(r"ITEM: TIMESTEP\n\s*(\d+)", text)]
        images = read(io.StringIO(text), ":", format="lammps-dump-text") if text else []
        for step, atoms in zip(steps, images):
            atoms.calc = None
            atoms.info.update(step=step, time_ps=step * settings.timestep_fs / 1000.0)
            frames[step] = atoms
    with fileio.atomic_path(out / res.TRAJECTORY_FILE, suffix=".extxyz") as tmp:
        write(tmp, [frames[s] for s in sorted(frames)], format="extxyz") if frames else tmp.write_text("")


def run_lammps(
    atoms,
    potential,
    settings: ProtocolSettings,
    output_dir,
    *,
    np: int = 1,
    resume: bool = True,
    timeout_s: float | None = None,
    lost: str = "error",
    provenance_extra: dict | None = None,
) -> RunResult:
    """Run one protocol in LAMMPS and return its :class:`RunResult` (never raises on an MD failure).

    ``np`` > 1 runs ``mpirun -np np lmp``; ``timeout_s`` bounds the wall time of the process (a
    timeout is recorded as a failure). With ``resume`` the run continues from the newest restart
    file in ``output_dir`` if there is one, and raises
    :class:`~mdval.md.run_folder.RunFolderError` if the folder holds another run; without it the
    folder's run files are deleted and the run starts afresh.
    """
    potential = res.Potential.resolve(potential)
    out = Path(output_dir)
    elements = sorted(set(atoms.get_chemical_symbols()))
    if potential.is_model:
        elements = [e for e in potential.type_names if e in elements] or elements
    pair_lines(potential, elements)  # a potential LAMMPS cannot run fails here, before the folder is touched
    with run_folder.claim(out, run_folder.identity(atoms, potential, settings, "lammps"), resume=resume):
        segment = _next_segment(out, atoms, potential, settings, elements, lost)
        command = [
            executable("lmp"),
            "-nocite",
            "-in",
            f"in.{segment['number']}.lammps",
            "-log",
            f"log.{segment['number']}.lammps",
            "-screen",
            "none",
        ]
        if np > 1:
            command = [executable("mpirun"), "-np", str(np)] + command
        launched = time.perf_counter()
        proc = _launch(command, out, timeout_s) if segment["run"] else None
        wall_s = time.perf_counter() - launched
        rows, failure = _outcome(out, settings, segment, proc, timeout_s)
        if segment["run"] and failure is None:  # finished: a next call of this length has nothing to run
            state = json.loads((out / STATE_FILE).read_text())
            res.write_json_atomic(out / STATE_FILE, {**state, "finished_step": settings.total_steps})
        fileio.write_text(out / res.THERMO_FILE, res.thermo_csv(rows))
        _trajectory(out, settings)
        extra = {
            "resumed_from_step": segment["resumed_from"],
            "mpi_ranks": np,
            "command": " ".join(command[-8:]),
            "input": f"in.{segment['number']}.lammps",
            **(provenance_extra or {}),
        }
        last_step = rows[-1]["step"] if rows else segment["start_step"]
        timing = _timing(out / f"log.{segment['number']}.lammps", settings, wall_s) if segment["run"] else None
        return res.finish(
            out,
            settings,
            potential,
            "lammps",
            len(atoms),
            failure,
            failure.step if failure else last_step,
            extra,
            timing,
        )


def _next_segment(
    out: Path, atoms, potential: res.Potential, settings: ProtocolSettings, elements: list[str], lost: str
) -> dict:
    """Write the input of the next segment of the run in ``out``: a resume from its newest restart
    file, or a fresh start. Returns the segment's ``number``, ``start_step``, ``resumed_from``
    and ``run`` (False when the run finished before: its files are only analysed again)."""
    from ase.io import write

    state_path = out / STATE_FILE
    state = json.loads(state_path.read_text()) if state_path.exists() else None
    if state and state.get("finished_step") == settings.total_steps:
        return {
            "number": state["segments"],
            "start_step": settings.total_steps,
            "resumed_from": settings.total_steps,
            "run": False,
        }
    restarts = _restarts(out, state) if state else []
    if restarts:
        start_step, restart_file = restarts[-1]
        run_folder.refuse_shorter(out, start_step, settings)
        (out / res.RESULTS_FILE).unlink(missing_ok=True)  # the run goes on: the results of its shorter self are stale
        structure, velocity = f"read_restart    {restart_file.name}", False
        segment, volume0, resumed_from = state["segments"] + 1, state["volume0_A3"], start_step
    else:
        run_folder.reset(out)  # what a start killed before its first restart file wrote
        write(out / "structure.data", atoms, format="lammps-data", specorder=elements, masses=True, units="metal")
        structure, velocity, start_step, segment = "read_data       structure.data", True, 0, 1
        volume0, resumed_from = float(atoms.get_volume()), None
    res.write_json_atomic(state_path, {"segments": segment, "volume0_A3": volume0, "elements": elements})
    text = render_input(
        settings,
        potential,
        elements,
        structure=structure,
        velocity=velocity,
        start_step=start_step,
        volume0_A3=volume0,
        segment=segment,
        lost=lost,
    )
    fileio.write_text(out / f"in.{segment}.lammps", text)
    return {"number": segment, "start_step": start_step, "resumed_from": resumed_from, "run": True}


def _launch(command: list[str], cwd: Path, timeout_s: float | None) -> subprocess.CompletedProcess | None:
    """Run ``command`` in ``cwd`` under the guard (mdval/md/guard.py); None on a timeout.

    The guard leads a process group of its own; on a timeout, Ctrl-C or any error here the whole
    group is killed, not only the guard (``lmp`` is a script that starts the real binary). The
    kernel signals the guard when the thread that started it ends, so call this from a thread
    that lives as long as the run (the main thread, as the CLI and compare's workers do).
    """
    proc = subprocess.Popen(
        guard.wrap(command), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except BaseException as exc:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        if isinstance(exc, subprocess.TimeoutExpired):
            return None
        raise
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def _outcome(
    out: Path, settings: ProtocolSettings, segment: dict, proc, timeout_s
) -> tuple[list[dict], Failure | None]:
    """Thermo rows of the whole run (up to a failure) and the failure of this segment, if any."""
    rows = _collect(out, settings)
    if not segment["run"]:
        return rows, None
    log = out / f"log.{segment['number']}.lammps"
    failure = _failure_from(parse_log(log.read_text(errors="replace"))[1] if log.exists() else [], rows, settings)
    last_step = rows[-1]["step"] if rows else segment["start_step"]
    dt_ps = settings.timestep_fs / 1000.0
    if failure is None and proc is None:
        failure = Failure(
            "engine_error",
            f"LAMMPS exceeded the timeout of {timeout_s} s at step {last_step}",
            last_step,
            last_step * dt_ps,
        )
    elif failure is None and proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:]
        failure = Failure(
            "engine_error",
            f"LAMMPS exited with code {proc.returncode} after step {last_step}: {' | '.join(tail)}",
            last_step,
            last_step * dt_ps,
        )
    if failure is not None:  # keep rows up to the failure
        rows = [r for r in rows if r["step"] <= failure.step] or rows
    return rows, failure
