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
trajectory as an uninterrupted one.

The checkpoint is a Python pickle: only resume from checkpoints you wrote yourself.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from ase import units

from mdval import fileio
from mdval.md import results as res
from mdval.md import run_folder
from mdval.md.protocols import ProtocolSettings, RunResult
from mdval.md.stability import Failure, StabilityMonitor

CHECKPOINT_FILE = "checkpoint.pkl"
_DYN_STATE = ("_thermostat", "_barostat", "_eps", "_p_eps", "_volume0", "_cell0", "transferred_energy")


def ase_calculator(potential: res.Potential, *, device: str = "cpu", threads: int | None = None):
    """The ASE calculator of a potential: mdval's for a model file, EMT or the LAMMPS preset otherwise."""
    if potential.kind == "model":
        from mdval.deploy.calculator import Calculator

        return Calculator(str(potential.path), device=device, threads=threads)
    from mdval.data.teachers import emt_calculator, lammps_calculator, lammps_preset

    if potential.kind == "emt":
        return emt_calculator(potential.element or "Cu")
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
        return IsotropicMTKNPT(atoms, timestep=dt, temperature_K=settings.temperature_K,
                               pressure_au=settings.pressure_bar * units.bar, tdamp=tau_t,
                               pdamp=settings.barostat_damping_fs * units.fs)
    if settings.thermostat == "langevin":
        return Langevin(atoms, timestep=dt, temperature_K=settings.temperature_K, friction=1.0 / tau_t,
                        fixcm=False, rng=rng)
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
    return {"step": step, "time_ps": step * settings.timestep_fs / 1000.0, "phase": phase, "epot_eV": epot,
            "ekin_eV": ekin, "etot_eV": epot + ekin, "temperature_K": float(atoms.get_temperature()),
            "pressure_bar": pressure, "volume_A3": volume,
            "density_g_cm3": res.obs.density_g_cm3(float(atoms.get_masses().sum()), volume)}


def _truncate_outputs(out: Path, step: int) -> None:
    """Drop thermo rows and frames beyond ``step`` (written after the last checkpoint)."""
    from ase.io import write

    thermo = out / res.THERMO_FILE
    if thermo.exists():
        lines = thermo.read_text().splitlines(keepends=True)
        # a row without its newline was cut by the kill; the next row would be appended onto it
        kept = lines[:1] + [ln for ln in lines[1:] if ln.endswith("\n") and ln.strip()
                            and int(ln.split(",", 1)[0]) <= step]
        fileio.write_text(thermo, "".join(kept))
    traj = out / res.TRAJECTORY_FILE
    if traj.exists():
        frames = [f for f in res.read_trajectory(traj) if int(f.info.get("step", 0)) <= step]
        with fileio.atomic_path(traj, suffix=".extxyz") as tmp:
            write(tmp, frames, format="extxyz") if frames else tmp.write_text("")


def run_ase(atoms, potential, settings: ProtocolSettings, output_dir, *, calculator=None, resume: bool = True,
            device: str = "cpu", threads: int | None = None, provenance_extra: dict | None = None) -> RunResult:
    """Run one protocol in ASE and return its :class:`RunResult` (never raises on an MD failure).

    ``potential`` is a :class:`~mdval.md.results.Potential` or a spec it resolves (model path,
    ``emt:Cu``, ``lammps:Cu_u3.eam``); ``calculator`` overrides the calculator built from it (any ASE
    calculator). ``atoms`` is the starting structure (not modified). With ``resume`` the run
    continues from the checkpoint in ``output_dir`` if there is one, and raises
    :class:`~mdval.md.run_folder.RunFolderError` if the folder holds another run; without it
    the folder's run files are deleted and the run starts afresh.
    """
    potential = res.Potential.resolve(potential)
    out = Path(output_dir)
    atoms = atoms.copy()
    # built first, so that a bad model file fails before the folder is touched
    atoms.calc = calculator if calculator is not None else ase_calculator(potential, device=device, threads=threads)
    with run_folder.claim(out, run_folder.identity(atoms, potential, settings, "ase"), resume=resume):
        return _run(atoms, potential, settings, out, provenance_extra or {})


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


def _run(atoms, potential: res.Potential, settings: ProtocolSettings, out: Path, provenance_extra: dict) -> RunResult:
    from ase.io import write

    rng = np.random.default_rng(settings.seed)
    ckpt_path = out / CHECKPOINT_FILE
    step, volume0, dyn_state, resumed_from = _start(atoms, settings, out, rng)
    monitor = StabilityMonitor(settings.limits, temperature_K=settings.temperature_K, reference_volume_A3=volume0)
    n_equil, total = settings.equilibration_steps, settings.total_steps

    def phase_of(s: int) -> str:
        return "equilibration" if s < n_equil else "production"

    def events_after(s: int) -> int:
        intervals = (settings.sample_interval, settings.limits.check_interval, settings.checkpoint_interval,
                     settings.trajectory_interval)
        nxt = min((s // k + 1) * k for k in intervals)
        if s < n_equil:
            nxt = min(nxt, n_equil)
        return min(nxt, total)

    thermo_file = out / res.THERMO_FILE
    new_file = not thermo_file.exists() or thermo_file.stat().st_size == 0
    failure: Failure | None = None
    with open(thermo_file, "a") as thermo:
        if new_file:
            thermo.write(",".join(res.THERMO_COLUMNS) + "\n")
        dyn, dyn_phase = None, None
        try:
            if resumed_from is None:
                row = _state_row(atoms, 0, settings, phase_of(0))
                thermo.write(res.thermo_csv([row]).split("\n", 1)[1])
            while step < total and failure is None:
                phase = phase_of(step)
                if dyn is None or phase != dyn_phase:
                    dyn, dyn_phase = _make_dynamics(atoms, settings, phase, rng), phase
                    if dyn_state is not None and dyn_state.get("phase") == phase:
                        for name, value in dyn_state["attrs"].items():
                            setattr(dyn, name, value)
                    dyn_state = None
                target = events_after(step)
                dyn.run(target - step)
                step = target
                time_ps = step * settings.timestep_fs / 1000.0
                phase_now = phase_of(step) if step < total else "production"
                row = None
                if step % settings.limits.check_interval == 0 or step == total:
                    row = _state_row(atoms, step, settings, phase_now)
                    failure = monitor.check(step=step, time_ps=time_ps, energy_eV=row["epot_eV"],
                                            forces=atoms.get_forces(), temperature_K=row["temperature_K"],
                                            positions=atoms.positions, cell=atoms.cell.array, pbc=atoms.pbc,
                                            volume_A3=row["volume_A3"])
                if step % settings.sample_interval == 0 or step == total or failure:
                    row = row or _state_row(atoms, step, settings, phase_now)
                    thermo.write(res.thermo_csv([row]).split("\n", 1)[1])
                    thermo.flush()
                if failure:
                    break
                if step >= n_equil and (step - n_equil) % settings.trajectory_interval == 0:
                    frame = atoms.copy()
                    frame.calc = None
                    frame.info.update(step=step, time_ps=time_ps)
                    write(out / res.TRAJECTORY_FILE, frame, format="extxyz", append=True)
                if step % settings.checkpoint_interval == 0 or step == total:
                    thermo.flush()
                    attrs = {n: getattr(dyn, n) for n in _DYN_STATE if hasattr(dyn, n)}
                    _pickle_atomic(ckpt_path, {"step": step, "positions": atoms.get_positions(),
                                               "momenta": atoms.get_momenta(), "cell": atoms.cell.array.copy(),
                                               "rng_state": rng.bit_generator.state, "reference_volume_A3": volume0,
                                               "dyn_state": {"phase": dyn_phase, "attrs": attrs}})
        except Exception as exc:  # the calculator or integrator gave up: a failure, not a crash
            time_ps = step * settings.timestep_fs / 1000.0
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            failure = Failure("engine_error", f"{type(exc).__name__}: {message} near step {step} ({time_ps:.4g} ps)",
                              step, time_ps)
    return res.finish(out, settings, potential, "ase", len(atoms), failure, step,
                      {"resumed_from_step": resumed_from, **provenance_extra})
