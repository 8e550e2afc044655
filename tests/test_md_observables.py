"""Estimators of mdval.md.observables on inputs with known answers (fast)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from mdval.md import observables as obs
from mdval.md.uncertainty import Estimate


def test_drift_recovers_slope_and_noise(rng):
    n_atoms, slope_meV, noise_meV = 100, 0.8, 0.05  # meV/atom/ps, meV/atom
    t = np.linspace(0.0, 10.0, 2001)
    e_per_atom_meV = 3.0 + slope_meV * t + rng.normal(0.0, noise_meV, t.size)
    ke = n_atoms * 1e-3 * (40.0 + rng.normal(0.0, 2.0, t.size))  # σ_KE = 2 meV/atom
    d = obs.energy_drift(t, e_per_atom_meV * n_atoms * 1e-3 - 350.0, n_atoms, kinetic_energy_eV=ke, warmup_ps=1.0)
    # white noise: the slope's standard error is noise / sqrt(Σ(t − t̄)²) ≈ 4.3e-4 meV/atom/ps
    # (the estimate's own scatter is ~2 % at 1800 samples; g of the residuals runs a few % high)
    kept = t[t >= 1.0]
    exact = noise_meV / np.sqrt(np.sum((kept - kept.mean()) ** 2))
    assert d.drift_meV_per_atom_ps.stderr == pytest.approx(exact, rel=0.15)
    assert d.drift_meV_per_atom_ps.unit == "meV/atom/ps" and d.drift_meV_per_atom_ps.n_eff > 1000
    assert abs(d.drift_meV_per_atom_ps.value - slope_meV) < 4 * exact
    assert d.rms_fluctuation_meV_per_atom.value == pytest.approx(noise_meV, rel=0.05)
    # std of a white-noise RMS: σ / sqrt(2N)
    assert d.rms_fluctuation_meV_per_atom.stderr == pytest.approx(noise_meV / np.sqrt(2 * kept.size), rel=0.15)
    assert d.sigma_ke_meV_per_atom == pytest.approx(2.0, rel=0.05)
    assert d.duration_ps == pytest.approx(9.0)
    assert d.drift_over_sigma_ke == pytest.approx(slope_meV * 9.0 / 2.0, rel=0.05)
    assert d.max_excursion_meV_per_atom == pytest.approx(slope_meV * 9.0, abs=6 * noise_meV)


def test_drift_needs_samples():
    with pytest.raises(ValueError, match="at least 3 samples"):
        obs.energy_drift([0.0, 1.0], [0.0, 0.0], 1, warmup_ps=0.5)


def test_rdf_ideal_gas_is_one():
    gen = np.random.default_rng(3)
    frames = [Atoms("Ar1000", positions=gen.uniform(0, 20.0, (1000, 3)), cell=[20.0] * 3, pbc=True) for _ in range(5)]
    g = obs.rdf(frames, 8.0, 40)
    far = g.r_A > 2.0  # few pairs in the innermost shells: larger relative noise
    assert np.all(np.abs(g.total[far] - 1.0) < 0.1)
    assert np.mean(g.total[far]) == pytest.approx(1.0, abs=0.01)


def test_rdf_fcc_peaks_at_neighbour_shells():
    a = 3.61
    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat(4)
    g = obs.rdf([atoms], 7.0, 700)
    shells = a * np.sqrt([0.5, 1.0, 1.5, 2.0])
    peaks = g.r_A[np.nonzero(g.total)[0]]
    for r in shells:
        assert np.min(np.abs(peaks - r)) < 0.01
    assert np.all((np.abs(peaks[:, None] - shells[None, :]) < 0.01).any(axis=1) | (peaks > shells[-1] + 0.01))
    peak = obs.first_peak(g.r_A, g.total)
    assert peak["position_A"] == pytest.approx(a / np.sqrt(2), abs=0.01)
    # coordination number 12 = ∫ ρ g 4π r² dr over the first shell
    rho = len(atoms) / atoms.get_volume()
    dr = g.r_A[1] - g.r_A[0]
    first = g.r_A < 3.0
    assert np.sum(rho * g.total[first] * 4 * np.pi * g.r_A[first] ** 2 * dr) == pytest.approx(12, rel=0.01)


def test_rdf_r_max_beyond_half_cell_is_refused():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    with pytest.raises(obs.CellTooSmall, match=r"r_max_A <= 3.61"):
        obs.rdf([atoms], 4.0)


def test_partial_rdfs_sum_to_total(rng):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    atoms.symbols[rng.choice(len(atoms), 40, replace=False)] = "Ag"
    atoms.rattle(0.1, seed=1)
    g = obs.rdf([atoms], 5.0, 50)
    x = {s: np.mean(np.array(atoms.get_chemical_symbols()) == s) for s in ("Ag", "Cu")}
    n = len(atoms)
    n_ag, n_cu = 40, n - 40
    weighted = (
        n_ag * (n_ag - 1) * g.partial["Ag-Ag"]
        + n_cu * (n_cu - 1) * g.partial["Cu-Cu"]
        + 2 * n_ag * n_cu * g.partial["Ag-Cu"]
    ) / (n * (n - 1))
    np.testing.assert_allclose(weighted, g.total, rtol=1e-12, atol=1e-12)
    assert set(x) == {"Ag", "Cu"}


def test_rdf_error_and_density():
    r = np.linspace(0, 5, 51)
    g_ref = 1 + np.exp(-((r - 2.5) ** 2) / 0.1)
    assert obs.rdf_error_percent(r, g_ref, g_ref) == 0.0
    assert obs.rdf_error_percent(r, np.ones_like(r), g_ref) == pytest.approx(100.0)
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    # 4 Cu atoms (63.546 amu) in 3.61³ Å³: 8.972 g/cm³
    expected = 4 * 63.546 * 1.66053906660 / 3.61**3
    assert obs.density_g_cm3(atoms.get_masses().sum(), atoms.get_volume()) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(8.972, abs=1e-3)
    with pytest.raises(ValueError, match="positive"):
        obs.density_g_cm3(1.0, 0.0)


def test_relative_difference_on_a_worked_example():
    # 100·(9.0 − 8.9)/8.9 = 1.1236 %; s² = (100/8.9)² (0.03² + (9.0/8.9)² 0.04²) → s = 0.5568 %
    a, b = Estimate(9.0, 0.03, 40.0, "g/cm³"), Estimate(8.9, 0.04, 60.0, "g/cm³")
    d = obs.relative_difference_percent(a, b)
    assert d.value == pytest.approx(100 * 0.1 / 8.9, rel=1e-12)
    assert d.stderr == pytest.approx(100 / 8.9 * np.hypot(0.03, 9.0 / 8.9 * 0.04), rel=1e-12)
    assert d.unit == "%" and 40.0 < d.n_eff < 100.0
    with pytest.raises(ValueError, match=re.escape("the reference value is 0.0: the relative difference is undefined")):
        obs.relative_difference_percent(a, Estimate(0.0, 0.1, 5.0, "g/cm³"))


def test_rdf_error_estimate_adds_both_runs_block_errors_in_quadrature():
    r = np.linspace(0.0, 5.0, 501)
    shape = np.exp(-((r - 2.5) ** 2) / 0.1)
    g_ref = 1.0 + 3.0 * shape

    def error_of(g, ref):
        return obs.rdf_error_percent(r, g, ref)

    g = g_ref + 0.1 * shape  # every block above the reference: the error is linear in the offset
    g_blocks = [g_ref + (0.1 + d) * shape for d in (-0.02, 0.0, 0.01, 0.01)]
    own = obs.rdf_error_estimate(r, g, g_ref, g_blocks, [g_ref] * 4)
    per_block = [error_of(b, g_ref) for b in g_blocks]
    assert own.value == pytest.approx(error_of(g, g_ref), rel=1e-12)  # all frames, not the block mean
    assert own.stderr == pytest.approx(np.std(per_block, ddof=1) / 2, rel=1e-9) and own.n_eff == pytest.approx(4)
    ref_blocks = [g_ref + d * shape for d in (-0.01, 0.01, -0.01, 0.01, 0.0, 0.0)]
    both = obs.rdf_error_estimate(r, g, g_ref, g_blocks, ref_blocks)
    theirs = np.std([error_of(g, b) for b in ref_blocks], ddof=1) / np.sqrt(6)
    assert both.stderr == pytest.approx(np.hypot(own.stderr, theirs), rel=1e-9)
    assert np.isnan(obs.rdf_error_estimate(r, g, g_ref).stderr)  # no blocks: no error estimate


def test_first_peak_estimates_take_the_all_frames_value_and_the_block_spread():
    r = np.linspace(0.0, 5.0, 501)

    def peak_at(r0):
        return 1.0 + 4.0 * np.exp(-((r - r0) ** 2) / 0.02)

    blocks = [peak_at(r0) for r0 in (2.54, 2.55, 2.56)]
    estimates = obs.first_peak_estimates(r, peak_at(2.55), blocks)
    position = estimates["position_A"]
    assert position.value == pytest.approx(2.55, abs=1e-3) and position.unit == "Å" and position.n_eff == 3
    assert position.stderr == pytest.approx(0.01 / np.sqrt(3), rel=0.05)  # sd of 2.54, 2.55, 2.56 over √3
    assert estimates["height"].value == pytest.approx(5.0, abs=0.01) and estimates["height"].unit == ""


def test_rdf_block_count_keeps_blocks_longer_than_the_correlation_time():
    assert obs.rdf_block_count(40, 3) == 10  # capped at RDF_MAX_BLOCKS
    assert obs.rdf_block_count(40, 8) == 5
    assert obs.rdf_block_count(5, 8) == 2  # too short: 2 blocks, N_eff = 2 draws the warning
    assert obs.rdf_block_count(1, 1) == 0


def test_estimate_json_is_the_contract_with_a_warning_below_min_n_eff():
    assert obs.estimate_json(Estimate(300.0, 2.0, 41.0, "K")) == {
        "value": 300.0,
        "stderr": 2.0,
        "n_eff": 41.0,
        "unit": "K",
    }
    assert obs.estimate_json(Estimate(300.0, 9.0, 3.0, "K"))["warning"] == "run longer; N_eff = 3"
    assert obs.MIN_N_EFF == 10
