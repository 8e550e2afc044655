"""Verdicts of the compare report (mdval/report/verdicts.py, mdval/report/rows.py) on constructed
estimates: the exact sentences, the Bonferroni correction, the noise of a shared reference, and
that unstable models are reported but never ranked.

Hand-worked numbers: two estimates 1.00 ± 0.10 and 1.30 ± 0.10 differ by 0.30 ± 0.141 (z = 2.12).
That clears the two-sided 95 % critical value for one comparison (1.96) but not the one
Bonferroni gives for three, Φ⁻¹(1 − 0.05/6) = 2.394; runs (2.394 · 0.1414 / 0.30)² = 1.27× as long
would resolve it.
"""

from __future__ import annotations

import math
import re

import pytest

from mdval.md.uncertainty import Estimate
from mdval.report import rows as rw
from mdval.report import verdicts as vd

METRIC = {m.key: m for m in vd.METRICS}


def pct(value: float, stderr: float, n_eff: float = 40.0) -> Estimate:
    return Estimate(value, stderr, n_eff, "%")


def fluct(value: float, stderr: float) -> Estimate:
    return Estimate(value, stderr, 40.0, "meV/atom")


def drift(value: float, stderr: float) -> Estimate:
    return Estimate(value, stderr, 40.0, "meV/atom/ps")


def test_a_best_resolved_from_every_other_model_says_against_what():
    ranking = vd.rank(METRIC["rdf_error_percent"], {"a": pct(1.0, 0.1), "b": pct(2.0, 0.1), "c": pct(3.0, 0.2)})
    assert ranking.best == "a" and ranking.resolved and ranking.indistinguishable == []
    assert ranking.text() == (
        "lowest RDF error: a (1.00 ± 0.10 %), resolved from each of the 2 other models "
        "(95 % confidence, Bonferroni over 2 comparisons; closest: b, RDF error larger by "
        "+1.00 ± 0.14 %, z = 7.1)"
    )


def test_bonferroni_turns_a_resolved_difference_into_an_unresolved_one():
    two = vd.rank(METRIC["rms_fluctuation_meV_per_atom"], {"a": fluct(1.0, 0.1), "b": fluct(1.3, 0.1)})
    assert two.resolved
    assert two.text() == (
        "smallest RMS fluctuation: a (1.00 ± 0.10 meV/atom), resolved from b (95 % confidence; "
        "RMS fluctuation larger by +0.30 ± 0.14 meV/atom, z = 2.1)"
    )
    four = vd.rank(
        METRIC["rms_fluctuation_meV_per_atom"],
        {"a": fluct(1.0, 0.1), "b": fluct(1.3, 0.1), "c": fluct(5.0, 0.1), "d": fluct(6.0, 0.1)},
    )
    assert not four.resolved and four.indistinguishable == ["b"]
    assert four.versus_best["b"].z_critical == pytest.approx(2.394, abs=5e-4)
    assert four.versus_best["b"].run_length_factor_to_resolve == pytest.approx(1.274, abs=1e-3)
    assert four.text() == (
        "smallest RMS fluctuation: no resolved best; a (1.00 ± 0.10 meV/atom) leads but is "
        "indistinguishable from model b (95 % confidence, Bonferroni over 3 comparisons); runs "
        "1.3× as long would resolve the smallest difference (b: RMS fluctuation larger by "
        "+0.30 ± 0.14 meV/atom)"
    )


def test_drift_is_ranked_by_its_size_and_models_without_an_error_are_not_ranked():
    # |−0.015| − |0.010| = 0.005 ± sqrt(0.02² + 0.02²) = 0.0283: z = 0.18, runs (1.96·0.0283/0.005)² ≈ 123× as long
    ranking = vd.rank(
        METRIC["drift_meV_per_atom_ps"],
        {"a": drift(0.010, 0.020), "b": drift(-0.015, 0.020), "d": drift(0.1, math.nan)},
    )
    assert ranking.best == "a" and ranking.unranked == {"d": "no error estimate"}
    assert ranking.versus_best["b"].difference.value == pytest.approx(0.005, rel=1e-12)
    assert ranking.text() == (
        "smallest |drift|: no resolved best; a (0.010 ± 0.020 meV/atom/ps) leads but is "
        "indistinguishable from model b (95 % confidence); runs about 120× as long would resolve "
        "the smallest difference (b: |drift| larger by +0.005 ± 0.028 meV/atom/ps); not ranked: "
        "d (no error estimate)"
    )


def test_a_tie_with_every_model_and_the_edge_cases():
    tied = vd.rank(METRIC["cost_ms_per_step"], {k: Estimate(10.0 + k, 3.0, 3.0, "ms/step") for k in range(3)})
    assert tied.indistinguishable == [1, 2]
    assert (
        "0 (10.0 ± 3.0 ms/step) leads but is indistinguishable from every other model (95 % confidence, "
        "Bonferroni over 2 comparisons)" in tied.text()
    )
    assert (
        vd.rank(METRIC["cost_ms_per_step"], {"a": Estimate(9.0, 1.0, 3.0, "ms/step")}).text()
        == "cheapest: a (9.0 ± 1.0 ms/step), the only model with a value"
    )
    assert vd.rank(METRIC["cost_ms_per_step"], {}).text() == "cheapest: no model with a value and an error"
    zero = vd.rank(METRIC["rdf_error_percent"], {"a": pct(1.0, 0.1), "b": pct(1.0, 0.1)})
    assert zero.text().endswith(
        "no run length resolves the smallest difference (b: RDF error larger by +0.00 ± 0.14 %)"
    )


@pytest.mark.parametrize(
    ("factor", "text"), [(1.274, "1.3"), (37.4, "37"), (3960.0, "about 4000"), (64212.0, "about 64000")]
)
def test_run_length_factors_keep_the_precision_they_have(factor, text):
    assert vd._factor(factor) == text


def test_the_reference_noise_counts_once_on_one_side_and_four_times_across():
    reference = Estimate(8.79, 0.01, 50.0, "g/cm³")
    same_side = vd.score_difference(
        Estimate(8.85, 0.01, 40.0, "g/cm³"), Estimate(8.80, 0.01, 40.0, "g/cm³"), "zero", reference
    )
    assert same_side.value == pytest.approx(0.05, rel=1e-12)
    assert same_side.stderr == pytest.approx(math.sqrt(2e-4), rel=1e-12)  # ρ_ref cancels: ρ_a − ρ_b
    across = vd.score_difference(
        Estimate(8.70, 0.01, 40.0, "g/cm³"), Estimate(8.80, 0.01, 40.0, "g/cm³"), "zero", reference
    )
    assert across.value == pytest.approx(0.08, rel=1e-12)
    assert across.stderr == pytest.approx(math.sqrt(6e-4), rel=1e-12)  # ρ_a + ρ_b − 2ρ_ref: 4 s_ref² more
    with pytest.raises(ValueError, match=re.escape("a metric's goal is 'zero' or 'low', got 'high'")):
        vd.score_difference(reference, reference, "high")


def test_differences_to_a_baseline_are_signed_and_starred_when_resolved():
    found = vd.versus({"a": pct(1.5, 0.1), "b": pct(1.1, 0.1)}, pct(1.0, 0.1), n_comparisons=2)
    assert {k: vd.cell(c) for k, c in found.items()} == {"a": "+0.50 ± 0.14 *", "b": "+0.10 ± 0.14"}
    assert vd.star_note(2) == "* resolved: |z| > 2.24 (95 % confidence, Bonferroni over 2 comparisons)"
    assert vd.signed(pct(-0.25, 0.05)) == "-0.25 ± 0.05 %"


# ------------------------------------------------------------------ rows: unstable never ranked
def _estimate(value: float, stderr: float, unit: str) -> dict:
    return Estimate(value, stderr, 50.0, unit).as_json()


def _entry(
    label: str,
    protocol: str,
    *,
    rho: float = 8.80,
    drift_value: float = 0.0,
    failed: str | None = None,
    ms: float = 10.0,
) -> dict:
    summary = {"temperature_K": _estimate(300.0, 2.0, "K"), "pressure_bar": _estimate(0.0, 100.0, "bar")}
    if protocol == "nve":
        summary["drift"] = {
            "drift_meV_per_atom_ps": _estimate(drift_value, 0.01, "meV/atom/ps"),
            "rms_fluctuation_meV_per_atom": _estimate(0.002, 0.0002, "meV/atom"),
        }
    if protocol == "npt":
        summary["density_g_cm3"] = _estimate(rho, 0.005, "g/cm³")
    return {
        "label": label,
        "role": "reference" if label == "reference" else "model",
        "engine": "ase",
        "protocol": protocol,
        "status": "failed" if failed else "completed",
        "reason": failed,
        "time_to_failure_ps": 0.25 if failed else None,
        "summary": summary,
        "vs_reference": {},
        "timing": {"ms_per_step_steady": ms, "startup_s": 0.5},
    }


def test_unstable_models_are_reported_and_never_ranked():
    entries = [_entry("reference", p) for p in ("nve", "npt")]
    entries += [_entry("m1", "nve", drift_value=0.05), _entry("m1", "npt", rho=8.90)]
    entries += [
        _entry("m2", "nve", failed="temperature 1600 K above the limit 1500 K"),
        _entry("m2", "npt", rho=8.80),
    ]  # the density closest to the reference, but m2 blew up in NVE
    entries += [_entry("m3", "nve", drift_value=0.0), _entry("m3", "npt", rho=8.81)]
    rows = rw.summarise(entries)
    verdicts = rw.judge(rows, ["ase"], baseline="m1")
    density = next(r for r in verdicts["rankings"]["ase"] if r.metric.key == "density_g_cm3")
    assert set(density.estimates) == {"m1", "m3"} and density.best == "m3" and density.resolved
    glance = rw.at_a_glance(verdicts)["ase"]
    assert glance[-1] == "unstable (reported, not ranked): m2 (nve@0.25 ps: temperature 1600 K above the limit 1500 K)"
    # m3 − m1 in drift: −0.05 ± 0.014 (z = −3.5 > 1.96) and in ρ: −0.09 ± 0.007 g/cm³; m2 has no verdict
    assert glance[-2] == (
        "against the baseline m1: resolved: m3 (drift -0.050 ± 0.014 meV/atom/ps, "
        "ρ -0.090 ± 0.007 g/cm³); every other difference indistinguishable"
    )
    kinds = {(c["kind"], c["a"]) for c in verdicts["comparisons"]}
    assert ("vs_reference", "m2") in kinds  # its NPT run completed: compared with the reference, not ranked
    assert not any(c["a"] == "m2" or c["b"] == "m2" for c in verdicts["comparisons"] if c["kind"] != "vs_reference")
    m1 = next(r for r in rows if r["label"] == "m1")
    assert m1["cost_ms_per_step"]["value"] == 10.0 and m1["startup_s"]["value"] == 0.5


def test_the_noise_floor_is_the_reference_against_itself_in_the_other_engine():
    from types import SimpleNamespace

    from mdval.report.compare_page import noise_floor_sentence

    rows = [
        {
            "label": "reference",
            "role": "reference",
            "engine": "lammps",
            "vs_first_engine_reference": {
                "nvt": {"rdf_error_percent": _estimate(2.9, 0.7, "%")},
                "npt": {"density_relative_error_percent": _estimate(-0.04, 0.15, "%")},
            },
        }
    ]
    same = SimpleNamespace(
        engines=["ase", "lammps"], reference={"ase": "lammps:Cu_u3.eam", "lammps": "lammps:Cu_u3.eam"}
    )
    assert noise_floor_sentence(same, rows) == (
        "Noise floor: the reference in lammps against the same potential in ase: RDF error 2.9 ± 0.7 %, "
        "Δρ/ρ -0.04 ± 0.15 %. Two runs of one potential (with each engine's own thermostat and integrator) differ "
        "by this much: a model's error of that size is within what the reference shows against itself."
    )
    other = SimpleNamespace(engines=["ase", "lammps"], reference={"ase": "emt:Cu", "lammps": "lammps:Cu_u3.eam"})
    assert noise_floor_sentence(other, rows) is None  # two potentials: their difference is no noise floor
