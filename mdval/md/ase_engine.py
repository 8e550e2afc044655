"""The ASE MD engine: NVE / NVT / NPT protocols (mdval/md/protocols.py) with any ASE calculator.

    result = run_ase(atoms, "models/cu.pt", NVESettings(steps=2000), "runs/md/cu-nve")
    result = run_ase(atoms, "emt:Cu", NVTSettings(), "runs/md/emt-nvt")     # the reference

Integrators (ASE, time step Δt = ``timestep_fs``):

- NVE: velocity Verlet (``ase.md.verlet.VelocityVerlet``), which is symplectic and time
  reversible: its energy error is bounded and O(Δt²), with no systematic drift for smooth forces.
- NVT: ``Langevin`` (friction γ = 1/τ_T), ``Bussi`` (τ_T) or ``NoseHooverChainNVT`` (τ_T, chain 3),
  τ_T = ``thermostat_damping_fs``.
- NPT: ``IsotropicMTKNPT`` (Nosé-Hoover chain τ_T, MTK barostat τ_P = ``barostat_damping_fs``,
  external pressure ``pressure_bar``).

Outputs in ``output_dir``: ``thermo.csv`` (columns in mdval/md/results.py), ``trajectory.extxyz``
(production frames every ``trajectory_interval`` steps, with ``step`` and ``time_ps`` in the frame
info), ``checkpoint.pkl`` (positions, momenta, cell, step, RNG state and integrator state, written
atomically every ``checkpoint_interval`` steps) and ``results.json``. A second call with the same
``output_dir`` resumes from the checkpoint when the folder holds the same run (mdval/md/run_folder.py:
another run there is refused), and a larger ``steps`` extends the run; thermo rows and frames
written after the checkpoint are dropped first, so the files read as one uninterrupted run. With a
Langevin or Bussi thermostat the RNG state is restored too, so a resumed run follows the same
trajectory as an uninterrupted one. results.json's ``timing`` is the cost of the call: start-up
until its first MD step, and the wall time per production step after the first
:data:`UNTIMED_PRODUCTION_STEPS` (:class:`_StepClock`).

The checkpoint is a Python pickle: only resume from checkpoints you wrote yourself.
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np
from ase import units

from mdval import fileio
from mdval.md import results as res
from mdval.md import run_folder
from mdval.md.protocols import ProtocolSettings, RunResult
from mdval.md.stability import Failure, StabilityMonitor

CHECKPOINT_FILE = "checkpoint.pkl"
#: production steps run before the steady-state clock starts: TorchScript optimises a model on its
#: first calls, and a new integrator allocates its state
UNTIMED_PRODUCTION_STEPS = 10
_DYN_STATE = ("_thermostat", "_barostat", "_eps", "_p_eps", "_volume0", "_cell0", "transferred_energy")


def ase_calculator(potential: res.Potential, *, device: str = "cpu", threads: int | None = None):
    """The ASE calculator of a potential: mdval's for a model file, EMT, ASE's EAM or the LAMMPS preset otherwise."""
    if potential.kind == "model":
        from mdval.deploy.calculator import Calculator

        return Calculator(str(potential.path), device=device, threads=threads)
    from mdval.data.teachers import eam_calculator, emt_calculator, lammps_calculator, lammps_preset

    if potential.kind == "emt":
        return emt_calculator(potential.element or "Cu")
    if potential.kind == "eam":
        return eam_calculator(potential.preset)
    return lammps_calculator(lammps_preset(potential.preset))


def _make_dynamics(atoms, settings: ProtocolSettings, phase: str, rng):
    from ase.md.bussi import Bussi
    from ase.md.langevin import Langevin
    from ase.md.nose_hoover_chain import IsotropicMTKNPT, NoseHooverChainNVT
    from ase.md.verlet import VelocityVerlet

    dt = settings.timestep_fs * units.fs
    tau_t = settings.thermostat_damping_fs * units.fs
    if phase == "production" and settings.kind == "nve":
        return VelocityVerlet(atoms, timestep=dt)
    if phase == "production" and settings.kind == "npt":
        return IsotropicMTKNPT(
            atoms,
            timestep=dt,
            temperature_K=settings.temperature_K,
            pressure_au=settings.pressure_bar * units.bar,
            tdamp=tau_t,
            pdamp=settings.barostat_damping_fs * units.fs,
        )
    if settings.thermostat == "langevin":
        return Langevin(
            atoms, timestep=dt, temperature_K=settings.temperature_K, friction=1.0 / tau_t, fixcm=False, rng=rng
        )
    if settings.thermostat == "bussi":
        return Bussi(atoms, timestep=dt, temperature_K=settings.temperature_K, taut=tau_t, rng=rng)
    return NoseHooverChainNVT(atoms, timestep=dt, temperature_K=settings.temperature_K, tdamp=tau_t)


def _pickle_atomic(path: Path, data) -> None:
    fileio.write_bytes(path, pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))


def _state_row(atoms, step: int, settings: ProtocolSettings, phase: str) -> dict:
    epot = float(atoms.get_potential_energy())
    ekin = float(atoms.get_kinetic_energy())
    volume = float(atoms.get_volume())
    try:
        stress = atoms.get_stress(include_ideal_gas=True)
        pressure = float(-np.mean(stress[:3]) / units.bar)
    except Exception:  # a calculator without stress: the pressure is unknown, not an error
        pressure = float("nan")
    return {
        "step": step,
        "time_ps": step * settings.timestep_fs / 1000.0,
        "phase": phase,
        "epot_eV": epot,
        "ekin_eV": ekin,
        "etot_eV": epot + ekin,
        "temperature_K": float(atoms.get_temperature()),
        "pressure_bar": pressure,
        "volume_A3": volume,
        "density_g_cm3": res.obs.density_g_cm3(float(atoms.get_masses().sum()), volume),
    }


def _truncate_outputs(out: Path, step: int) -> None:
    """Drop thermo rows and frames beyond ``step`` (written after the last checkpoint)."""
    from ase.io import write

    thermo = out / res.THERMO_FILE
    if thermo.exists():
        lines = thermo.read_text().splitlines(keepends=True)
        # a row without its newline was cut by the kill; the next row would be appended onto it
        kept = lines[:1] + [
            ln for ln in lines[1:] if ln.endswith("\n") and ln.strip() and int(ln.split(",", 1)[0]) <= step
        ]
        fileio.write_text(thermo, "".join(kept))
    traj = out / res.TRAJECTORY_FILE
    if traj.exists():
        frames = [f for f in res.read_trajectory(traj) if int(f.info.get("step", 0)) <= step]
        with fileio.atomic_path(traj, suffix=".extxyz") as tmp:
            write(tmp, frames, format="extxyz") if frames else tmp.write_text("")


def run_ase(
    atoms,
    potential,
    settings: ProtocolSettings,
    output_dir,
    *,
    calculator=None,
    resume: bool = True,
    device: str = "cpu",
    threads: int | None = None,
    provenance_extra: dict | None = None,
) -> RunResult:
    """Run one protocol in ASE and return its :class:`RunResult` (never raises on an MD failure).

    ``potential`` is a :class:`~mdval.md.results.Potential` or a spec it resolves (model path,
    ``emt:Cu``, ``lammps:Cu_u3.eam``); ``calculator`` overrides the calculator built from it (any ASE
    calculator). ``atoms`` is the starting structure (not modified). With ``resume`` the run
    continues from the checkpoint in ``output_dir`` if there is one, and raises
    :class:`~mdval.md.run_folder.RunFolderError` if the folder holds another run; without it
    the folder's run files are deleted and the run starts afresh.
    """
    started = time.perf_counter()
    potential = res.Potential.resolve(potential)
    out = Path(output_dir)
    atoms = atoms.copy()
    # built first, so that a bad model file fails before the folder is touched
    atoms.calc = calculator if calculator is not None else ase_calculator(potential, device=device, threads=threads)
    with run_folder.claim(out, run_folder.identity(atoms, potential, settings, "ase"), resume=resume):
        return _run(atoms, potential, settings, out, provenance_extra or {}, started)


def _start(atoms, settings: ProtocolSettings, out: Path, rng) -> tuple[int, float, dict | None, int | None]:
    """Restore the checkpoint in ``out`` into ``atoms`` and ``rng``, or thermalise a fresh start.

    Returns (step, reference volume in Å³, integrator state, step resumed from or None).
    """
    from ase.md import velocitydistribution as velocities
    from ase.md.velocitydistribution import Stationary

    ckpt_path = out / CHECKPOINT_FILE
    if ckpt_path.exists():
        with open(ckpt_path, "rb") as handle:
            ckpt = pickle.load(handle)
        step = ckpt["step"]
        run_folder.refuse_shorter(out, step, settings)
        atoms.set_cell(ckpt["cell"])
        atoms.set_positions(ckpt["positions"])
        atoms.set_momenta(ckpt["momenta"])
        rng.bit_generator.state = ckpt["rng_state"]
        if step < settings.total_steps:  # the run goes on: a results.json of its shorter self is stale
            (out / res.RESULTS_FILE).unlink(missing_ok=True)
        _truncate_outputs(out, step)
        return step, ckpt["reference_volume_A3"], ckpt["dyn_state"], step
    run_folder.reset(out)  # what a start killed before its first checkpoint wrote
    # ASE >= 3.29 names it thermalize_momenta (MaxwellBoltzmannDistribution is deprecated).
    thermalize = getattr(velocities, "thermalize_momenta", velocities.MaxwellBoltzmannDistribution)
    thermalize(atoms, temperature_K=settings.temperature_K, rng=rng)
    Stationary(atoms)
    return 0, float(atoms.get_volume()), None, None


class _StepClock:
    """The cost of one call's MD: start-up (from ``started`` to its first MD step) and the wall time
    of its production steps from the first loop boundary at or after ``timed_from_step`` on,
    everything the loop does included (thermo rows, frames, checkpoints), as LAMMPS' Loop time."""

    def __init__(self, started: float, timed_from_step: int):
        self.started, self.timed_from_step = started, timed_from_step
        self.startup_s: float | None = None
        self.mark: tuple[float, int] | None = None  # (time, step) where the steady clock started
        self.last: tuple[float, int] | None = None

    def stepping(self) -> None:
        if self.startup_s is None:
            self.startup_s = time.perf_counter() - self.started

    def reached(self, step: int) -> None:
        now = (time.perf_counter(), step)
        if self.mark is None and step >= self.timed_from_step:
            self.mark = now
        self.last = now

    def record(self) -> dict | None:
        """:func:`mdval.md.results.timing_record`, or None when this call ran no MD step."""
        if self.startup_s is None:
            return None
        steady_s, steps = (self.last[0] - self.mark[0], self.last[1] - self.mark[1]) if self.mark else (0.0, 0)
        return res.timing_record(
            self.startup_s,
            steady_s,
            steps,
            f"ASE: start-up until the first MD step; production steps after the first "
            f"{UNTIMED_PRODUCTION_STEPS} of this call, output included",
        )


def _run(
    atoms, potential: res.Potential, settings: ProtocolSettings, out: Path, provenance_extra: dict, started: float
) -> RunResult:
    rng = np.random.default_rng(settings.seed)
    step, volume0, dyn_state, resumed_from = _start(atoms, settings, out, rng)
    clock = _StepClock(started, max(step, settings.equilibration_steps) + UNTIMED_PRODUCTION_STEPS)
    loop = _StepLoop(atoms, settings, out, rng, volume0, clock, step, dyn_state)
    thermo_file = out / res.THERMO_FILE
    new_file = not thermo_file.exists() or thermo_file.stat().st_size == 0
    with open(thermo_file, "a") as thermo:
        if new_file:
            thermo.write(",".join(res.THERMO_COLUMNS) + "\n")
        try:
            if resumed_from is None:
                _write_row(thermo, _state_row(atoms, 0, settings, loop.phase_of(0)))
            loop.run(thermo)
        except Exception as exc:  # the calculator or integrator gave up: a failure, not a crash
            time_ps = loop.step * settings.timestep_fs / 1000.0
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            loop.failure = Failure(
                "engine_error",
                f"{type(exc).__name__}: {message} near step {loop.step} ({time_ps:.4g} ps)",
                loop.step,
                time_ps,
            )
    return res.finish(
        out,
        settings,
        potential,
        "ase",
        len(atoms),
        loop.failure,
        loop.step,
        {"resumed_from_step": resumed_from, **provenance_extra},
        clock.record(),
    )


def _write_row(thermo, row: dict) -> None:
    thermo.write(res.thermo_csv([row]).split("\n", 1)[1])


class _StepLoop:
    """The MD steps of one call, from ``step`` to the run's total: the integrator runs from event
    to event (a thermo row, a stability check, a frame, a checkpoint, the end of the
    equilibration) and each event is handled in turn. ``step`` is the last step reached and
    ``failure`` the stability monitor's verdict, also when :meth:`run` raises."""

    def __init__(
        self,
        atoms,
        settings: ProtocolSettings,
        out: Path,
        rng,
        volume0: float,
        clock: _StepClock,
        step: int,
        dyn_state: dict | None,
    ):
        self.atoms, self.settings, self.out, self.rng, self.volume0, self.clock = (
            atoms,
            settings,
            out,
            rng,
            volume0,
            clock,
        )
        self.monitor = StabilityMonitor(
            settings.limits, temperature_K=settings.temperature_K, reference_volume_A3=volume0
        )
        self.step = step
        self.failure: Failure | None = None
        self.dyn, self.dyn_phase = None, None
        self.dyn_state = dyn_state  # the checkpoint's integrator state, restored into the first integrator

    def phase_of(self, s: int) -> str:
        return "equilibration" if s < self.settings.equilibration_steps else "production"

    def events_after(self, s: int) -> int:
        settings = self.settings
        intervals = (
            settings.sample_interval,
            settings.limits.check_interval,
            settings.checkpoint_interval,
            settings.trajectory_interval,
        )
        nxt = min((s // k + 1) * k for k in intervals)
        if s < settings.equilibration_steps:
            nxt = min(nxt, settings.equilibration_steps)
        return min(nxt, settings.total_steps)

    def run(self, thermo) -> None:
        """Step until the run's total or a failure, writing to the open ``thermo`` file."""
        total = self.settings.total_steps
        while self.step < total and self.failure is None:
            self._advance()
            self._observe(thermo)
            if self.failure:
                break
            self._save(thermo)
            self.clock.reached(self.step)

    def _advance(self) -> None:
        """Integrate to the next event, with a new integrator where the phase changes."""
        phase = self.phase_of(self.step)
        if self.dyn is None or phase != self.dyn_phase:
            self.dyn, self.dyn_phase = _make_dynamics(self.atoms, self.settings, phase, self.rng), phase
            if self.dyn_state is not None and self.dyn_state.get("phase") == phase:
                for name, value in self.dyn_state["attrs"].items():
                    setattr(self.dyn, name, value)
            self.dyn_state = None
        target = self.events_after(self.step)
        self.clock.stepping()
        self.dyn.run(target - self.step)
        self.step = target

    def _observe(self, thermo) -> None:
        """The stability check and the thermo row the step is due for (a failure's row always)."""
        step, total, atoms, settings = self.step, self.settings.total_steps, self.atoms, self.settings
        phase_now = self.phase_of(step) if step < total else "production"
        row = None
        if step % settings.limits.check_interval == 0 or step == total:
            row = _state_row(atoms, step, settings, phase_now)
            self.failure = self.monitor.check(
                step=step,
                time_ps=step * settings.timestep_fs / 1000.0,
                energy_eV=row["epot_eV"],
                forces=atoms.get_forces(),
                temperature_K=row["temperature_K"],
                positions=atoms.positions,
                cell=atoms.cell.array,
                pbc=atoms.pbc,
                volume_A3=row["volume_A3"],
            )
        if step % settings.sample_interval == 0 or step == total or self.failure:
            _write_row(thermo, row or _state_row(atoms, step, settings, phase_now))
            thermo.flush()

    def _save(self, thermo) -> None:
        """The trajectory frame and the checkpoint the step is due for."""
        from ase.io import write

        step, n_equil, settings = self.step, self.settings.equilibration_steps, self.settings
        if step >= n_equil and (step - n_equil) % settings.trajectory_interval == 0:
            frame = self.atoms.copy()
            frame.calc = None
            frame.info.update(step=step, time_ps=step * settings.timestep_fs / 1000.0)
            write(self.out / res.TRAJECTORY_FILE, frame, format="extxyz", append=True)
        if step % settings.checkpoint_interval == 0 or step == settings.total_steps:
            thermo.flush()
            attrs = {n: getattr(self.dyn, n) for n in _DYN_STATE if hasattr(self.dyn, n)}
            _pickle_atomic(
                self.out / CHECKPOINT_FILE,
                {
                    "step": step,
                    "positions": self.atoms.get_positions(),
                    "momenta": self.atoms.get_momenta(),
                    "cell": self.atoms.cell.array.copy(),
                    "rng_state": self.rng.bit_generator.state,
                    "reference_volume_A3": self.volume0,
                    "dyn_state": {"phase": self.dyn_phase, "attrs": attrs},
                },
            )
