"""Verdicts that respect noise: replicas combined, and differences that are resolved or not.

- :func:`combine_replicas`: independent runs (seeds) of one observable combined into one
  estimate, with the between-replica scatter set against the within-run standard errors (a χ²
  check of the error model of :mod:`mdval.md.uncertainty`).
- :func:`compare`: a − b ± its standard error, whether it is resolved at a confidence corrected
  for the number of comparisons (Bonferroni), and how much longer the runs would have to be to
  resolve the difference seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from scipy.special import gammaincc  # scipy is installed with ase (a dependency of ase)

from mdval.md.uncertainty import Estimate


def _finite_or_none(x: float):
    return x if math.isfinite(x) else None


# -------------------------------------------------------------------------------- replicas
@dataclass(frozen=True)
class ReplicaSummary:
    """Replicas x_i ± s_i of one observable, combined (:func:`combine_replicas`)."""

    combined: Estimate  # inverse-variance weighted mean, stderr scaled by max(1, sqrt(chi2/dof))
    n_replicas: int
    between_sd: float  # sample standard deviation of the x_i (ddof 1): the replica scatter
    within_stderr: float  # sqrt(mean s_i²): the scatter the within-run errors predict
    chi2: float  # Σ ((x_i − x̄_w) / s_i)²
    dof: int  # n_replicas − 1
    p_value: float  # P(χ²_dof ≥ chi2): small when the scatter exceeds the stated errors

    @property
    def chi2_per_dof(self) -> float:
        return self.chi2 / self.dof if self.dof else float("nan")

    def consistent(self, alpha: float = 0.05) -> bool | None:
        """Whether the scatter agrees with the within-run errors at level ``alpha`` (None: 1 replica)."""
        return None if self.dof == 0 else bool(self.p_value >= alpha)

    def as_json(self) -> dict:
        return {
            "combined": self.combined.as_json(),
            "n_replicas": self.n_replicas,
            "between_sd": _finite_or_none(self.between_sd),
            "within_stderr": _finite_or_none(self.within_stderr),
            "chi2": _finite_or_none(self.chi2),
            "dof": self.dof,
            "chi2_per_dof": _finite_or_none(self.chi2_per_dof),
            "p_value": _finite_or_none(self.p_value),
        }

    def text(self) -> str:
        """``"8.935 ± 0.010 g/cm³ (N_eff = 400) from 4 replicas; between-replica SD 0.020, within-run
        stderr 0.021 g/cm³; χ²/dof = 0.93 (p = 0.42): errors consistent with the scatter"``."""
        head = f"{self.combined.text()} from {self.n_replicas} replica{'s' if self.n_replicas > 1 else ''}"
        if self.dof == 0:
            return head
        unit = f" {self.combined.unit}" if self.combined.unit else ""
        verdict = (
            "errors consistent with the scatter"
            if self.consistent()
            else "scatter larger than the within-run errors: the error bars are too small"
        )
        return (
            f"{head}; between-replica SD {self.between_sd:.2g}, within-run stderr {self.within_stderr:.2g}{unit}; "
            f"χ²/dof = {self.chi2_per_dof:.2f} (p = {self.p_value:.2g}): {verdict}"
        )


def chi2_survival(chi2: float, dof: int) -> float:
    """P(χ²_dof ≥ chi2) = Q(dof/2, chi2/2), the regularized upper incomplete gamma function."""
    return float(gammaincc(0.5 * dof, 0.5 * chi2))


def combine_replicas(estimates: list[Estimate]) -> ReplicaSummary:
    """One estimate from independent replicas x_i ± s_i, and a check of the error model.

    The combined value is the inverse-variance weighted mean x̄ = Σ w_i x_i / Σ w_i, w_i = 1/s_i²,
    with internal standard error (Σ w_i)^(-1/2). χ² = Σ ((x_i − x̄)/s_i)² with n − 1 degrees of
    freedom tests whether the replicas scatter as their standard errors say: χ²/dof ≈ 1 when they
    do, p = P(χ²_{n−1} ≥ χ²) small when the errors are too small (or a replica is off). When
    χ²/dof > 1 the combined stderr is scaled by sqrt(χ²/dof), the Particle Data Group's scale
    factor S (Review of Particle Physics, Introduction, "Averages and fits"), so it never claims less
    than the scatter shows. N_eff is the sum of the replicas' N_eff.

    The weights 1/s_i² make χ² sensitive to the noise of the s_i themselves: an s_i² that is
    right on average but has a relative variance v raises E[χ²/dof] to about 1 + v, since
    E[1/s²] > 1/E[s²]. mdval.md.uncertainty.mean_estimate allows for that in its stderr; for
    time series much shorter than 10 correlation times no stderr is reliable and χ²/dof runs
    high (benchmarks/calibration_replicas.py).
    """
    if not estimates:
        raise ValueError("combine_replicas needs at least one estimate, got none")
    units = {e.unit for e in estimates}
    if len(units) > 1:
        raise ValueError(f"combine_replicas needs estimates in one unit, got {sorted(units)}")
    x = np.array([e.value for e in estimates])
    s = np.array([e.stderr for e in estimates])
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(s)) and np.all(s > 0)):
        raise ValueError(
            f"combine_replicas needs finite values and positive finite standard errors, got "
            f"values {x.tolist()} ± {s.tolist()}; leave out failed replicas"
        )
    w = 1.0 / s**2
    mean = float(np.sum(w * x) / np.sum(w))
    dof = x.size - 1
    chi2 = float(np.sum(w * (x - mean) ** 2))
    scale = max(1.0, math.sqrt(chi2 / dof)) if dof else 1.0
    combined = Estimate(mean, scale / math.sqrt(float(np.sum(w))), sum(e.n_eff for e in estimates), units.pop())
    return ReplicaSummary(
        combined=combined,
        n_replicas=int(x.size),
        between_sd=float(np.std(x, ddof=1)) if dof else float("nan"),
        within_stderr=float(np.sqrt(np.mean(s**2))),
        chi2=chi2 if dof else float("nan"),
        dof=dof,
        p_value=chi2_survival(chi2, dof) if dof else float("nan"),
    )


# ----------------------------------------------------------------------------- comparisons
def critical_z(confidence: float = 0.95, n_comparisons: int = 1) -> float:
    """Two-sided critical |z| with the Bonferroni correction: Φ⁻¹(1 − α / (2m)), α = 1 − confidence.

    Bonferroni (Dunn, J. Am. Stat. Assoc. 56, 52 (1961)) keeps the chance of calling any of m
    differences resolved when none is at most α, whatever their correlation; each verdict
    stands alone (Holm's step-down would need all m p-values at once).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    if n_comparisons < 1 or int(n_comparisons) != n_comparisons:
        raise ValueError(f"n_comparisons must be a positive integer, got {n_comparisons}")
    return NormalDist().inv_cdf(1.0 - (1.0 - confidence) / (2.0 * n_comparisons))


@dataclass(frozen=True)
class Comparison:
    """The verdict on a − b (:func:`compare`)."""

    difference: Estimate  # a − b ± sqrt(s_a² + s_b²)
    z: float  # difference / its stderr
    z_critical: float  # Bonferroni-corrected two-sided critical |z|
    confidence: float
    n_comparisons: int
    resolved: bool  # |z| > z_critical: the interval at this confidence excludes zero
    run_length_factor_to_resolve: float  # (z_critical · stderr / |difference|)²

    @property
    def p_value(self) -> float:
        """Two-sided p-value of the difference, uncorrected: 2 (1 − Φ(|z|))."""
        return 2.0 * (1.0 - NormalDist().cdf(abs(self.z))) if math.isfinite(self.z) else float("nan")

    def as_json(self) -> dict:
        return {
            "difference": self.difference.as_json(),
            "z": _finite_or_none(self.z),
            "z_critical": self.z_critical,
            "confidence": self.confidence,
            "n_comparisons": self.n_comparisons,
            "resolved": self.resolved,
            "run_length_factor_to_resolve": _finite_or_none(self.run_length_factor_to_resolve),
        }

    def verdict_text(self, name_a: str = "a", name_b: str = "b") -> str:
        """``"tanh-adam − reference = 0.003 ± 0.006 g/cm³, z = 0.5: indistinguishable at 95 %
        confidence (Bonferroni, 5 comparisons: |z| ≤ 2.58); runs 27× as long would resolve a
        difference this large"``."""
        head = f"{name_a} − {name_b} = {self.difference.text(with_n_eff=False)}"
        if not (math.isfinite(self.difference.value) and math.isfinite(self.difference.stderr)):
            return f"{head}: no verdict without a finite difference and error"
        level = f"{100 * self.confidence:g} % confidence"
        correction = f"Bonferroni, {self.n_comparisons} comparisons: " if self.n_comparisons > 1 else ""
        if self.resolved:
            return f"{head}, z = {self.z:.1f}: resolved at {level} ({correction}|z| > {self.z_critical:.2f})"
        tail = (
            "no run length resolves a zero difference"
            if math.isinf(self.run_length_factor_to_resolve)
            else f"runs {_format_factor(self.run_length_factor_to_resolve)}× as long would resolve "
            "a difference this large"
        )
        return (
            f"{head}, z = {self.z:.1f}: indistinguishable at {level} ({correction}|z| ≤ {self.z_critical:.2f}); {tail}"
        )


def _format_factor(factor: float) -> str:
    return f"{factor:.1f}" if factor < 10 else f"{factor:.0f}"


def compare(a: Estimate, b: Estimate, *, confidence: float = 0.95, n_comparisons: int = 1) -> Comparison:
    """Whether a and b (independent estimates) differ, at ``confidence`` over ``n_comparisons``.

    d = a − b, s = sqrt(s_a² + s_b²) (:meth:`Estimate.minus`), z = d/s. The difference is resolved
    when |z| > z_c, the Bonferroni-corrected critical value (:func:`critical_z`); otherwise a and
    b are indistinguishable. Since a standard error falls as 1/sqrt(run length), runs
    (z_c · s / |d|)² times as long would resolve a true difference as large as the d seen (at
    the median: half the time); the factor is < 1 for a resolved difference and inf for d = 0.
    """
    difference = a.minus(b)
    z_c = critical_z(confidence, n_comparisons)
    d, s = difference.value, difference.stderr
    if s > 0:
        z = d / s
    else:
        z = math.copysign(math.inf, d) if d else math.nan
    factor = (z_c * s / abs(d)) ** 2 if d else math.inf
    return Comparison(
        difference, z, z_c, confidence, int(n_comparisons), bool(abs(z) > z_c) if not math.isnan(z) else False, factor
    )
