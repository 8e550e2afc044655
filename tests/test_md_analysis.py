"""A run's results.json (mdval.md.results.analyse): the contract of estimates, the production window
chosen from the data, the adequacy warning, the steady-state cost, and physics checks of the
error bars on real runs of the reference potential (LAMMPS' pair_style eam with Cu_u3.eam: about
0.2 ms per step for 108 atoms, so long runs are cheap)."""

from __future__ import annotations

import contextlib
import io
import json
import math
import re

import numpy as np
import pytest
from ase.build import bulk

from mdval.cli import main
from mdval.md import observables as obs
from mdval.md.lammps_engine import loop_times, run_lammps
from mdval.md.protocols import NPTSettings, NVESettings, NVTSettings
from mdval.md.results import analyse, compare_to_reference
from mdval.md.uncertainty import Estimate

#: two-sided z for 99.9 % confidence: a correct error bar fails a check at this z once in 1000 runs
Z_CHECK = 3.29
CONTRACT_KEYS = {"value", "stderr", "n_eff", "unit"}


def cu(size=3):
    return bulk("Cu", "fcc", a=3.615, cubic=True).repeat(size)


def estimates_in(tree, path="") -> dict:
    """Every estimate (a dict with a "value") in a results.json tree, by its dotted path."""
    found = {}
    if isinstance(tree, dict) and "value" in tree:
        return {path: tree}
    if isinstance(tree, dict):
        for key, value in tree.items():
            found.update(estimates_in(value, f"{path}.{key}" if path else key))
    return found


def assert_contract(estimate: dict, where: str) -> None:
    assert set(estimate) - {"warning"} == CONTRACT_KEYS, where
    assert isinstance(estimate["unit"], str), where
    assert math.isfinite(estimate["value"]) and math.isfinite(estimate["stderr"]) and estimate["stderr"] > 0, where
    assert estimate["n_eff"] > 1, where


def synthetic_thermo(series: dict, dt_ps: float = 0.01) -> dict:
    """A production-only thermo table of len(series) columns' samples (the columns not given are constant)."""
    n = len(next(iter(series.values())))
    thermo = {
        "step": np.arange(n) * 10.0,
        "time_ps": np.arange(n) * dt_ps,
        "phase": np.array(["production"] * n, object),
        "epot_eV": np.full(n, -380.0),
        "ekin_eV": np.full(n, 4.0),
        "temperature_K": np.full(n, 300.0),
        "pressure_bar": np.full(n, 1.0),
        "volume_A3": np.full(n, 1270.0),
        "density_g_cm3": np.full(n, 8.9),
    }
    thermo.update(series)
    thermo["etot_eV"] = thermo["epot_eV"] + thermo["ekin_eV"]
    return thermo


def ar1(n: int, phi: float, seed: int) -> np.ndarray:
    gen = np.random.default_rng(seed)
    x = np.empty(n)
    x[0] = gen.normal() / np.sqrt(1 - phi**2)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + gen.normal()
    return x


# ------------------------------------------------------------------------------ synthetic
def test_a_planted_transient_moves_the_production_window_start():
    """NPT: the window comes from ρ(t). On 20 seeded stationary AR(1) series (g = 9) the window
    starts at the first sample in the median; with a transient 10σ high decaying over τ = 0.3 ps
    (30 samples) planted at the start it starts after at least τ in each, 2τ in the median, and
    the window mean keeps at most the ~2 stderr bias the window rule (MSER) leaves."""
    n, sigma, truth, tau = 1000, 0.005, 8.8, 30  # samples, g/cm³, g/cm³, samples
    settings = NPTSettings(steps=10000, sample_interval=10, timestep_fs=1.0)  # samples 0.01 ps apart
    clean_starts, planted_starts = [], []
    for seed in range(100, 120):
        noise = sigma * np.sqrt(1 - 0.8**2) * ar1(n, 0.8, seed=seed)
        clean = analyse(settings, synthetic_thermo({"density_g_cm3": truth + noise}), [], 108)
        transient = 10 * sigma * np.exp(-np.arange(n) / tau)
        planted = analyse(settings, synthetic_thermo({"density_g_cm3": truth + noise + transient}), [], 108)
        window = planted["production_window"]
        assert window["series"] == "density_g_cm3" and window["equilibration_ps"] == window["start_ps"]
        assert window["n_samples"] == round(n - 100 * window["start_ps"])
        rho = planted["density_g_cm3"]
        assert abs(rho["value"] - truth) < Z_CHECK * rho["stderr"], (seed, rho)
        clean_starts.append(clean["production_window"]["start_ps"])
        planted_starts.append(window["start_ps"])
    assert np.median(clean_starts) <= 0.1
    assert min(planted_starts) >= 0.3 and np.median(planted_starts) >= 0.6, planted_starts


def test_nve_fits_the_drift_over_all_samples_after_the_warm_up_and_averages_over_the_window():
    """NVE: the window comes from E_pot (a transient there moves it); the drift of the conserved
    E_tot is fitted over every sample after warmup_ps, window or not."""
    n = 600
    # a transient ~20σ high from the end of the warm-up (sample 100) on, decaying over 20 samples
    epot = -380.0 + 0.02 * ar1(n, 0.5, seed=2) + 0.5 * np.exp(-np.maximum(np.arange(n) - 100, 0) / 20.0)
    ekin = -epot - 376.0 + 1e-3 * np.arange(n) / n  # E_tot = −376 eV plus a planted drift
    temperature = 300.0 * ekin / ekin.mean()
    settings = NVESettings(steps=6000, sample_interval=10, timestep_fs=1.0, warmup_ps=1.0)
    out = analyse(settings, synthetic_thermo({"epot_eV": epot, "ekin_eV": ekin, "temperature_K": temperature}), [], 100)
    assert out["production_window"]["series"] == "epot_eV" and out["production_window"]["searched_from_ps"] == 1.0
    assert out["production_window"]["start_ps"] >= 1.4  # at least 2 decay times (0.2 ps each) later
    assert out["drift"]["n_samples"] == n - 100 and out["drift"]["start_ps"] == 1.0
    # 1 meV over 6 ps for 100 atoms: 1/600 meV/atom/ps, fitted exactly (no noise in E_tot)
    assert out["drift"]["drift_meV_per_atom_ps"]["value"] == pytest.approx(1.0 / 600.0, rel=1e-6)
    assert "density_g_cm3" not in out  # the box is fixed: no density estimate outside NPT


def test_too_few_samples_is_an_error_naming_the_fix():
    settings = NVTSettings(steps=20, sample_interval=10)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "2 finite production sample(s) after the warm-up of 0.0 ps; "
            "the analysis needs 3: run longer, sample more often or "
            "shorten warmup_ps"
        ),
    ):
        analyse(settings, synthetic_thermo({"epot_eV": np.array([-380.0, -380.1])}), [], 108)


def test_loop_times_reads_each_runs_steps_and_whether_it_is_production():
    log = (
        "   Step          Time          PotEng         KinEng         TotEng          Temp          Press"
        "          Volume        Density       c_nclose\n"
        "         0   0   -381.6   4.1   -377.5   300   1200   1270   8.9   0\n"
        "       100   0.1   -381.6   4.1   -377.5   300   1200   1270   8.9   0\n"
        "Loop time of 0.25 on 1 procs for 100 steps with 108 atoms\n\n"
        "   Step          Time          PotEng         KinEng         TotEng          Temp          Press"
        "          Volume        Density       c_nclose\n"
        "       100   0.1   -381.6   4.1   -377.5   300   1200   1270   8.9   0\n"
        "       600   0.6   -381.6   4.1   -377.5   300   1200   1270   8.9   0\n"
        "Loop time of 1.5 on 2 procs for 500 steps with 108 atoms\n"
    )
    assert loop_times(log, equilibration_steps=100) == [(0.25, 100, False), (1.5, 500, True)]


# ---------------------------------------------------------------------------- real runs
@pytest.fixture(scope="module")
def npt_runs(tmp_path_factory):
    """Two seeds of 4000 NPT steps (2 fs) of Cu_u3.eam at 300 K and 1 bar, the first through the CLI."""
    folder = tmp_path_factory.mktemp("npt")
    args = [
        "md",
        "npt",
        "--reference",
        "lammps:Cu_u3.eam",
        "--engine",
        "lammps",
        "--a-A",
        "3.615",
        "--supercell",
        "3",
        "3",
        "3",
        "--steps",
        "4000",
        "--equilibration-steps",
        "200",
        "--timestep-fs",
        "2",
        "--sample-interval",
        "5",
        "--trajectory-interval",
        "25",
        "--barostat-damping-fs",
        "500",
    ]
    runs = {}
    for seed in (1, 2):
        out, printed = folder / f"seed{seed}", io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert main([*args, "--seed", str(seed), "--out", str(out)]) == 0
        runs[seed] = {**json.loads((out / "results.json").read_text()), "printed": printed.getvalue()}
    return runs


def test_npt_results_json_follows_the_contract(npt_runs):
    results = npt_runs[1]
    found = estimates_in(results["observables"])
    expected = {
        "temperature_K",
        "pressure_bar",
        "density_g_cm3",
        "first_peak.total.position_A",
        "first_peak.total.height",
        "first_peak.Cu-Cu.position_A",
        "first_peak.Cu-Cu.height",
    }
    assert set(found) == expected
    for where, estimate in found.items():
        assert_contract(estimate, where)
    assert found["density_g_cm3"]["unit"] == "g/cm³" and found["first_peak.total.position_A"]["unit"] == "Å"
    window = results["observables"]["production_window"]
    assert window["series"] == "density_g_cm3" and window["method"].startswith("MSER")
    assert 0.4 <= window["start_ps"] < window["end_ps"] == pytest.approx(8.4) and window["n_eff"] > 10
    assert results["observables"]["rdf"]["start_ps"] >= window["start_ps"]
    timing = results["timing"]
    assert timing["steady_steps"] == 4000 and timing["ms_per_step_steady"] > 0 and timing["startup_s"] > 0
    # against the other seed: every comparison is an estimate too, and two seeds of one potential
    # give densities that agree within their errors
    versus = compare_to_reference(results["observables"], npt_runs[2]["observables"])
    for where, estimate in estimates_in(versus).items():
        assert_contract(estimate, where)
    assert set(estimates_in(versus)) == {
        "rdf_error_percent.total",
        "rdf_error_percent.Cu-Cu",
        "density_difference_g_cm3",
        "density_relative_error_percent",
    }
    difference = versus["density_difference_g_cm3"]
    assert abs(difference["value"]) < Z_CHECK * difference["stderr"], difference
    density = Estimate.from_json(found["density_g_cm3"])  # the CLI's printout: estimates as text
    assert f"density                  {density.text()}\n" in results["printed"]
    assert re.search(r"^density +8\.\d+ ± 0\.00\d+ g/cm³ \(N_eff = \d+\)$", results["printed"], re.MULTILINE)


def test_langevin_temperature_agrees_with_the_set_point_within_its_error(tmp_path):
    """The mean kinetic temperature of a Langevin NVT run is the set point (LAMMPS' fix langevin
    with zero yes and the 3N − 3 degrees of freedom of compute temp). 20000 steps of 1 fs: the
    error bar must be small enough to mean something (< 1 % of T) and cover the set point."""
    settings = NVTSettings(
        steps=20000,
        equilibration_steps=1000,
        temperature_K=300.0,
        sample_interval=10,
        trajectory_interval=500,
        checkpoint_interval=20000,
        seed=7,
    )
    result = run_lammps(cu(), "lammps:Cu_u3.eam", settings, tmp_path)
    assert result.ok, result.reason
    temperature = Estimate.from_json(result.observables["temperature_K"])
    # canonical fluctuation of T for 108 atoms: 300 K · sqrt(2/321) = 23.7 K per sample; the
    # standard error cannot be smaller than that over the square root of the samples averaged
    n_window = result.observables["production_window"]["n_samples"]
    assert 300.0 * math.sqrt(2 / 321) / math.sqrt(n_window) < temperature.stderr < 3.0
    assert abs(temperature.value - 300.0) < Z_CHECK * temperature.stderr, temperature.text()


def test_a_too_short_run_is_flagged(tmp_path):
    settings = NVTSettings(steps=40, equilibration_steps=20, sample_interval=10, trajectory_interval=10)
    result = run_lammps(cu(), "lammps:Cu_u3.eam", settings, tmp_path)
    assert result.ok, result.reason
    temperature = result.observables["temperature_K"]
    n_eff = temperature["n_eff"]
    assert n_eff <= 5 and temperature["warning"] == f"run longer; N_eff = {n_eff:.2g}"
    assert result.observables["first_peak"]["total"]["position_A"]["warning"] == "run longer; N_eff = 2"
    assert obs.estimate_json(Estimate.from_json(temperature)) == temperature  # the warning is adequacy's
