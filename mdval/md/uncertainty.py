"""Standard errors and effective sample sizes of MD observables (DESIGN.md section 6).

Every observable of a validation run is an :class:`Estimate`: value ± standard error, with the
effective number of independent samples N_eff behind it and its unit; its JSON form is
``{"value": x, "stderr": s, "n_eff": n, "unit": "..."}`` (non-finite numbers become null).

Estimators (pure numpy; plain arrays in, :class:`Estimate` out):

- :func:`inefficiency` (:func:`statistical_inefficiency`) and :func:`block_standard_error`: the
  two standard ways to account for the autocorrelation of an MD time series; :func:`mean_estimate`
  uses either.
- :func:`detect_equilibration`: the start of the production window, chosen from the data.
- :func:`drift_estimate`: a least-squares slope with an autocorrelation-aware error.
- :func:`std_estimate`: the RMS fluctuation about the mean, with its error.
- :func:`block_estimate` and :func:`contiguous_blocks`: for quantities computed per block of
  frames (an RDF error, a first-peak position).
- :func:`adequacy`: "run longer; N_eff = 3" when an estimate rests on too few samples.

Replicas and model-against-model verdicts are in :mod:`mdval.md.comparisons`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.special import gammaincinv  # scipy is installed with ase (a dependency of ase)

#: N_eff below which :func:`adequacy` flags an estimate
MIN_N_EFF: float = 10.0
#: Sokal's window: the autocovariance is summed up to the smallest lag M ≥ WINDOW_C·ĝ(M) (:func:`inefficiency`)
WINDOW_C: float = 5.0
#: the window never spans more than this fraction of the series: beyond it ĝ(M) is mostly noise
#: and its mean-subtraction bias large; a series that reaches it is shorter than ~20 g
MAX_WINDOW_FRACTION: float = 0.25


def _finite_or_none(x: float):
    return x if math.isfinite(x) else None


def _none_to_nan(x) -> float:
    return float("nan") if x is None else float(x)


# ------------------------------------------------------------------------------ Estimate
@dataclass(frozen=True)
class Estimate:
    """An observable as value ± standard error (both in ``unit``) from ``n_eff`` effective samples.

    ``stderr`` is the standard error of ``value`` (one standard deviation of its sampling
    distribution); ``n_eff`` the number of statistically independent samples that it rests on
    (N/g for a time series of N samples with statistical inefficiency g; the number of blocks
    for a per-block estimate). NaN means unknown.
    """

    value: float
    stderr: float
    n_eff: float
    unit: str

    def __post_init__(self):
        for name in ("value", "stderr", "n_eff"):  # plain floats, so json and repr stay simple
            object.__setattr__(self, name, float(getattr(self, name)))
        if self.stderr < 0 or self.n_eff < 0:
            raise ValueError(
                f"an Estimate needs stderr >= 0 and n_eff >= 0, got stderr={self.stderr}, "
                f"n_eff={self.n_eff}; pass NaN for unknown"
            )

    def as_json(self) -> dict:
        """``{"value", "stderr", "n_eff", "unit"}``, with NaN and ±inf as None (JSON null)."""
        return {
            "value": _finite_or_none(self.value),
            "stderr": _finite_or_none(self.stderr),
            "n_eff": _finite_or_none(self.n_eff),
            "unit": self.unit,
        }

    @classmethod
    def from_json(cls, data: dict) -> Estimate:
        """The inverse of :meth:`as_json` (null becomes NaN)."""
        missing = [k for k in ("value", "stderr", "n_eff", "unit") if k not in data]
        if missing:
            raise ValueError(
                f"an Estimate in JSON needs the keys value, stderr, n_eff and unit; "
                f"{', '.join(missing)} missing in {data}"
            )
        return cls(
            _none_to_nan(data["value"]), _none_to_nan(data["stderr"]), _none_to_nan(data["n_eff"]), str(data["unit"])
        )

    def text(self, digits: int | None = None, *, with_n_eff: bool = True) -> str:
        """``"8.935 ± 0.021 g/cm³ (N_eff = 41)"``.

        The standard error keeps ``digits`` significant figures, or by default 1 or 2 after the
        Particle Data Group's rule (Review of Particle Physics, Introduction, "Rounding"): the
        three leading digits 100-354 keep two, 355-949 keep one, 950-999 round up to 1000 and
        keep two. The value is rounded to the same decimal place. Very small or large numbers
        share one power of ten: ``"(1.200 ± 0.034)e-6"``. ``with_n_eff=False`` leaves out N_eff.
        """
        unit = f" {self.unit}" if self.unit else ""
        n_eff = f" (N_eff = {_format_n_eff(self.n_eff)})" if with_n_eff and math.isfinite(self.n_eff) else ""
        if not math.isfinite(self.value):
            return f"{self.value}{unit}"
        if math.isnan(self.stderr):
            return f"{self.value:.6g}{unit} (no error estimate)"
        if self.stderr == 0 or math.isinf(self.stderr):
            return f"{self.value:.6g} ± {self.stderr:g}{unit}{n_eff}"
        return f"{_value_pm_stderr(self.value, self.stderr, digits)}{unit}{n_eff}"

    def __format__(self, spec: str) -> str:
        """``f"{estimate}"`` is :meth:`text`; ``f"{estimate:1}"`` keeps 1 significant figure."""
        return self.text(int(spec) if spec else None)

    def minus(self, other: Estimate) -> Estimate:
        """The difference self − other of two independent estimates.

        stderr = sqrt(s_a² + s_b²). N_eff is the Welch-Satterthwaite effective number
        (Welch, Biometrika 34, 28 (1947); Satterthwaite, Biometrics Bull. 2, 110 (1946)),
        N_eff = (s_a² + s_b²)² / (s_a⁴/N_a + s_b⁴/N_b): the sample size behind the combined
        variance. It is N_a when b is exact (s_b = 0) and 2N for two equal estimates.
        """
        if self.unit != other.unit:
            raise ValueError(
                f"cannot subtract an estimate in {other.unit!r} from one in {self.unit!r}; convert one of them first"
            )
        va, vb = self.stderr**2, other.stderr**2
        denominator = (va**2 / self.n_eff if va else 0.0) + (vb**2 / other.n_eff if vb else 0.0)
        # both exact: the smaller sample; a NaN n_eff or stderr makes the result's NaN
        n_eff = min(self.n_eff, other.n_eff) if denominator == 0 else (va + vb) ** 2 / denominator
        return Estimate(self.value - other.value, math.sqrt(va + vb), n_eff, self.unit)


def _format_n_eff(n_eff: float) -> str:
    return f"{n_eff:.2g}" if n_eff < 10 else f"{n_eff:.0f}"


def _significant_digits(stderr: float, digits: int | None) -> tuple[int, int]:
    """(number of significant figures, decade of the leading one) for the standard error."""
    exponent = math.floor(math.log10(stderr))
    if digits is not None:
        if digits < 1:
            raise ValueError(f"digits must be at least 1, got {digits}")
        rounded = round(stderr, digits - 1 - exponent)  # 0.0996 with 2 digits is 0.10: a decade up
        return digits, max(exponent, math.floor(math.log10(rounded)))
    leading = round(stderr / 10.0 ** (exponent - 2))
    if leading >= 950:  # PDG: round up to 1000, two significant figures of the next decade
        return 2, exponent + 1
    return (2 if leading < 355 else 1), exponent


def _value_pm_stderr(value: float, stderr: float, digits: int | None) -> str:
    n_digits, exponent = _significant_digits(stderr, digits)
    scale = 0
    if exponent < -4 or max(exponent, math.floor(math.log10(abs(value))) if value else exponent) >= 6:
        scale = math.floor(math.log10(max(abs(value), stderr)))
        value, stderr, exponent = value / 10.0**scale, stderr / 10.0**scale, exponent - scale
    decimals = n_digits - 1 - exponent
    shown = max(decimals, 0)
    v, s = round(value, decimals) + 0.0, round(stderr, decimals)  # + 0.0: no "-0.00"
    text = f"{v:.{shown}f} ± {s:.{shown}f}"
    return f"({text})e{scale}" if scale else text


def adequacy(estimate: Estimate, min_n_eff: float = MIN_N_EFF) -> str | None:
    """A flag for an estimate resting on fewer than ``min_n_eff`` effective samples, else None.

    Below about 10 independent samples the standard error is itself uncertain by more than
    ~25 % (its relative error is about 1/sqrt(2 N_eff)) and mean ± 1.96·stderr covers the truth
    noticeably less than 95 % of the time (Student's t with N_eff − 1 degrees of freedom).
    """
    if not math.isfinite(estimate.n_eff):
        return "no error estimate; N_eff unknown"
    if estimate.n_eff < min_n_eff:
        return f"run longer; N_eff = {_format_n_eff(estimate.n_eff)}"
    return None


# -------------------------------------------------------------------- time-series estimators
def _series(x, name: str, minimum: int = 2) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name} needs a 1-D series, got shape {a.shape}")
    if a.size < minimum:
        raise ValueError(f"{name} needs at least {minimum} samples, got {a.size}; run longer or sample more often")
    if not np.all(np.isfinite(a)):
        raise ValueError(
            f"{name} got non-finite values at samples {np.flatnonzero(~np.isfinite(a))[:5].tolist()}; "
            "drop the failed part of the run first"
        )
    return a


def _autocovariance(x: np.ndarray) -> np.ndarray:
    """γ̂(t) = Σ_{i<N−t} δx_i δx_{i+t} / N for t = 0..N−1, δx = x − x̄ (FFT, O(N log N)).

    The 1/N normalisation (not 1/(N − t)) keeps the sequence positive definite and its long-lag
    noise small (Priestley, Spectral Analysis and Time Series (1981))."""
    n = x.size
    dx = x - x.mean()
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(dx, size)
    return np.fft.irfft(spectrum * spectrum.conjugate(), size)[:n] / n


class Inefficiency(NamedTuple):
    """Result of :func:`inefficiency`."""

    g: float  # statistical inefficiency (≥ 1): N samples hold N/g independent ones
    window: int  # M: lags summed
    relative_variance: float  # var(ĝ)/g² ≈ 2(2M + 1)/N, the noise of g itself


def inefficiency(x) -> Inefficiency:
    """The statistical inefficiency g of a stationary series, with the window and the noise of ĝ.

    g = Σ_{|t|<N} ρ(t) = 1 + 2 Σ_{t≥1} ρ(t), ρ the autocorrelation, so that var(x̄) = g·σ²/N.
    Estimated as

        ĝ(M) = 1 + 2 Σ_{t=1}^{M} γ̂(t)/γ̂(0),        ĝ = ĝ(M)·(1 + (2M + 1)/N),

    with γ̂ the autocovariance (:func:`_autocovariance`) and:

    - the window M chosen automatically as the smallest M ≥ C·ĝ(M), C = :data:`WINDOW_C` = 5
      (Madras & Sokal, J. Stat. Phys. 50, 109 (1988); Sokal, "Monte Carlo methods in statistical
      mechanics: foundations and new algorithms", in Functional Integration, Plenum (1997); with
      C applied to g = 2τ_int as in emcee, Foreman-Mackey et al., PASP 125, 306 (2013)), and at
      most :data:`MAX_WINDOW_FRACTION`·N.
      The window sums ρ(t) whatever its sign, so a fast oscillation that dips to or below zero
      (MD temperature and pressure ring at phonon frequencies before relaxing with the
      thermostat) does not end the sum before the slow positive tail. Cutting at the first
      ρ(t) ≤ 0 (Chodera et al., J. Chem. Theory Comput. 3, 26 (2007), pymbar) misses that tail;
      so does Geyer's initial positive sequence (Stat. Sci. 7, 473 (1992)), whose pair sums
      ρ(2k) + ρ(2k+1) turn negative in the dip;
    - the factor 1 + (2M + 1)/N corrects the bias from subtracting the sample mean, which lowers
      every γ̂(t) by about var(x̄), the same for every lag (Wolff, Comput. Phys. Commun. 156, 143
      (2004)). Without it g comes out 15-30 % low at N/g ≈ 30-60.

    The estimate is itself noisy: var(ĝ)/g² ≈ 2(2M + 1)/N (Madras & Sokal 1988), returned as
    ``relative_variance`` for :func:`mean_estimate`. g ≥ 1 is enforced, so an observable whose
    mean converges faster than white noise (an NPT pressure that a barostat holds) gets a safe-side
    error. A constant series has g = 1.

    Measured: on AR(1) series of 4096 samples the mean ĝ is within 5 % of the true g for
    g = 1-19 (tests/test_uncertainty.py). Limits (benchmarks/calibration_replicas.py, 60 replicas
    of 108-atom EAM copper): a correlation that rings slowly, with a period and decay much longer
    than g, is cut short like any other. The temperature under LAMMPS' Nosé-Hoover NPT rings with
    a period of ~0.7 ps (70 samples) for a true g ≈ 15, the window stops after ~35 lags, and the
    error of its mean is 1.3× too small in a 4.8 ps run. Below N/g ≈ 10 (the demo's 0.6 ps NVT,
    60 samples for g ≈ 10) no window can be long enough: ĝ comes out low, often low enough to
    escape :func:`adequacy`'s N_eff < 10, and the replicas' χ²/dof is 2-3.5. Run longer there.
    """
    a = _series(x, "statistical_inefficiency")
    if np.ptp(a) == 0:
        return Inefficiency(1.0, 0, 0.0)
    n = a.size
    gamma = _autocovariance(a)
    g_of_m = 1.0 + 2.0 * np.cumsum(gamma[1:]) / gamma[0]  # ĝ(M) for M = 1..N−1
    longest = max(1, int(MAX_WINDOW_FRACTION * n))
    reached = np.flatnonzero(np.arange(1, longest + 1) >= WINDOW_C * g_of_m[:longest])
    window = int(reached[0]) + 1 if reached.size else longest
    g = float(g_of_m[window - 1]) * (1.0 + (2 * window + 1) / n)
    return Inefficiency(max(g, 1.0), window, 2.0 * (2 * window + 1) / n)


def statistical_inefficiency(x) -> float:
    """The statistical inefficiency g ≥ 1 of a stationary series (:func:`inefficiency`)."""
    return inefficiency(x).g


class Blocking(NamedTuple):
    """Result of :func:`block_standard_error`."""

    stderr: float  # standard error of the mean, in the unit of x
    n_eff: float  # var(x) / stderr²
    block_size: int  # samples per block at the chosen level (2**level)
    converged: bool  # False: no level passed the test; the last level with two blocks was used


def block_standard_error(x, *, alpha: float = 0.01) -> Blocking:
    """Standard error of the mean by blocking, with the block size chosen automatically.

    Blocking (Flyvbjerg & Petersen, J. Chem. Phys. 91, 461 (1989)): level k averages adjacent
    pairs k times, giving n_k block means of 2^k samples (an odd sample at the end of a level is
    dropped). Once blocks are longer than the correlation time the block means are independent
    and stderr_k = sqrt(σ̂_k² / (n_k − 1)), with σ̂_k² the variance (ddof 0) of the level-k means.

    The level is chosen by the automatic criterion of Jonsson, Phys. Rev. E 98, 043304 (2018):
    with ρ̂_k the lag-1 autocorrelation of the level-k means, n_k ρ̂_k² is asymptotically χ²_1
    for uncorrelated block means, so M_j = Σ_{k=j}^{d−1} n_k ρ̂_k² is χ² with d − j degrees of
    freedom when the block means at levels j and above are uncorrelated; the first level j with
    M_j below the 1 − ``alpha`` quantile of χ²_{d−j} is used. (Jonsson's published code compares
    M_j with the quantile for j + 1 degrees of freedom instead, which rejects the first levels of
    white noise most of the time.) n_eff = var(x)/stderr² (ddof 1).

    Measured on AR(1) series (tests/test_uncertainty.py): 95 % intervals cover the true mean
    95 % of the time for g = 1, 93 % for g = 3 at N = 4096 (95 % at N = 16384), but only about
    91 % for g = 19 at N = 4096: blocks of 16-64 samples still correlate enough to bias the
    variance low (by about 2τ/block size) without failing the test. Series that ring (MD
    temperature and pressure) are worse: blocks about one period long average the ringing out,
    their lag-1 correlation is small, the test passes while the blocks still carry the slow
    correlation, and on 108-atom NVT copper the errors of the mean temperature and pressure come
    out 1.3-2.6× too small (benchmarks/calibration_replicas.py). This is why
    :func:`mean_estimate` defaults to the statistical inefficiency.
    """
    a = _series(x, "block_standard_error", minimum=4)
    variances, rho, counts = [], [], []
    y = a
    while y.size >= 2:
        d = y - y.mean()
        variance = float(np.mean(d * d))
        variances.append(variance)
        rho.append(float(np.sum(d[:-1] * d[1:]) / y.size / variance) if variance > 0 else 0.0)
        counts.append(y.size)
        y = 0.5 * (y[0 : y.size // 2 * 2 : 2] + y[1 : y.size // 2 * 2 : 2])
    levels = len(counts)
    statistic = np.cumsum((np.array(counts) * np.array(rho) ** 2)[::-1])[::-1]
    quantile = 2.0 * gammaincinv(0.5 * np.arange(levels, 0, -1), 1.0 - alpha)  # χ²_{d−j} quantiles
    passed = np.flatnonzero(statistic < quantile)
    level = int(passed[0]) if passed.size else levels - 1
    stderr = math.sqrt(variances[level] / (counts[level] - 1))
    n_eff = float(np.var(a, ddof=1)) / stderr**2 if stderr > 0 else float(a.size)
    return Blocking(stderr, n_eff, 2**level, bool(passed.size))


def mean_estimate(x, unit: str, method: str = "auto") -> Estimate:
    """The mean of a stationary time series with its standard error and N_eff.

    ``method``:
    - ``"inefficiency"``: with g, M and var(ĝ)/g² = 2(2M + 1)/N from :func:`inefficiency`,

          stderr = sqrt(g · var(x)/N · (1 + 2(2M + 1)/N)),   N_eff = N/g.

      The last factor allows for the noise of ĝ: E[1/ĝ] ≈ (1 + var(ĝ)/g²)/g to second order
      (delta method), so E[(x̄ − μ)²/stderr²] ≈ 1, which is what a replica χ²/dof and a z-test
      assume, and x̄ ± 1.96·stderr covers about 95 % (it plays the part of Student's t for the
      few degrees of freedom behind the error of a short series). With M ≈ 5g it adds about
      10 % to the stderr at N/g = 100, and at most 41 % (the window stops at N/4);
    - ``"blocking"``: :func:`block_standard_error`;
    - ``"auto"`` (the default) is ``"inefficiency"``.

    Measured (benchmarks/calibration_replicas.py, 60 replicas of 108-atom EAM copper in NVT at
    300 and 600 K): with 300 and 600 samples 0.01 ps apart the replicas' temperature and pressure
    χ²/dof is 0.76-1.42 and 95 % intervals hold the thermostat's temperature 93-97 % of the time;
    the former g, cut at the first zero of ρ(t), gave χ²/dof 1.1-2.0 (1.9-3.0 with Chodera's
    window) and 77-88 %. On AR(1) series of 4096 samples the 95 % intervals cover 95 % ± 1 % up
    to g = 19; blocking's about 91 % at g = 19 (tests/test_uncertainty.py), and its errors of
    MD temperature and pressure means are 1.3-2.6× too small. Take the production window first
    (:func:`detect_equilibration`).
    """
    a = _series(x, "mean_estimate")
    if method not in ("auto", "inefficiency", "blocking"):
        raise ValueError(f"unknown method {method!r} for mean_estimate; use 'auto', 'inefficiency' or 'blocking'")
    if np.ptp(a) == 0:  # exact: a sum of N equal floats need not return N times the float
        return Estimate(float(a[0]), 0.0, float(a.size), unit)
    if method in ("auto", "inefficiency"):
        return Estimate(float(a.mean()), _stderr_of_mean(a), a.size / statistical_inefficiency(a), unit)
    blocking = block_standard_error(a)
    return Estimate(float(a.mean()), blocking.stderr, blocking.n_eff, unit)


def _stderr_of_mean(a: np.ndarray) -> float:
    """sqrt(g · var(a)/N · (1 + var(ĝ)/g²)) (:func:`mean_estimate`)."""
    found = inefficiency(a)
    return math.sqrt(found.g * float(np.var(a, ddof=1)) / a.size * (1.0 + found.relative_variance))


def std_estimate(x, unit: str) -> Estimate:
    """The standard deviation s of a stationary series (RMS about its mean) with its error.

    s² is the mean of the squared deviations d_i = (x_i − x̄)²; its standard error is that of a
    mean of the correlated series d_i (:func:`mean_estimate`: g_d of d, with the allowance for
    the noise of ĝ_d), and the delta method gives stderr(s) = stderr(s²)/(2s). N_eff = N/g_d.
    For the RMS fluctuation about a fit, pass the residuals of the fit. The 95 % intervals cover
    the true σ at the nominal rate on AR(1) series of 4096 samples with g ≤ 3 (s is skewed when
    N/g is small).
    """
    a = _series(x, "std_estimate", minimum=3)
    d = (a - a.mean()) ** 2
    s = math.sqrt(float(np.mean(d)))
    if s == 0:
        return Estimate(0.0, 0.0, float(a.size), unit)
    return Estimate(s, _stderr_of_mean(d) / (2 * s), a.size / statistical_inefficiency(d), unit)


class Equilibration(NamedTuple):
    """Result of :func:`detect_equilibration`: production is x[t0:]."""

    t0: int  # first sample of the production window
    g: float  # statistical inefficiency of x[t0:]
    n_eff: float  # (N − t0) / g


def detect_equilibration(x, nskip: int = 1) -> Equilibration:
    """The start t0 of the production window, chosen from the data by the marginal standard error rule.

    MSER (White, Simulation 69, 323 (1997); White, Cobb & Spratt, Proc. Winter Simulation Conf.
    (2000)): among the candidates t0 = 0, nskip, 2·nskip, ... ≤ N/2, choose

        t0 = argmin MSER(t0),   MSER(t0) = Σ_{i≥t0} (x_i − x̄_{t0})² / (N − t0)²,

    the squared standard error of the mean of x[t0:] as if its samples were independent. A
    transient at the start inflates the spread about the later mean until it is cut;
    cutting more only loses samples. Hoad, Robinson & Davies (J. Oper. Res. Soc. 61, 1389 (2010))
    found MSER the most reliable of 40-odd warm-up rules.

    Why not Chodera's rule, t0 = argmax (N − t0)/ĝ(t0) (J. Chem. Theory Comput. 12, 1799 (2016)),
    used here before: ĝ(t0) of a tail is noisy and, with the tail's own mean subtracted, lowest
    for a tail that stays on one side of the true mean. The argmax picks such tails (on 60
    stationary NVT replicas it chose windows as late as the last 10 % of the run, with ĝ = 1), so
    their means scatter 1.1-1.4× more than over the whole series while their errors shrink: the
    replica χ²/dof was 1.9-3.0 with 300-600 samples (benchmarks/calibration_replicas.py), against
    1.1-2.0 for the same g over the whole series. MSER's spread about the tail mean is far less
    noisy than ĝ, and it does not look past N/2. On stationary series it rarely cuts (median
    t0 = 0); on a planted exponential transient 10σ high it leaves a bias below 2 standard errors
    (tests/test_uncertainty.py). g and N_eff are those of the window (:func:`inefficiency`).
    """
    a = _series(x, "detect_equilibration", minimum=3)
    if nskip < 1:
        raise ValueError(f"nskip must be a positive number of samples, got {nskip}")
    n = a.size
    d = a - a.mean()  # the tail sums below, relative to the mean, keep their precision
    tail_sum = np.cumsum(d[::-1])[::-1]
    tail_squares = np.cumsum((d * d)[::-1])[::-1]
    starts = np.arange(0, n // 2 + 1, nskip)
    count = n - starts
    mser = (tail_squares[starts] - tail_sum[starts] ** 2 / count) / count**2
    t0 = int(starts[int(np.argmin(mser))])
    g = statistical_inefficiency(a[t0:])
    return Equilibration(t0, g, (n - t0) / g)


def equilibrated_mean(x, unit: str, nskip: int = 1) -> tuple[Equilibration, Estimate]:
    """:func:`detect_equilibration`, then :func:`mean_estimate` of the production window x[t0:]."""
    window = detect_equilibration(x, nskip)
    return window, mean_estimate(np.asarray(x, dtype=float)[window.t0 :], unit)


def drift_estimate(t_ps, e, unit: str) -> Estimate:
    """Least-squares slope b of e(t) = a + b·t, with an error that accounts for correlated noise.

    b = Σ(t − t̄)(e − ē) / Σ(t − t̄)². For independent residuals r_i the slope's variance is
    σ_r² / Σ(t − t̄)² with σ_r² = Σ r_i² / (N − 2); serially correlated residuals carry fewer
    independent samples, and the variance grows by their statistical inefficiency g_r
    (:func:`inefficiency` of the residuals, with the allowance for the noise of ĝ_r as in
    :func:`mean_estimate`):

        var(b) = g_r · σ_r² / Σ(t − t̄)² · (1 + 2(2M + 1)/N),   N_eff = N / g_r.

    This is the effective-sample-size correction of Santer et al., J. Geophys. Res. 105, 7337
    (2000) (there with the AR(1) form g = (1 + r₁)/(1 − r₁)), with g_r summed over all
    relevant lags. ``unit`` is that of e per unit of t, e.g. "meV/atom/ps" for e in meV/atom
    and t in ps.
    """
    t = _series(t_ps, "drift_estimate", minimum=3)
    y = _series(e, "drift_estimate", minimum=3)
    if t.shape != y.shape:
        raise ValueError(f"drift_estimate needs times and values of equal length, got {t.size} and {y.size}")
    dt = t - t.mean()
    sxx = float(np.sum(dt * dt))
    if sxx == 0:
        raise ValueError(f"drift_estimate needs samples at different times, got all at t = {t[0]} ps")
    slope = float(np.sum(dt * (y - y.mean())) / sxx)
    residual = y - y.mean() - slope * dt
    found = inefficiency(residual)
    variance = float(np.sum(residual**2)) / (y.size - 2)
    return Estimate(
        slope, math.sqrt(found.g * variance / sxx * (1.0 + found.relative_variance)), y.size / found.g, unit
    )


# ------------------------------------------------------------------------ per-block estimates
def contiguous_blocks(n_samples: int, n_blocks: int) -> list[np.ndarray]:
    """Indices 0..n_samples-1 split into ``n_blocks`` contiguous blocks of (almost) equal size.

    For observables computed per block of trajectory frames (:func:`block_estimate`): blocks
    longer than the correlation time give independent values.
    """
    if n_blocks < 2:
        raise ValueError(f"an error estimate needs at least 2 blocks, got n_blocks={n_blocks}")
    if n_samples < n_blocks:
        raise ValueError(
            f"cannot split {n_samples} frames into {n_blocks} blocks; use n_blocks <= {n_samples} or keep more frames"
        )
    return np.array_split(np.arange(n_samples), n_blocks)


def block_estimate(per_block_values, unit: str) -> Estimate:
    """Mean ± standard error of a quantity computed on each of B blocks of frames.

    value = mean of the B block values v_b, stderr = sd(v_b) / sqrt(B) (ddof 1), N_eff = B:
    the blocks are taken as independent (Flyvbjerg & Petersen 1989, at one fixed block size),
    which holds when each block is much longer than the correlation time. For a non-linear
    quantity the block mean differs from the value over all frames: an RDF error ∫|g − g_ref| dr
    grows with the noise of g, which is larger in a block than in all frames. Report the
    all-frames value with this stderr if that matters.
    """
    v = _series(per_block_values, "block_estimate")
    return Estimate(float(v.mean()), float(np.std(v, ddof=1)) / math.sqrt(v.size), float(v.size), unit)
