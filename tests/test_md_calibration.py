"""Real MD checks the within-run error model: the replicas of a run scatter as their errors say.

Independent seeds of the reference potential (Cu_u3.eam through LAMMPS' own pair_style eam, no
plugin needed) on the demo's 108-atom fcc copper; every run goes through the full analysis
(mdval.md.results.analyse: production window by MSER, mean_estimate), and the replicas' means of
each observable are combined by mdval.md.comparisons.combine_replicas. If the reported standard
errors are right, χ² = Σ((x_i − x̄)/s_i)² follows χ² with N − 1 degrees of freedom; its p-value
below REPLICA_P_MIN says the errors are too small, above 1 − REPLICA_P_MIN that they are far
too large. With 12 replicas (11 degrees of freedom) that catches errors about 1.7× too small or
more (χ²/dof ≳ 2.8); the former error model, g cut at the first zero of the autocorrelation and
Chodera's window, was 1.3-1.6× too small on such runs, which the 60 replicas of
benchmarks/calibration_replicas.py resolve (χ²/dof 2-3) and 12 do not reliably.

- NVT: the demo's NVT protocol (workflows/cu_demo.toml: 600 K, Langevin 100 fs, 2 fs steps,
  samples every 10 fs) run 4× as long as the demo's, 300 samples after the warm-up (N/g ≈ 20-40).
  Measured: χ²/dof 0.81 (p = 0.63) for the temperature, 0.68 (p = 0.76) for the pressure. The
  demo's own 0.6 ps give about 6 independent samples, too few for any run to know its error.
- NPT: the demo's NPT protocol (LAMMPS fix npt: Nosé-Hoover chains, its τ_P) at 300 K, started from
  the 300 K lattice constant after 0.5 ps of Langevin NVT. (The demo's own start, from the 0 K
  lattice constant after 0.2 ps of Nosé-Hoover NVT, makes every replica ring in phase for
  about 1.5 ps: their scatter then says nothing about the error model.) Under the barostat the
  pressure and density means converge faster than white noise (g < 1), which the error model
  does not claim (g ≥ 1): only their errors being too small is tested. Measured: χ²/dof 1.16
  (p = 0.31) for the temperature, 0.01 and 0.54 for pressure and density. In runs 1.6× as long
  the Nosé-Hoover temperature's slow ringing (0.7 ps period) makes its error 1.3× too small
  (mdval.md.uncertainty.inefficiency, "Limits").
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mdval.md.comparisons import combine_replicas
from mdval.md.lammps_engine import run_lammps
from mdval.md.replicas import seed
from mdval.md.uncertainty import Estimate
from mdval.md.workflow import build_system, load_workflow

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = "lammps:Cu_u3.eam"
#: χ² p-value of the replica scatter outside [REPLICA_P_MIN, 1 − REPLICA_P_MIN] fails the check
REPLICA_P_MIN = 1e-3
#: |combined mean − thermostat temperature| / its stderr above which the temperature is off
Z = 3.0
N_REPLICAS = 12
#: Cu_u3.eam's lattice constant at 300 K and 0 bar (mean NPT density 8.8057 g/cm³, 4 × 63.546 amu)
A_300K_A = 3.6326


def demo_protocol(kind: str):
    workflow = load_workflow(ROOT / "workflows" / "cu_demo.toml")
    return next(p for p in workflow.protocols if p.kind == kind)


def replica_estimates(settings, a_A: float, out: Path, observables) -> dict[str, list[Estimate]]:
    """{observable: [Estimate of each replica]} from N_REPLICAS seeds of ``settings``."""
    atoms = build_system("fcc", "Cu", a_A, (3, 3, 3))
    estimates = {name: [] for name in observables}
    for k in range(1, N_REPLICAS + 1):
        result = run_lammps(atoms, REFERENCE, dataclasses.replace(settings, seed=seed(1, k)), out / f"replica-{k}")
        assert result.ok, result.reason
        for name in observables:
            estimates[name].append(Estimate.from_json(result.observables[name]))
    return estimates


def test_nvt_replicas_scatter_as_their_temperature_and_pressure_errors_say(tmp_path):
    nvt = demo_protocol("nvt")
    settings = dataclasses.replace(
        nvt, steps=4 * nvt.steps, trajectory_interval=4 * nvt.steps, checkpoint_interval=4 * nvt.steps
    )
    estimates = replica_estimates(settings, 3.615, tmp_path, ("temperature_K", "pressure_bar"))
    for name, values in estimates.items():
        summary = combine_replicas(values)
        assert REPLICA_P_MIN <= summary.p_value <= 1 - REPLICA_P_MIN, f"{name}: {summary.text()}"
    temperature = combine_replicas(estimates["temperature_K"]).combined
    assert abs(temperature.value - settings.temperature_K) < Z * temperature.stderr, temperature.text()


def test_npt_replicas_scatter_as_their_errors_say(tmp_path):
    settings = dataclasses.replace(
        demo_protocol("npt"),
        steps=1500,
        trajectory_interval=1500,
        checkpoint_interval=1500,
        thermostat="langevin",
        equilibration_steps=250,
    )
    estimates = replica_estimates(settings, A_300K_A, tmp_path, ("temperature_K", "pressure_bar", "density_g_cm3"))
    temperature = combine_replicas(estimates["temperature_K"])
    assert REPLICA_P_MIN <= temperature.p_value <= 1 - REPLICA_P_MIN, temperature.text()
    assert abs(temperature.combined.value - settings.temperature_K) < Z * temperature.combined.stderr, (
        temperature.text()
    )
    for name in ("pressure_bar", "density_g_cm3"):
        summary = combine_replicas(estimates[name])
        assert summary.p_value >= REPLICA_P_MIN, f"{name}: {summary.text()}"
