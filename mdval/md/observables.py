"""Observables of the MD validation protocols (DESIGN.md section 6): estimators only, no MD.

Every function takes plain arrays (or ASE Atoms frames) with units in the argument names and
returns floats, arrays, :class:`~mdval.md.uncertainty.Estimate` or dicts, so the same code serves
the ASE and LAMMPS engines and the tests can feed it synthetic series. Standard errors and
effective sample sizes come from mdval/md/uncertainty.py; :func:`estimate_json` writes an
Estimate in the results.json contract.

- :func:`production_window`: the start of the production window, chosen from the data
  (MSER, White 1997).
- :func:`energy_drift`: drift slope of E_tot(t)/N and RMS fluctuation about the fit, each with
  its error; maximum excursion and the ratio |drift|·duration/σ_KE.
- :func:`rdf`: total and partial radial distribution functions g(r), normalised to 1 at large r
  (ideal gas), from vesin neighbour lists; :func:`rdf_error_percent` and :func:`first_peak`, and
  their estimates over blocks of frames (:func:`rdf_block_count`, :func:`rdf_error_estimate`,
  :func:`first_peak_estimates`).
- :func:`density_g_cm3`, :func:`relative_difference_percent`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mdval.md import uncertainty as unc
from mdval.md.uncertainty import Estimate

#: 1 amu/Å³ in g/cm³ (1.66053906660e-24 g / 1e-24 cm³).
AMU_PER_A3_TO_G_PER_CM3: float = 1.66053906660
#: N_eff below which an observable carries the warning "run longer; N_eff = ..." (:func:`estimate_json`)
MIN_N_EFF: float = unc.MIN_N_EFF
#: how the production window is chosen, as written into results.json
WINDOW_METHOD: str = (
    "MSER, White, Simulation 69, 323 (1997): the start t0 <= N/2 that minimises "
    "sum_{i>=t0} (x_i - mean(x[t0:]))^2 / (N - t0)^2"
)
#: most blocks of frames over which the RDF error and first peak get their standard errors
RDF_MAX_BLOCKS: int = 10


class CellTooSmall(ValueError):
    """r_max is larger than half the shortest cell height (minimum-image limit)."""


def estimate_json(estimate: Estimate, min_n_eff: float = MIN_N_EFF) -> dict:
    """An observable in the results.json contract: ``{"value", "stderr", "n_eff", "unit"}``, plus
    ``"warning": "run longer; N_eff = 3"`` when it rests on fewer than ``min_n_eff`` effective
    samples (or "no error estimate; N_eff unknown"), from :func:`mdval.md.uncertainty.adequacy`."""
    out = estimate.as_json()
    warning = unc.adequacy(estimate, min_n_eff)
    if warning:
        out["warning"] = warning
    return out


# -------------------------------------------------------------------------- production window
@dataclass
class ProductionWindow:
    """The production window of a time series: samples ``start:`` of the series searched."""

    start: int  # index of the first window sample in the series given to production_window
    start_ps: float  # time of that sample
    end_ps: float  # time of the last sample
    searched_from_ps: float  # time of the first sample the detection considered
    series: str  # what was searched, e.g. "density_g_cm3"
    statistical_inefficiency: float  # g of the window: N samples hold N/g independent ones
    n_samples: int
    n_eff: float

    def as_dict(self) -> dict:
        return {
            "start_ps": self.start_ps,
            "end_ps": self.end_ps,
            "equilibration_ps": self.start_ps - self.searched_from_ps,
            "searched_from_ps": self.searched_from_ps,
            "series": self.series,
            "method": WINDOW_METHOD,
            "n_samples": self.n_samples,
            "statistical_inefficiency": self.statistical_inefficiency,
            "n_eff": self.n_eff,
        }


def production_window(time_ps, series, name: str) -> ProductionWindow:
    """The production window of ``series`` (sampled at ``time_ps``), chosen from the data.

    :func:`mdval.md.uncertainty.detect_equilibration` (the marginal standard error rule, MSER):
    the start t0 ≤ N/2 that minimises the squared standard error of the mean of the samples from
    t0 on, as if independent; an initial transient inflates their spread until it is cut. Every
    sample up to N/2 is a candidate. The time from the first sample to t0 is the detected
    equilibration time. (Chodera's rule, the t0 that maximises N/g of the rest, picks late
    windows whose g is underestimated by noise: see detect_equilibration.)
    """
    t = np.asarray(time_ps, dtype=float)
    x = np.asarray(series, dtype=float)
    if t.shape != x.shape or t.ndim != 1:
        raise ValueError(f"time_ps and the {name} series must be 1-D of equal length, got {t.shape} and {x.shape}")
    found = unc.detect_equilibration(x)
    return ProductionWindow(
        found.t0, float(t[found.t0]), float(t[-1]), float(t[0]), name, found.g, int(x.size - found.t0), found.n_eff
    )


# ----------------------------------------------------------------------------------- drift
@dataclass
class DriftResult:
    """Energy-conservation metrics of an NVE run (all per atom).

    ===========================  ===================  ==========================================
    field                        unit                 meaning
    ===========================  ===================  ==========================================
    drift_meV_per_atom_ps        meV/atom/ps          slope b of the fit E_tot(t)/N = a + b·t (Estimate)
    rms_fluctuation_meV_per_atom meV/atom             RMS of E_tot/N about the fit (Estimate)
    max_excursion_meV_per_atom   meV/atom             max_t |E_tot(t) - E_tot(t0)| / N
    sigma_ke_meV_per_atom        meV/atom             standard deviation of E_kin/N
    drift_over_sigma_ke          -                    |b|·duration / σ_KE
    start_ps                     ps                   time of the first sample fitted
    duration_ps                  ps                   analysed time span (after warm-up)
    n_samples                    -                    number of samples analysed
    ===========================  ===================  ==========================================
    """

    drift_meV_per_atom_ps: Estimate
    rms_fluctuation_meV_per_atom: Estimate
    max_excursion_meV_per_atom: float
    sigma_ke_meV_per_atom: float
    drift_over_sigma_ke: float
    start_ps: float
    duration_ps: float
    n_samples: int

    def as_dict(self) -> dict:
        """The results.json form: the two estimates in the contract (:func:`estimate_json`)."""
        return {
            "drift_meV_per_atom_ps": estimate_json(self.drift_meV_per_atom_ps),
            "rms_fluctuation_meV_per_atom": estimate_json(self.rms_fluctuation_meV_per_atom),
            "max_excursion_meV_per_atom": self.max_excursion_meV_per_atom,
            "sigma_ke_meV_per_atom": self.sigma_ke_meV_per_atom,
            "drift_over_sigma_ke": self.drift_over_sigma_ke,
            "start_ps": self.start_ps,
            "duration_ps": self.duration_ps,
            "n_samples": self.n_samples,
        }


def energy_drift(
    time_ps, total_energy_eV, n_atoms: int, *, kinetic_energy_eV=None, warmup_ps: float = 0.0
) -> DriftResult:
    """Energy drift of an NVE trajectory.

    With e(t) = E_tot(t)/N (meV/atom) for t ≥ t_w (the warm-up ``warmup_ps``), fit
    e(t) = a + b·t by least squares. Report:
    - the drift b (meV/atom/ps) with the autocorrelation-aware error of
      :func:`mdval.md.uncertainty.drift_estimate` (var(b) = g_r σ_r² / Σ(t − t̄)², g_r the
      statistical inefficiency of the residuals);
    - the RMS of the residuals r = e(t) − a − b·t, with the error of
      :func:`mdval.md.uncertainty.std_estimate`;
    - the maximum excursion max|e(t) − e(t0)| (t0 the first analysed sample);
    - |b|·(t_end − t0)/σ_KE with σ_KE the standard deviation of E_kin/N: a drift much smaller than
      the natural kinetic-energy fluctuation (ratio ≪ 1) is harmless for sampling.
    """
    t = np.asarray(time_ps, dtype=float)
    e = np.asarray(total_energy_eV, dtype=float)
    if t.shape != e.shape or t.ndim != 1:
        raise ValueError(f"time_ps and total_energy_eV must be 1-D of equal length, got {t.shape} and {e.shape}")
    if n_atoms <= 0:
        raise ValueError(f"n_atoms must be positive, got {n_atoms}")
    keep = t >= t[0] + warmup_ps - 1e-12 if t.size else t.astype(bool)
    t, e = t[keep], e[keep] * 1000.0 / n_atoms
    if t.size < 3:
        raise ValueError(
            f"energy_drift needs at least 3 samples after the warm-up of {warmup_ps} ps, got {t.size}; "
            "run longer, sample more often or shorten warmup_ps"
        )
    drift = unc.drift_estimate(t, e, "meV/atom/ps")
    residual = e - e.mean() - drift.value * (t - t.mean())
    duration = float(t[-1] - t[0])
    sigma_ke = float("nan")
    if kinetic_energy_eV is not None:
        ke = np.asarray(kinetic_energy_eV, dtype=float)[keep] * 1000.0 / n_atoms
        sigma_ke = float(np.std(ke))
    ratio = abs(drift.value) * duration / sigma_ke if np.isfinite(sigma_ke) and sigma_ke > 0 else float("nan")
    return DriftResult(
        drift_meV_per_atom_ps=drift,
        rms_fluctuation_meV_per_atom=unc.std_estimate(residual, "meV/atom"),
        max_excursion_meV_per_atom=float(np.max(np.abs(e - e[0]))),
        sigma_ke_meV_per_atom=sigma_ke,
        drift_over_sigma_ke=float(ratio),
        start_ps=float(t[0]),
        duration_ps=duration,
        n_samples=int(t.size),
    )


# ------------------------------------------------------------------------------------- RDF
def cell_heights_A(cell) -> np.ndarray:
    """Distances between opposite faces of the cell (Å): h_i = V / |a_j × a_k|."""
    cell = np.asarray(cell, dtype=float)
    volume = abs(np.linalg.det(cell))
    return np.array([volume / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)])


def check_r_max(cell, r_max_A: float) -> None:
    """Raise :class:`CellTooSmall` unless r_max ≤ half the shortest cell height."""
    h = float(cell_heights_A(cell).min())
    if r_max_A > h / 2 + 1e-12:
        raise CellTooSmall(
            f"r_max = {r_max_A:.4g} Å exceeds half the shortest cell height ({h:.4g} Å / 2 = {h / 2:.4g} Å); "
            f"use r_max_A <= {h / 2:.4g} or a larger supercell"
        )


@dataclass
class RDFResult:
    """g(r) on bins: ``r_A`` bin centres (Å), ``total`` [n_bins], ``partial`` {"A-B": [n_bins]}."""

    r_A: np.ndarray
    total: np.ndarray
    partial: dict
    n_frames: int

    def as_dict(self) -> dict:
        return {
            "r_A": self.r_A.tolist(),
            "total": self.total.tolist(),
            "partial": {k: v.tolist() for k, v in self.partial.items()},
            "n_frames": self.n_frames,
        }


def rdf(frames, r_max_A: float, n_bins: int = 100) -> RDFResult:
    """Total and partial radial distribution functions averaged over ``frames`` (ase.Atoms).

    For species a, b with N_a, N_b atoms in volume V, and n_ab(r) the number of ordered pairs
    (i ∈ a, j ∈ b, i ≠ j, nearest images) with distance in the shell [r_lo, r_hi):

        g_ab(r) = n_ab(r) / ( N_a · (N_b - δ_ab) / V · 4π/3 (r_hi³ - r_lo³) )

    so that g → 1 at large r and for an ideal gas; the total g(r) uses all pairs and N(N-1).
    This is the normalisation of LAMMPS ``compute rdf``. Shells use bin edges
    linspace(0, r_max, n_bins + 1); ``r_A`` are the bin centres. r_max must not exceed half the
    shortest cell height (:class:`CellTooSmall`), so each pair is counted once per image.
    Pair labels are "A-B" with A ≤ B alphabetically; g_AB = g_BA.
    """
    from mdval.data.neighbors import neighbor_list

    frames = list(frames)
    if not frames:
        raise ValueError("rdf needs at least one frame, got none")
    if n_bins < 1 or not r_max_A > 0:
        raise ValueError(f"rdf needs n_bins >= 1 and r_max_A > 0, got n_bins={n_bins}, r_max_A={r_max_A}")
    edges = np.linspace(0.0, r_max_A, n_bins + 1)
    shell = 4.0 * np.pi / 3.0 * (edges[1:] ** 3 - edges[:-1] ** 3)
    species = sorted(set(frames[0].get_chemical_symbols()))
    labels = [f"{a}-{b}" for k, a in enumerate(species) for b in species[k:]]
    total = np.zeros(n_bins)
    partial = {lab: np.zeros(n_bins) for lab in labels}
    for atoms in frames:
        if not all(atoms.pbc):
            raise ValueError("rdf needs a cell periodic in all three directions")
        check_r_max(atoms.cell.array, r_max_A)
        symbols = np.array(atoms.get_chemical_symbols())
        volume = atoms.get_volume()
        nl = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, r_max_A)
        dist = np.linalg.norm(nl.vectors, axis=1)
        n = len(atoms)
        counts, _ = np.histogram(dist, bins=edges)
        total += counts / (n * (n - 1) / volume * shell)
        si, sj = symbols[nl.centers], symbols[nl.neighbors]
        for a, b in (lab.split("-") for lab in labels):
            n_a, n_b = int(np.sum(symbols == a)), int(np.sum(symbols == b))
            n_pair = n_a * (n_b - (a == b))
            if n_pair == 0:
                continue
            counts, _ = np.histogram(dist[(si == a) & (sj == b)], bins=edges)
            partial[f"{a}-{b}"] += counts / (n_pair / volume * shell)
    m = len(frames)
    return RDFResult(0.5 * (edges[1:] + edges[:-1]), total / m, {k: v / m for k, v in partial.items()}, m)


def rdf_error_percent(r_A, g, g_ref) -> float:
    """RDF error against a reference: 100 · ∫|g - g_ref| dr / ∫|g_ref - 1| dr (trapezoid rule).

    0 means identical; about 100 means as far from the reference as an ideal gas is.
    """
    r, g, g_ref = (np.asarray(x, dtype=float) for x in (r_A, g, g_ref))
    if not (r.shape == g.shape == g_ref.shape):
        raise ValueError(f"r, g and g_ref must have the same bins, got {r.shape}, {g.shape}, {g_ref.shape}")
    denominator = np.trapezoid(np.abs(g_ref - 1.0), r)
    if denominator <= 0:
        raise ValueError("the reference g(r) is identically 1 (ideal gas): the relative RDF error is undefined")
    return float(100.0 * np.trapezoid(np.abs(g - g_ref), r) / denominator)


def first_peak(r_A, g, *, min_height: float = 1.0) -> dict:
    """Position (Å) and height of the first maximum of g(r) that rises above ``min_height``.

    The position is refined by a parabola through the highest bin and its two neighbours.
    """
    r, g = np.asarray(r_A, dtype=float), np.asarray(g, dtype=float)
    above = np.nonzero(g > min_height)[0]
    if above.size == 0:
        return {"position_A": float("nan"), "height": float("nan")}
    k = int(above[0])
    while k + 1 < g.size and g[k + 1] >= g[k]:
        k += 1
    position, height = r[k], g[k]
    if 0 < k < g.size - 1:
        y0, y1, y2 = g[k - 1], g[k], g[k + 1]
        denominator = y0 - 2 * y1 + y2
        if denominator < 0:
            shift = 0.5 * (y0 - y2) / denominator
            position = r[k] + shift * (r[1] - r[0])
            height = y1 - 0.25 * (y0 - y2) * shift
    return {"position_A": float(position), "height": float(height)}


# ------------------------------------------------------------------- RDF errors over blocks
def rdf_block_count(n_frames: int, frames_per_block: int) -> int:
    """How many contiguous blocks of frames the RDF's errors are taken over: as many blocks of at
    least ``frames_per_block`` frames as there are (blocks must outlast the correlation time to be
    independent), at most :data:`RDF_MAX_BLOCKS`, at least 2 where there are 2 frames (their
    N_eff = 2 then draws the "run longer" warning), 0 for a single frame (no error estimate)."""
    if n_frames < 2:
        return 0
    return int(min(RDF_MAX_BLOCKS, max(2, n_frames // max(frames_per_block, 1))))


def rdf_blocks(frames, r_max_A: float, n_bins: int, n_blocks: int) -> list[RDFResult]:
    """:func:`rdf` of each of ``n_blocks`` contiguous blocks of ``frames`` ([] for n_blocks = 0)."""
    frames = list(frames)
    if n_blocks == 0:
        return []
    return [rdf([frames[k] for k in block], r_max_A, n_bins) for block in unc.contiguous_blocks(len(frames), n_blocks)]


def _all_frames_estimate(value: float, per_block, unit: str) -> Estimate:
    """``value`` (from all frames) with the standard error of the mean of the per-block values
    (:func:`mdval.md.uncertainty.block_estimate`, N_eff = number of blocks); NaN error and N_eff
    without 2 finite block values."""
    v = np.asarray(per_block, dtype=float)
    if v.size < 2 or not np.all(np.isfinite(v)):
        return Estimate(value, math.nan, math.nan, unit)
    blocked = unc.block_estimate(v, unit)
    return Estimate(value, blocked.stderr, blocked.n_eff, unit)


def first_peak_estimates(r_A, g, g_blocks) -> dict:
    """First-peak position (Å) and height of g(r) (:func:`first_peak`) as estimates: the value of
    the g of all frames, the standard error from the spread of the values of the blocks' g
    (``g_blocks``, :func:`rdf_blocks`). The all-frames value, not the block mean: a peak height
    read off a noisier g is biased high."""
    peak = first_peak(r_A, g)
    per_block = [first_peak(r_A, b) for b in g_blocks]
    return {
        "position_A": _all_frames_estimate(peak["position_A"], [p["position_A"] for p in per_block], "Å"),
        "height": _all_frames_estimate(peak["height"], [p["height"] for p in per_block], ""),
    }


def rdf_error_estimate(r_A, g, g_ref, g_blocks=(), g_ref_blocks=()) -> Estimate:
    """The RDF error of :func:`rdf_error_percent` (%) of g against g_ref, with its standard error.

    The value is the error of the g of all frames against the g_ref of all frames. Its noise has
    two independent sources, each taken from the spread over blocks of frames
    (:func:`rdf_blocks`): the run's, from the errors of its blocks g_b against g_ref, and the
    reference run's, from the errors of g against its blocks g_ref,b; stderr² is the sum of the
    two block standard errors squared (N_eff: Welch-Satterthwaite, :meth:`Estimate.minus`). The
    error ∫|g − g_ref|dr has a positive noise bias, larger per block than over all frames: hence
    the all-frames value with the per-block error. Without blocks the error is NaN.
    """
    value = rdf_error_percent(r_A, g, g_ref)
    own = _all_frames_estimate(value, [rdf_error_percent(r_A, b, g_ref) for b in g_blocks], "%")
    reference = _all_frames_estimate(0.0, [rdf_error_percent(r_A, g, b) for b in g_ref_blocks], "%")
    return own.minus(reference)


# --------------------------------------------------------------------------------- density
def density_g_cm3(total_mass_amu: float, volume_A3) -> np.ndarray | float:
    """Mass density ρ = M / V in g/cm³, for M in amu and V in Å³ (scalar or array)."""
    volume = np.asarray(volume_A3, dtype=float)
    if np.any(volume <= 0):
        raise ValueError(f"volume must be positive (Å³), got {volume_A3}")
    rho = total_mass_amu / volume * AMU_PER_A3_TO_G_PER_CM3
    return float(rho) if rho.ndim == 0 else rho


def relative_difference_percent(a: Estimate, b: Estimate) -> Estimate:
    """100·(a − b)/b in %, for independent estimates a and b in one unit, with the delta-method
    error s² = (100/b)² (s_a² + (a/b)² s_b²) and the Welch-Satterthwaite N_eff of
    :meth:`Estimate.minus`."""
    if b.value == 0 or not math.isfinite(b.value):
        raise ValueError(f"the reference value is {b.value}: the relative difference is undefined")
    if a.unit != b.unit:
        raise ValueError(f"cannot compare an estimate in {a.unit!r} with one in {b.unit!r}; convert one first")
    scale = 100.0 / b.value
    return Estimate(scale * a.value, abs(scale) * a.stderr, a.n_eff, "%").minus(
        Estimate(100.0, abs(scale * a.value / b.value) * b.stderr, b.n_eff, "%")
    )
