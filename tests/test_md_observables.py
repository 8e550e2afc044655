"""Estimators of mdval.md.observables on inputs with known answers (fast)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from mdval.md import observables as obs

#: Relative accuracy of a blocking standard error with ~2^16 samples and tau_int ~ 19:
#: the plateau estimate has ~5-10% statistical error, so 20% is a 2-3 sigma bound.
BLOCK_SE_RTOL = 0.2


def test_drift_recovers_slope_and_noise(rng):
    n_atoms, slope_meV, noise_meV = 100, 0.8, 0.05  # meV/atom/ps, meV/atom
    t = np.linspace(0.0, 10.0, 2001)
    e_per_atom_meV = 3.0 + slope_meV * t + rng.normal(0.0, noise_meV, t.size)
    ke = n_atoms * 1e-3 * (40.0 + rng.normal(0.0, 2.0, t.size))  # σ_KE = 2 meV/atom
    d = obs.energy_drift(t, e_per_atom_meV * n_atoms * 1e-3 - 350.0, n_atoms, kinetic_energy_eV=ke, warmup_ps=1.0)
    # slope standard error = noise / (std(t) sqrt(n)) ~ 5e-4; allow 5 sigma
    assert d.drift_meV_per_atom_ps == pytest.approx(slope_meV, abs=3e-3)
    assert d.rms_fluctuation_meV_per_atom == pytest.approx(noise_meV, rel=0.05)
    assert d.sigma_ke_meV_per_atom == pytest.approx(2.0, rel=0.05)
    assert d.duration_ps == pytest.approx(9.0)
    assert d.drift_over_sigma_ke == pytest.approx(slope_meV * 9.0 / 2.0, rel=0.05)
    assert d.max_excursion_meV_per_atom == pytest.approx(slope_meV * 9.0, abs=6 * noise_meV)


def test_drift_needs_samples():
    with pytest.raises(ValueError, match="at least 3 samples"):
        obs.energy_drift([0.0, 1.0], [0.0, 0.0], 1, warmup_ps=0.5)


def test_block_average_ar1_standard_error():
    """AR(1) x_t = φ x_{t-1} + ε_t: var(x) = σ²/(1-φ²), τ_int = (1+φ)/(1-φ),
    SE(mean) = sqrt(var(x) τ_int / N)."""
    phi, n = 0.9, 2**16
    gen = np.random.default_rng(7)
    eps = gen.normal(size=n)
    x = np.empty(n)
    x[0] = eps[0] / np.sqrt(1 - phi**2)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + eps[i]
    exact = np.sqrt(1.0 / (1 - phi**2) * (1 + phi) / (1 - phi) / n)
    block = obs.block_average(x)
    assert block.standard_error == pytest.approx(exact, rel=BLOCK_SE_RTOL)
    naive = x.std() / np.sqrt(n)
    assert block.standard_error > 3 * naive  # correlation recognised (sqrt(19) = 4.4)
    white = gen.normal(size=4096)
    assert obs.block_average(white).standard_error == pytest.approx(1 / 64, rel=BLOCK_SE_RTOL)


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
    weighted = (n_ag * (n_ag - 1) * g.partial["Ag-Ag"] + n_cu * (n_cu - 1) * g.partial["Cu-Cu"]
                + 2 * n_ag * n_cu * g.partial["Ag-Cu"]) / (n * (n - 1))
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
