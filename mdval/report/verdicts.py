"""Verdicts that respect noise: the best model at a metric, and each model against a baseline and
against the reference, only as far as the data resolve them.

Every number is an :class:`~mdval.md.uncertainty.Estimate` (value ± standard error); every verdict
is :func:`mdval.md.comparisons.compare` at :data:`CONFIDENCE`, Bonferroni-corrected for the number
of comparisons made for that metric (Dunn 1961):

- :func:`rank`: the model with the best score is named best only when it is resolved from every
  other model (m − 1 comparisons); otherwise the text names the models indistinguishable from it
  and how much longer the runs would have to be to resolve the smallest of those differences
  (:attr:`~mdval.md.comparisons.Comparison.run_length_factor_to_resolve`).
- :func:`versus`: each model − one estimate (the baseline model: m − 1 comparisons; the
  reference: m comparisons), signed.

A score is the value itself for a "low" metric (RMS fluctuation, RDF error, cost: smaller is
better) and the distance |x − t| to a target t for a "zero" metric (drift: t = 0 exactly; density
error: t = the reference's, with its noise). The difference of two distances,
d = |a − t| − |b − t|, has to first order the variance s_a² + s_b² + (σ_a − σ_b)² s_t², with
σ = sign(x − t) (:func:`score_difference`): the target's noise cancels when both lie on the same
side of it and counts four times when they straddle it. Folding |x| biases a distance up when
|x − t| is not large against its error; such a difference is never resolved anyway.

Stability failures are results, never ranked: the caller leaves unstable models out and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from mdval.md.comparisons import Comparison, compare, critical_z
from mdval.md.uncertainty import Estimate

#: two-sided confidence of every verdict in the report
CONFIDENCE: float = 0.95


@dataclass(frozen=True)
class Metric:
    """A column that models are ranked by."""

    key: str  # e.g. "drift_meV_per_atom_ps"
    title: str  # "smallest |drift|"
    name: str  # the observable in a sentence: "drift"
    quantity: str  # the score in a sentence: "|drift|"
    goal: str  # "zero": the smallest distance to a target wins; "low": the smallest value wins


METRICS: tuple[Metric, ...] = (
    Metric("drift_meV_per_atom_ps", "smallest |drift|", "drift", "|drift|", "zero"),
    Metric("rms_fluctuation_meV_per_atom", "smallest RMS fluctuation", "RMS fluctuation", "RMS fluctuation", "low"),
    Metric("rdf_error_percent", "lowest RDF error", "RDF error", "RDF error", "low"),
    Metric("density_g_cm3", "density closest to the reference", "ρ", "|ρ − ρ_ref|", "zero"),
    Metric("cost_ms_per_step", "cheapest", "cost", "cost", "low"),
)


def exact(value: float, unit: str) -> Estimate:
    """A number without error (a target such as zero drift)."""
    return Estimate(value, 0.0, math.inf, unit)


def score_difference(a: Estimate, b: Estimate, goal: str, target: Estimate | None = None) -> Estimate:
    """Score of a − score of b (module docstring): a − b for goal "low"; |a − t| − |b − t| for
    goal "zero" (t = ``target``, exact zero by default), with the first-order error
    sqrt(s_a² + s_b² + (σ_a − σ_b)² s_t²), σ = sign(x − t)."""
    if goal == "low":
        return a.minus(b)
    if goal != "zero":
        raise ValueError(f"a metric's goal is 'zero' or 'low', got {goal!r}")
    t = target if target is not None else exact(0.0, a.unit)
    sign_a, sign_b = math.copysign(1.0, a.value - t.value), math.copysign(1.0, b.value - t.value)
    folded = Estimate(abs(a.value - t.value), a.stderr, a.n_eff, a.unit).minus(
        Estimate(abs(b.value - t.value), b.stderr, b.n_eff, b.unit)
    )
    stderr = math.sqrt(folded.stderr**2 + (sign_a - sign_b) ** 2 * t.stderr**2)
    return Estimate(folded.value, stderr, folded.n_eff, folded.unit)


def _score(x: Estimate, goal: str, target: Estimate | None) -> float:
    return abs(x.value - (target.value if target is not None else 0.0)) if goal == "zero" else x.value


def signed(estimate: Estimate) -> str:
    """``"+0.012 ± 0.004 meV/atom/ps"``: a difference with its sign."""
    text = estimate.text(with_n_eff=False)
    return text if text.startswith("-") or not math.isfinite(estimate.value) or estimate.value < 0 else "+" + text


def _confidence(n: int) -> str:
    level = f"{100 * CONFIDENCE:g} % confidence"
    return f"{level}, Bonferroni over {n} comparisons" if n > 1 else level


def _factor(factor: float) -> str:
    """``"2.5"``, ``"37"``, ``"about 4000"``: a run-length factor to the precision it has."""
    if factor < 10:
        return f"{factor:.1f}"
    if factor < 100:
        return f"{factor:.0f}"
    return f"about {float(f'{factor:.2g}'):.0f}"


def _models(labels: list[str], n_others: int) -> str:
    if len(labels) == n_others > 1:
        return "every other model"
    return f"model{'s' if len(labels) > 1 else ''} {', '.join(labels)}"


@dataclass(frozen=True)
class Ranking:
    """The best model at one metric (:func:`rank`)."""

    metric: Metric
    best: str | None  # lowest score among the ranked models; None when none has a value
    estimates: dict[str, Estimate]  # the ranked models' estimates
    versus_best: dict[str, Comparison]  # each other ranked model: its score − the best's
    unranked: dict[str, str] = field(default_factory=dict)  # label: why it is not ranked

    @property
    def resolved(self) -> bool:
        """Whether the best is resolved from every other ranked model (also with no other)."""
        return self.best is not None and all(c.resolved for c in self.versus_best.values())

    @property
    def indistinguishable(self) -> list[str]:
        """The models whose score is not resolved from the best's, closest first."""
        return [k for k, c in sorted(self.versus_best.items(), key=lambda kc: abs(kc[1].z)) if not c.resolved]

    def text(self) -> str:
        """One sentence: the best and against what it is resolved, or which models it cannot be told
        from and how much longer the runs would have to be."""
        title, quantity = self.metric.title, self.metric.quantity
        skipped = "".join(f"; not ranked: {k} ({why})" for k, why in self.unranked.items())
        if self.best is None:
            return f"{title}: no model with a value and an error{skipped}"
        best = f"{self.best} ({self.estimates[self.best].text(with_n_eff=False)})"
        n = len(self.versus_best)
        if n == 0:
            return f"{title}: {best}, the only model with a value{skipped}"
        corrected = _confidence(next(iter(self.versus_best.values())).n_comparisons)
        if self.resolved:
            label, closest = min(self.versus_best.items(), key=lambda kc: abs(kc[1].z))
            against = (
                f"each of the {n} other models ({corrected}; closest: {label}, " if n > 1 else f"{label} ({corrected}; "
            )
            return (
                f"{title}: {best}, resolved from {against}{quantity} larger by {signed(closest.difference)}, "
                f"z = {closest.z:.1f}){skipped}"
            )
        tied = self.indistinguishable
        label = tied[0]  # the smallest |z|: the difference that needs the longest runs
        factor = self.versus_best[label].run_length_factor_to_resolve
        smallest = f"{label}: {quantity} larger by {signed(self.versus_best[label].difference)}"
        tail = (
            f"no run length resolves the smallest difference ({smallest})"
            if math.isinf(factor)
            else f"runs {_factor(factor)}× as long would resolve the smallest difference ({smallest})"
        )
        return (
            f"{title}: no resolved best; {best} leads but is indistinguishable from {_models(tied, n)} "
            f"({corrected}); {tail}{skipped}"
        )

    def as_json(self) -> dict:
        return {
            "metric": self.metric.key,
            "best": self.best,
            "resolved": self.resolved,
            "indistinguishable_from_best": self.indistinguishable,
            "estimates": {k: e.as_json() for k, e in self.estimates.items()},
            "versus_best": {k: c.as_json() for k, c in self.versus_best.items()},
            "unranked": dict(self.unranked),
            "text": self.text(),
        }


def rank(metric: Metric, estimates: dict[str, Estimate], target: Estimate | None = None) -> Ranking:
    """The best of ``estimates`` (label: estimate of the stable models) at ``metric``.

    Models without a finite value and a finite error are not ranked (they say so). The best has
    the lowest score (module docstring); each other model's score − the best's is compared with
    zero over m − 1 comparisons (Bonferroni). ``target``: the estimate a "zero" metric's distance
    is measured from (default: exactly 0)."""
    ranked, unranked = {}, {}
    for label, e in estimates.items():
        if not math.isfinite(e.value):
            unranked[label] = "no value"
        elif not math.isfinite(e.stderr):
            unranked[label] = "no error estimate"
        else:
            ranked[label] = e
    if not ranked:
        return Ranking(metric, None, {}, {}, unranked)
    best = min(ranked, key=lambda k: _score(ranked[k], metric.goal, target))
    n = len(ranked) - 1
    versus_best = {
        label: compare(
            score_difference(e, ranked[best], metric.goal, target),
            exact(0.0, e.unit),
            confidence=CONFIDENCE,
            n_comparisons=n,
        )
        for label, e in ranked.items()
        if label != best
    }
    return Ranking(metric, best, ranked, versus_best, unranked)


def versus(
    estimates: dict[str, Estimate], other: Estimate, *, n_comparisons: int | None = None
) -> dict[str, Comparison]:
    """Each estimate − ``other`` (signed; independent runs), at :data:`CONFIDENCE` over
    ``n_comparisons`` (default: one per estimate) Bonferroni-corrected comparisons. Estimates
    without a finite value, or in another unit, are left out."""
    usable = {k: e for k, e in estimates.items() if math.isfinite(e.value) and e.unit == other.unit}
    n = n_comparisons or max(len(usable), 1)
    return {k: compare(e, other, confidence=CONFIDENCE, n_comparisons=n) for k, e in usable.items()}


def cell(comparison: Comparison) -> str:
    """A table cell of a difference: ``"+0.012 ± 0.004 *"``, the star when it is resolved
    (unit in the column header)."""
    d = comparison.difference
    text = signed(Estimate(d.value, d.stderr, d.n_eff, ""))
    return text + " *" if comparison.resolved else text


def star_note(n_comparisons: int) -> str:
    """What the star of :func:`cell` means, with the critical |z| it took."""
    z = critical_z(CONFIDENCE, max(n_comparisons, 1))
    return f"* resolved: |z| > {z:.2f} ({_confidence(n_comparisons)})"
