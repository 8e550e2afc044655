"""The statistics of mdval.md.uncertainty and mdval.md.comparisons, on series of known answer.

AR(1) series x_t = φ x_{t−1} + ε_t (ε ~ N(0, 1), started in the stationary state) have mean 0,
variance 1/(1 − φ²) and statistical inefficiency g = (1 + φ)/(1 − φ): φ = 0, 0.5, 0.9 give
g = 1, 3, 19. The "ringing" series (:func:`ringing`) add a damped oscillator to a slow AR(1), so
that their autocorrelation falls below zero within 3 samples and then rises into a slow positive
tail, as an MD temperature or pressure does (phonon ringing, then thermostat relaxation).
Coverage tests count how often the reported 95 % interval x̂ ± 1.96·stderr holds the true value
over COVERAGE_SERIES seeded series; a binomial 95 % rate over 500 series has a standard deviation
of 1 %, so 95 % ± 3 % is a three-sigma band.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from scipy.signal import lfilter

from mdval.md.comparisons import Comparison, combine_replicas, compare, critical_z
from mdval.md.uncertainty import (
    MAX_WINDOW_FRACTION,
    WINDOW_C,
    Estimate,
    adequacy,
    block_estimate,
    block_standard_error,
    contiguous_blocks,
    detect_equilibration,
    drift_estimate,
    equilibrated_mean,
    inefficiency,
    mean_estimate,
    statistical_inefficiency,
    std_estimate,
)

COVERAGE_SERIES = 500
COVERAGE_BAND = (0.92, 0.98)  # 95 % ± 3 %
Z95 = 1.959963984540054  # Φ⁻¹(0.975)


def ar1(phi: float, n: int, seed: int) -> np.ndarray:
    """x_t = φ x_{t−1} + ε_t, with x_0 drawn from the stationary distribution N(0, 1/(1 − φ²))."""
    eps = np.random.default_rng(seed).standard_normal(n)
    eps[0] /= math.sqrt(1.0 - phi**2)
    return lfilter([1.0], [1.0, -phi], eps)


def g_ar1(phi: float) -> float:
    return (1.0 + phi) / (1.0 - phi)


#: ringing series: AR(2) oscillator of period 7 samples damped by 0.75 per sample, plus an AR(1)
#: with φ = 0.9 whose innovations are 0.35 of the oscillator's
RING_PERIOD, RING_DAMPING, RING_PHI, RING_SLOW = 7.0, 0.75, 0.9, 0.35
RING_A1, RING_A2 = 2 * RING_DAMPING * math.cos(2 * math.pi / RING_PERIOD), -(RING_DAMPING**2)


def g_ringing() -> float:
    """Exact g = S(0)/γ(0) of the ringing series: for independent AR components the spectral
    density at zero adds, σ²/(1 − Σa)² each, as do the variances, σ²(1 − a₂)/((1 + a₂)((1 − a₂)²
    − a₁²)) for the AR(2) (Box & Jenkins, Time Series Analysis, section 3.2) and σ²/(1 − φ²)."""
    variance_ar2 = (1 - RING_A2) / ((1 + RING_A2) * ((1 - RING_A2) ** 2 - RING_A1**2))
    spectrum0 = 1 / (1 - RING_A1 - RING_A2) ** 2 + RING_SLOW**2 / (1 - RING_PHI) ** 2
    return spectrum0 / (variance_ar2 + RING_SLOW**2 / (1 - RING_PHI**2))


def ringing(n: int, seed: int) -> np.ndarray:
    """A stationary ringing series (mean 0) of n samples, after 200 samples of burn-in."""
    noise = np.random.default_rng(seed).standard_normal((2, n + 200))
    fast = lfilter([1.0], [1.0, -RING_A1, -RING_A2], noise[0])
    slow = lfilter([1.0], [1.0, -RING_PHI], RING_SLOW * noise[1])
    return (fast + slow)[200:]


def first_zero_inefficiency(x: np.ndarray, mintime: int = 3) -> float:
    """The estimator mdval used before (pymbar.timeseries.statistical_inefficiency): the sum of
    (1 − t/N) ρ(t), ρ normalised by 1/(N − t), cut at the first ρ(t) ≤ 0 after ``mintime``."""
    n, dx = x.size, x - x.mean()
    rho = np.correlate(dx, dx, "full")[n - 1 : 2 * n - 2] / np.arange(n, 1, -1) / np.dot(dx, dx) * n
    lags = np.arange(1, n - 1)
    stop = np.flatnonzero((rho[1:] <= 0) & (lags > mintime))
    end = stop[0] if stop.size else lags.size
    return max(1.0, 1.0 + 2.0 * float(np.sum((1.0 - lags[:end] / n) * rho[1 : end + 1])))


def coverage(estimates, truth: float) -> float:
    return float(np.mean([abs(e.value - truth) <= Z95 * e.stderr for e in estimates]))


# ------------------------------------------------------------------ statistical inefficiency
@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9])
def test_statistical_inefficiency_recovers_the_ar1_value(phi):
    # averaged over 100 series of 4096 samples, g is found within 10 % (measured: 0.4-4 % high)
    g = np.mean([statistical_inefficiency(ar1(phi, 4096, seed)) for seed in range(100)])
    assert g / g_ar1(phi) == pytest.approx(1.0, abs=0.1)


def test_statistical_inefficiency_of_a_constant_series_is_one():
    assert statistical_inefficiency(np.full(50, 2.7)) == 1.0
    estimate = mean_estimate(np.full(50, 2.7), "K")
    assert (estimate.value, estimate.stderr, estimate.n_eff) == (2.7, 0.0, 50.0)


def test_blocking_of_white_noise_keeps_short_blocks():
    results = [block_standard_error(np.random.default_rng(seed).standard_normal(4096)) for seed in range(20)]
    assert np.median([b.block_size for b in results]) == 1 and all(b.converged for b in results)
    # σ/sqrt(N) = 1/64 at any level, within the noise of the level's variance (≤ 16 % at level 3)
    assert all(b.stderr == pytest.approx(1 / 64, rel=0.2) for b in results)
    x = np.random.default_rng(0).standard_normal(4096)
    if block_standard_error(x).block_size == 1:
        assert block_standard_error(x).n_eff == pytest.approx(4096.0, rel=1e-12)


def test_blocking_chooses_blocks_longer_than_the_correlation_time():
    # φ = 0.9: correlation time −1/ln φ ≈ 9.5 samples; the chosen blocks are longer
    sizes = [block_standard_error(ar1(0.9, 4096, seed)).block_size for seed in range(20)]
    assert min(sizes) >= 16


def test_window_sums_through_a_dip_of_the_autocorrelation_to_the_slow_tail():
    # the ringing series' autocorrelation is below zero at lags 3 and 4, then rises again: its
    # exact g is 5.06. The window (M ≈ 5 g = 24 lags) finds 4.8: Sokal's truncation error, the
    # slow tail beyond M, is 2 φ^(M+1)/(1 − φ) of its share; cutting at the first zero finds half
    x = ringing(200_000, 1)
    dx = x - x.mean()
    rho = np.array([np.dot(dx[: x.size - t], dx[t:]) for t in range(8)]) / np.dot(dx, dx)
    assert rho[3] < 0 and rho[4] < 0 and rho[7] > 0.15
    assert statistical_inefficiency(x) == pytest.approx(g_ringing(), rel=0.08)
    assert first_zero_inefficiency(x[:20_000]) < 0.6 * g_ringing()


def test_ringing_series_intervals_cover_where_the_first_zero_cut_undercovers():
    # 1000 samples, N/g ≈ 200: measured coverage 94 % with the automatic window, 83 % with the
    # first-zero cut (its ĝ averages 2.6 against the exact 5.06)
    series = [ringing(1000, 50_000 + seed) for seed in range(COVERAGE_SERIES)]
    estimates = [mean_estimate(x, "") for x in series]
    assert COVERAGE_BAND[0] <= coverage(estimates, 0.0) <= COVERAGE_BAND[1]
    assert np.mean([statistical_inefficiency(x) for x in series]) == pytest.approx(g_ringing(), rel=0.1)
    first_zero = [
        Estimate(x.mean(), math.sqrt(first_zero_inefficiency(x) * np.var(x, ddof=1) / x.size), 1.0, "") for x in series
    ]
    assert coverage(first_zero, 0.0) < COVERAGE_BAND[0] - 0.05


def test_inefficiency_on_a_worked_example():
    # ĝ(M) = 1 + 2 Σ_{t≤M} γ̂(t)/γ̂(0) with the 1/N autocovariance, M the first lag >= WINDOW_C·ĝ(M)
    # (at most N/4), then ĝ·(1 + (2M + 1)/N); the noise of ĝ is 2(2M + 1)/N
    x = ar1(0.6, 64, 3)
    n, dx = x.size, x - x.mean()
    gamma = np.array([np.dot(dx[: n - t], dx[t:]) / n for t in range(n)])
    g_of = {m: 1.0 + 2.0 * gamma[1 : m + 1].sum() / gamma[0] for m in range(1, n)}
    window = next((m for m in range(1, int(MAX_WINDOW_FRACTION * n) + 1) if m >= WINDOW_C * g_of[m]), n // 4)
    found = inefficiency(x)
    assert found.window == window
    assert found.g == pytest.approx(max(1.0, g_of[window] * (1 + (2 * window + 1) / n)), rel=1e-10)
    assert found.relative_variance == pytest.approx(2 * (2 * window + 1) / n, rel=1e-12)
    estimate = mean_estimate(x, "K")
    assert estimate.stderr == pytest.approx(
        math.sqrt(found.g * np.var(x, ddof=1) / n * (1 + found.relative_variance)), rel=1e-12
    )
    assert estimate.n_eff == pytest.approx(n / found.g, rel=1e-12)


def test_window_stops_at_a_quarter_of_a_series_much_shorter_than_its_correlation_time():
    x = ar1(0.995, 400, 2)  # g = 399: the criterion M >= 5 g cannot be met
    found = inefficiency(x)
    assert found.window == 100 and found.relative_variance == pytest.approx(2 * 201 / 400)
    assert adequacy(mean_estimate(x, "K")).startswith("run longer; N_eff = ")


# -------------------------------------------------------------------------- coverage rates
@pytest.mark.parametrize(
    "method,phi,n",
    [("auto", 0.0, 4096), ("auto", 0.5, 4096), ("auto", 0.9, 4096), ("blocking", 0.0, 4096), ("blocking", 0.5, 16384)],
)
def test_mean_estimate_interval_covers_the_true_mean_at_95_percent(method, phi, n):
    # blocking covers 93 % at φ = 0.5 and about 91 % at φ = 0.9 with 4096 samples (documented in
    # block_standard_error); the default, the statistical inefficiency, covers 95 % at all three
    estimates = [mean_estimate(ar1(phi, n, seed), "", method) for seed in range(COVERAGE_SERIES)]
    assert COVERAGE_BAND[0] <= coverage(estimates, 0.0) <= COVERAGE_BAND[1]
    # N/g on average; blocking's N_eff runs high (blocks still slightly correlated)
    n_eff = np.mean([e.n_eff for e in estimates])
    assert n_eff == pytest.approx(n / g_ar1(phi), rel=0.1 if method == "auto" else 0.2)


def test_std_estimate_interval_covers_the_true_standard_deviation():
    phi = 0.5
    estimates = [std_estimate(ar1(phi, 4096, seed), "") for seed in range(COVERAGE_SERIES)]
    assert COVERAGE_BAND[0] <= coverage(estimates, 1.0 / math.sqrt(1.0 - phi**2)) <= COVERAGE_BAND[1]


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9])
def test_drift_estimate_interval_covers_the_true_slope(phi):
    slope = 0.05  # per ps, on a trend of 20 ps, comparable to the noise (σ = 1 to 2.3)
    t_ps = np.arange(2000) * 0.01
    estimates = [
        drift_estimate(t_ps, 0.3 + slope * t_ps + ar1(phi, t_ps.size, seed), "meV/atom/ps")
        for seed in range(COVERAGE_SERIES)
    ]
    assert COVERAGE_BAND[0] <= coverage(estimates, slope) <= COVERAGE_BAND[1]
    # g_r = N/N_eff on average (measured 3 % low at φ = 0.9: the fitted slope takes up some of the
    # slow correlation); the mean of N_eff itself runs high, by var(ĝ)/g² ≈ 20 % (Jensen)
    assert np.mean([2000 / e.n_eff for e in estimates]) == pytest.approx(g_ar1(phi), rel=0.15)


def test_drift_estimate_is_the_least_squares_slope():
    t_ps = np.linspace(0.0, 2.0, 41)
    e = 1.5 - 0.25 * t_ps + 0.01 * np.cos(7 * t_ps)
    estimate = drift_estimate(t_ps, e, "eV/ps")
    assert estimate.value == pytest.approx(np.polyfit(t_ps, e, 1)[0], rel=1e-10)
    assert estimate.unit == "eV/ps" and estimate.stderr > 0


def test_block_estimate_of_contiguous_blocks_covers_the_true_mean():
    # 20 blocks of 200 samples, 67 correlation times each: block means are independent
    blocks = contiguous_blocks(4000, 20)
    estimates = [
        block_estimate([x[b].mean() for b in blocks], "")
        for x in (ar1(0.5, 4000, seed) for seed in range(COVERAGE_SERIES))
    ]
    assert COVERAGE_BAND[0] <= coverage(estimates, 0.0) <= COVERAGE_BAND[1]
    assert {e.n_eff for e in estimates} == {20.0}


def test_block_estimate_and_contiguous_blocks_on_a_worked_example():
    assert [b.tolist() for b in contiguous_blocks(7, 3)] == [[0, 1, 2], [3, 4], [5, 6]]
    estimate = block_estimate([1.0, 2.0, 6.0], "%")
    # mean 3, sample sd sqrt(((−2)² + (−1)² + 3²)/2) = sqrt(7)
    assert (estimate.value, estimate.n_eff, estimate.unit) == (3.0, 3.0, "%")
    assert estimate.stderr == pytest.approx(math.sqrt(7.0 / 3.0), rel=1e-12)


# --------------------------------------------------------------------------- equilibration
def test_detect_equilibration_discards_a_planted_transient():
    # x_t = A exp(−t/τ) + AR(1) noise with A = 10σ, τ = 100 samples: the transient falls to 2σ at
    # τ ln 5 = 161 and to 0.1σ at τ ln 100 = 461 samples.
    n, tau, phi = 2000, 100.0, 0.5
    sigma = 1.0 / math.sqrt(1.0 - phi**2)
    transient = 10.0 * sigma * np.exp(-np.arange(n) / tau)
    starts = []
    for seed in range(20):
        x = transient + ar1(phi, n, seed)
        window, estimate = equilibrated_mean(x, "", nskip=10)
        starts.append(window.t0)
        assert window.t0 >= tau * math.log(5.0)
        assert estimate.n_eff == pytest.approx(window.n_eff) and window.g >= 1.0
        # what stays of the transient biases the mean by less than 2.5 standard errors (the
        # criterion balances bias and variance); the whole series is biased by about 13
        assert transient[window.t0 :].mean() < 2.5 * estimate.stderr
        assert transient.mean() > 10 * mean_estimate(x - transient, "").stderr
    assert tau * math.log(5.0) <= np.median(starts) <= tau * math.log(100.0)


def test_detect_equilibration_keeps_a_stationary_series():
    starts = [detect_equilibration(ar1(0.5, 2000, 1000 + seed), nskip=10).t0 for seed in range(40)]
    assert np.median(starts) == 0
    assert np.mean(np.array(starts) <= 200) >= 0.9


def test_detect_equilibration_minimises_the_marginal_standard_error_over_the_first_half():
    x = ar1(0.5, 300, 7) + 6.0 * np.exp(-np.arange(300) / 20.0)
    window = detect_equilibration(x)
    mser = [np.var(x[t0:]) / (300 - t0) for t0 in range(151)]  # candidates t0 <= N/2
    assert window.t0 == int(np.argmin(mser)) and window.t0 > 0
    assert window.g == statistical_inefficiency(x[window.t0 :]) and window.n_eff == (300 - window.t0) / window.g
    assert detect_equilibration(x, nskip=7).t0 % 7 == 0


def test_equilibration_window_of_a_ringing_series_keeps_the_interval_honest():
    # Chodera's rule (the t0 maximising N/ĝ of the rest) picked late windows whose ĝ happened to
    # be small, so their intervals under-covered; MSER's window leaves the coverage at 95 %
    estimates = [equilibrated_mean(ringing(1000, 60_000 + seed), "")[1] for seed in range(COVERAGE_SERIES)]
    assert COVERAGE_BAND[0] <= coverage(estimates, 0.0) <= COVERAGE_BAND[1]


# -------------------------------------------------------------------------------- replicas
def test_replica_scatter_agrees_with_the_within_run_errors():
    # 200 sets of 5 replicas of one AR(1) process (g = 3): χ²/dof has mean 1 (its mean over 200
    # sets has a standard deviation of 0.05) and p is uniform: 5 % of sets below 0.05
    summaries = [
        combine_replicas([mean_estimate(ar1(0.5, 2000, 10_000 + 5 * s + k), "") for k in range(5)]) for s in range(200)
    ]
    assert np.mean([r.chi2_per_dof for r in summaries]) == pytest.approx(1.0, abs=0.15)
    p = np.array([r.p_value for r in summaries])
    assert 0.02 <= np.mean(p < 0.05) <= 0.09 and 0.4 <= np.mean(p < 0.5) <= 0.6
    # the between-replica variance matches the within-run stderr² on average
    assert np.mean([r.between_sd**2 / r.within_stderr**2 for r in summaries]) == pytest.approx(1.0, abs=0.15)


def test_combine_replicas_flags_a_replica_with_a_planted_offset():
    estimates = [mean_estimate(ar1(0.5, 2000, 20_000 + k), "g/cm³") for k in range(5)]
    shifted = estimates[:4] + [
        Estimate(estimates[4].value + 8 * estimates[4].stderr, estimates[4].stderr, estimates[4].n_eff, "g/cm³")
    ]
    summary = combine_replicas(shifted)
    assert summary.p_value < 1e-3 and summary.consistent() is False and summary.chi2_per_dof > 4
    internal = 1.0 / math.sqrt(sum(1.0 / e.stderr**2 for e in shifted))
    assert summary.combined.stderr == pytest.approx(internal * math.sqrt(summary.chi2_per_dof), rel=1e-12)
    assert "the error bars are too small" in summary.text()


def test_combine_replicas_on_a_worked_example():
    # 1 ± 1, 2 ± 1, 3 ± 2: weights 1, 1, 1/4, mean 3.75/2.25 = 5/3, χ² = 4/9 + 1/9 + 4/9 = 1 with
    # 2 dof, p = exp(−1/2); χ²/dof = 0.5 < 1 leaves the stderr 1/sqrt(2.25) unscaled
    summary = combine_replicas([Estimate(1, 1, 10, "K"), Estimate(2, 1, 20, "K"), Estimate(3, 2, 30, "K")])
    assert summary.combined.value == pytest.approx(5 / 3, rel=1e-12)
    assert summary.combined.stderr == pytest.approx(2 / 3, rel=1e-12)
    assert (summary.combined.n_eff, summary.combined.unit, summary.n_replicas, summary.dof) == (60, "K", 3, 2)
    assert summary.chi2 == pytest.approx(1.0, rel=1e-12) and summary.chi2_per_dof == pytest.approx(0.5)
    assert summary.p_value == pytest.approx(math.exp(-0.5), rel=1e-10)
    assert summary.between_sd == pytest.approx(1.0) and summary.within_stderr == pytest.approx(math.sqrt(2.0))
    assert summary.consistent() is True
    assert json.loads(json.dumps(summary.as_json(), allow_nan=False))["p_value"] == pytest.approx(math.exp(-0.5))


def test_one_replica_has_no_scatter_to_check():
    summary = combine_replicas([Estimate(1.0, 0.1, 10, "K")])
    assert summary.combined == Estimate(1.0, 0.1, 10, "K") and summary.consistent() is None
    assert summary.as_json()["chi2_per_dof"] is None and summary.text() == "1.00 ± 0.10 K (N_eff = 10) from 1 replica"


# ----------------------------------------------------------------------------- comparisons
def test_bonferroni_critical_z_is_the_normal_quantile():
    assert critical_z(0.95, 1) == pytest.approx(1.95996, abs=1e-4)
    assert critical_z(0.95, 5) == pytest.approx(2.5758, abs=1e-4)  # Φ⁻¹(1 − 0.05/10)
    assert critical_z(0.99, 1) == pytest.approx(2.5758, abs=1e-4)


def test_compare_on_worked_examples():
    # d = 0.4 ± 0.5, z = 0.8: indistinguishable; (1.96 · 0.5 / 0.4)² = 6.0 times longer runs
    c = compare(Estimate(1.0, 0.3, 50, "g/cm³"), Estimate(0.6, 0.4, 20, "g/cm³"))
    assert c.difference.value == pytest.approx(0.4) and c.difference.stderr == pytest.approx(0.5)
    assert c.z == pytest.approx(0.8) and not c.resolved
    assert c.run_length_factor_to_resolve == pytest.approx((critical_z() * 0.5 / 0.4) ** 2, rel=1e-12)
    assert c.run_length_factor_to_resolve == pytest.approx(6.00228, rel=1e-5)
    # z = 1.1/0.5 = 2.2: resolved alone, not among 5 comparisons (2.2 < 2.5758)
    a, b = Estimate(1.1, 0.3, 50, "K"), Estimate(0.0, 0.4, 20, "K")
    assert compare(a, b).resolved and compare(a, b).z == pytest.approx(2.2)
    assert not compare(a, b, n_comparisons=5).resolved
    assert compare(a, b).run_length_factor_to_resolve < 1 < compare(a, b, n_comparisons=5).run_length_factor_to_resolve
    assert compare(b, b).run_length_factor_to_resolve == math.inf and not compare(b, b).resolved
    assert compare(a, b).p_value == pytest.approx(0.027807, rel=1e-4)  # 2 (1 − Φ(2.2))


def test_verdict_text():
    a, b = Estimate(1.1, 0.3, 50, "K"), Estimate(0.0, 0.4, 20, "K")
    assert compare(a, b).verdict_text("tanh-adam", "EMT") == (
        "tanh-adam − EMT = 1.1 ± 0.5 K, z = 2.2: resolved at 95 % confidence (|z| > 1.96)"
    )
    assert compare(a, b, n_comparisons=5).verdict_text("tanh-adam", "EMT") == (
        "tanh-adam − EMT = 1.1 ± 0.5 K, z = 2.2: indistinguishable at 95 % confidence (Bonferroni, 5 comparisons: "
        "|z| ≤ 2.58); runs 1.4× as long would resolve a difference this large"
    )
    assert compare(b, b).verdict_text().endswith("no run length resolves a zero difference")
    unknown = Estimate(1.0, float("nan"), float("nan"), "K")
    assert compare(unknown, b).verdict_text() == (
        "a − b = 1 K (no error estimate): no verdict without a finite difference and error"
    )


def test_comparison_as_json_is_strict_json():
    c = compare(Estimate(0.0, 0.1, 10, "K"), Estimate(0.0, 0.1, 10, "K"))
    data = json.loads(json.dumps(c.as_json(), allow_nan=False))
    assert data["run_length_factor_to_resolve"] is None and data["resolved"] is False
    assert isinstance(c, Comparison) and data["difference"]["stderr"] == pytest.approx(math.sqrt(0.02))


# -------------------------------------------------------------------------------- Estimate
@pytest.mark.parametrize(
    "value,stderr,text",
    [
        (8.93456, 0.0213, "8.935 ± 0.021 g/cm³ (N_eff = 41)"),  # leading digits 213: two figures
        (8.93456, 0.0456, "8.93 ± 0.05 g/cm³ (N_eff = 41)"),  # 456: one figure
        (8.93456, 0.0996, "8.93 ± 0.10 g/cm³ (N_eff = 41)"),  # 996: up to 0.100, two figures
        (12345.6, 234.0, "12350 ± 230 g/cm³ (N_eff = 41)"),
        (1.2e-6, 3.4e-8, "(1.200 ± 0.034)e-6 g/cm³ (N_eff = 41)"),
        (-0.0004, 0.02, "0.000 ± 0.020 g/cm³ (N_eff = 41)"),
        (8.93456, 0.0, "8.93456 ± 0 g/cm³ (N_eff = 41)"),
        (8.93456, float("nan"), "8.93456 g/cm³ (no error estimate)"),
        (float("nan"), 0.1, "nan g/cm³"),
    ],
)
def test_estimate_text(value, stderr, text):
    assert Estimate(value, stderr, 41.2, "g/cm³").text() == text
    assert f"{Estimate(value, stderr, 41.2, 'g/cm³')}" == text


def test_estimate_text_with_chosen_digits_and_small_n_eff():
    estimate = Estimate(8.93456, 0.0213, 3.4, "")
    assert estimate.text(1) == "8.93 ± 0.02 (N_eff = 3.4)" and f"{estimate:3}" == "8.9346 ± 0.0213 (N_eff = 3.4)"
    assert estimate.text(with_n_eff=False) == "8.935 ± 0.021"
    with pytest.raises(ValueError, match=re.escape("digits must be at least 1, got 0")):
        estimate.text(0)


def test_estimate_json_round_trip_with_nan_as_null():
    estimate = Estimate(np.float64(8.93), float("nan"), 41, "g/cm³")
    data = json.loads(json.dumps(estimate.as_json(), allow_nan=False))
    assert data == {"value": 8.93, "stderr": None, "n_eff": 41.0, "unit": "g/cm³"}
    back = Estimate.from_json(data)
    assert back.value == 8.93 and math.isnan(back.stderr) and back.n_eff == 41.0 and back.unit == "g/cm³"
    assert Estimate.from_json(Estimate(1.0, 0.5, 3, "K").as_json()) == Estimate(1.0, 0.5, 3, "K")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "an Estimate in JSON needs the keys value, stderr, n_eff and "
            "unit; n_eff, unit missing in {'value': 1, 'stderr': 2}"
        ),
    ):
        Estimate.from_json({"value": 1, "stderr": 2})


def test_estimate_minus_adds_errors_in_quadrature_with_welch_satterthwaite_n_eff():
    d = Estimate(1.0, 0.3, 50, "K").minus(Estimate(0.6, 0.4, 20, "K"))
    assert d.value == pytest.approx(0.4) and d.stderr == pytest.approx(0.5)
    assert d.n_eff == pytest.approx(0.25**2 / (0.3**4 / 50 + 0.4**4 / 20), rel=1e-12)
    assert Estimate(1.0, 0.3, 50, "K").minus(Estimate(0.5, 0.0, 7, "K")).n_eff == pytest.approx(50)
    assert Estimate(1.0, 0.3, 50, "K").minus(Estimate(0.5, 0.3, 50, "K")).n_eff == pytest.approx(100)
    with pytest.raises(
        ValueError, match=re.escape("cannot subtract an estimate in 'bar' from one in 'K'; convert one of them first")
    ):
        Estimate(1.0, 0.3, 50, "K").minus(Estimate(1.0, 0.3, 50, "bar"))


def test_adequacy_flags_too_few_effective_samples():
    assert adequacy(Estimate(1.0, 0.1, 3.0, "K")) == "run longer; N_eff = 3"
    assert adequacy(Estimate(1.0, 0.1, 41.0, "K")) is None
    assert adequacy(Estimate(1.0, 0.1, 41.0, "K"), min_n_eff=50) == "run longer; N_eff = 41"
    assert adequacy(Estimate(1.0, float("nan"), float("nan"), "K")) == "no error estimate; N_eff unknown"


# ------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "call,message",
    [
        (
            lambda: mean_estimate([1.0, float("nan"), 2.0], "K"),
            "mean_estimate got non-finite values at samples [1]; drop the failed part of the run first",
        ),
        (
            lambda: mean_estimate([1.0], "K"),
            "mean_estimate needs at least 2 samples, got 1; run longer or sample more often",
        ),
        (lambda: mean_estimate(np.zeros((3, 2)), "K"), "mean_estimate needs a 1-D series, got shape (3, 2)"),
        (
            lambda: mean_estimate([1.0, 2.0], "K", "bootstrap"),
            "unknown method 'bootstrap' for mean_estimate; use 'auto', 'inefficiency' or 'blocking'",
        ),
        (
            lambda: drift_estimate([1.0, 1.0, 1.0], [1.0, 2.0, 3.0], "eV/ps"),
            "drift_estimate needs samples at different times, got all at t = 1.0 ps",
        ),
        (
            lambda: drift_estimate([0.0, 1.0, 2.0], [1.0, 2.0, 3.0, 4.0], "eV/ps"),
            "drift_estimate needs times and values of equal length, got 3 and 4",
        ),
        (lambda: detect_equilibration(np.ones(10), nskip=0), "nskip must be a positive number of samples, got 0"),
        (lambda: contiguous_blocks(10, 1), "an error estimate needs at least 2 blocks, got n_blocks=1"),
        (lambda: contiguous_blocks(3, 5), "cannot split 3 frames into 5 blocks; use n_blocks <= 3 or keep more frames"),
        (
            lambda: Estimate(1.0, -0.1, 5, "K"),
            "an Estimate needs stderr >= 0 and n_eff >= 0, got stderr=-0.1, n_eff=5.0; pass NaN for unknown",
        ),
        (lambda: combine_replicas([]), "combine_replicas needs at least one estimate, got none"),
        (
            lambda: combine_replicas([Estimate(1, 0.1, 5, "K"), Estimate(1, 0.1, 5, "bar")]),
            "combine_replicas needs estimates in one unit, got ['K', 'bar']",
        ),
        (
            lambda: combine_replicas([Estimate(1, 0.1, 5, "K"), Estimate(2, 0.0, 5, "K")]),
            "combine_replicas needs finite values and positive finite standard errors, got values [1.0, 2.0] ± "
            "[0.1, 0.0]; leave out failed replicas",
        ),
        (lambda: critical_z(1.0), "confidence must lie strictly between 0 and 1, got 1.0"),
        (lambda: critical_z(0.95, 0), "n_comparisons must be a positive integer, got 0"),
    ],
)
def test_bad_input_gets_a_one_line_error(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()
