"""Observables of the MD validation protocols (DESIGN.md section 6): estimators only, no MD.

Every function takes plain arrays (or ASE Atoms frames) with units in the argument names and
returns plain floats / arrays / dicts, so the same code serves the ASE and LAMMPS engines and the
tests can feed it synthetic series.

- :func:`energy_drift`: least-squares slope of E_tot(t)/N, RMS about the fit, maximum
  excursion, and the ratio |drift|·duration/σ_KE.
- :func:`rdf`: total and partial radial distribution functions g(r), normalised to 1 at large r
  (ideal gas), from vesin neighbour lists; :func:`rdf_error`, :func:`first_peak`.
- :func:`block_average`: mean and standard error of a correlated series by the blocking method of
  Flyvbjerg and Petersen, J. Chem. Phys. 91, 461 (1989).
- :func:`density_g_cm3`, :func:`series_stats` (temperature, pressure, density statistics).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

#: 1 amu/Å³ in g/cm³ (1.66053906660e-24 g / 1e-24 cm³).
AMU_PER_A3_TO_G_PER_CM3: float = 1.66053906660


class CellTooSmall(ValueError):
    """r_max is larger than half the shortest cell height (minimum-image limit)."""


# ----------------------------------------------------------------------------------- drift
@dataclass
class DriftResult:
    """Energy-conservation metrics of an NVE run (all per atom).

    ===========================  ===================  ==========================================
    field                        unit                 meaning
    ===========================  ===================  ==========================================
    drift_meV_per_atom_ps        meV/atom/ps          slope b of the fit E_tot(t)/N = a + b·t
    rms_fluctuation_meV_per_atom meV/atom             RMS of E_tot/N about the fit
    max_excursion_meV_per_atom   meV/atom             max_t |E_tot(t) - E_tot(t0)| / N
    sigma_ke_meV_per_atom        meV/atom             standard deviation of E_kin/N
    drift_over_sigma_ke          -                    |b|·duration / σ_KE
    duration_ps                  ps                   analysed time span (after warm-up)
    n_samples                    -                    number of samples analysed
    ===========================  ===================  ==========================================
    """

    drift_meV_per_atom_ps: float
    rms_fluctuation_meV_per_atom: float
    max_excursion_meV_per_atom: float
    sigma_ke_meV_per_atom: float
    drift_over_sigma_ke: float
    duration_ps: float
    n_samples: int

    def as_dict(self) -> dict:
        return asdict(self)


def energy_drift(time_ps, total_energy_eV, n_atoms: int, *, kinetic_energy_eV=None,
                 warmup_ps: float = 0.0) -> DriftResult:
    """Energy drift of an NVE trajectory.

    With e(t) = E_tot(t)/N (meV/atom) for t ≥ t_w (the warm-up ``warmup_ps``), fit
    e(t) = a + b·t by least squares. Report the drift b (meV/atom/ps), the RMS of the residuals
    e(t) - a - b·t, the maximum excursion max|e(t) - e(t0)| (t0 the first analysed sample), and
    |b|·(t_end - t0)/σ_KE with σ_KE the standard deviation of E_kin/N: a drift much smaller than
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
    slope, intercept = np.polyfit(t, e, 1)
    residual = e - (intercept + slope * t)
    duration = float(t[-1] - t[0])
    sigma_ke = float("nan")
    if kinetic_energy_eV is not None:
        ke = np.asarray(kinetic_energy_eV, dtype=float)[keep] * 1000.0 / n_atoms
        sigma_ke = float(np.std(ke))
    ratio = abs(slope) * duration / sigma_ke if sigma_ke and np.isfinite(sigma_ke) and sigma_ke > 0 else float("nan")
    return DriftResult(
        drift_meV_per_atom_ps=float(slope),
        rms_fluctuation_meV_per_atom=float(np.sqrt(np.mean(residual**2))),
        max_excursion_meV_per_atom=float(np.max(np.abs(e - e[0]))),
        sigma_ke_meV_per_atom=sigma_ke,
        drift_over_sigma_ke=float(ratio),
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
        return {"r_A": self.r_A.tolist(), "total": self.total.tolist(),
                "partial": {k: v.tolist() for k, v in self.partial.items()}, "n_frames": self.n_frames}


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


# --------------------------------------------------------------------------- block average
@dataclass
class BlockAverage:
    """Mean and standard error of a correlated series (Flyvbjerg–Petersen blocking)."""

    mean: float
    standard_error: float
    n_samples: int
    block_level: int  # number of pair-blockings at the chosen plateau
    standard_errors: list  # SE estimate at each blocking level 0, 1, ...

    def as_dict(self) -> dict:
        return asdict(self)


def block_average(series, *, min_blocks: int = 16) -> BlockAverage:
    """Mean and its standard error for a time series with correlated samples.

    Blocking (Flyvbjerg & Petersen, J. Chem. Phys. 91, 461 (1989)): at level k the series is
    averaged over pairs k times, giving n_k values x'_i; the estimate

        SE_k = sqrt( var(x') / (n_k - 1) ),      with its own error  SE_k / sqrt(2 (n_k - 1))

    grows with k until the blocks are longer than the correlation time, then stays on a plateau.
    The chosen SE is the first level whose value agrees, within its error, with all later levels
    that still have at least ``min_blocks`` blocks; if no level qualifies, the largest SE is used
    (conservative). A series shorter than 2·min_blocks gets the naive SE_0.
    """
    x = np.asarray(series, dtype=float).ravel()
    if x.size < 2:
        raise ValueError(f"block_average needs at least 2 samples, got {x.size}")
    if not np.all(np.isfinite(x)):
        raise ValueError("block_average got non-finite values; drop them (a failed run) first")
    mean = float(x.mean())
    ses, errs = [], []
    y = x.copy()
    while y.size >= 2 and (not ses or y.size >= min_blocks):
        n = y.size
        se = math.sqrt(y.var() / (n - 1))
        ses.append(se)
        errs.append(se / math.sqrt(2 * (n - 1)))
        y = 0.5 * (y[: n // 2 * 2 : 2] + y[1 : n // 2 * 2 : 2])
    level = int(np.argmax(ses))
    for k in range(len(ses)):
        if all(ses[j] <= ses[k] + errs[k] + errs[j] for j in range(k + 1, len(ses))):
            level = k
            break
    return BlockAverage(mean, float(ses[level]), int(x.size), int(level), [float(s) for s in ses])


# ----------------------------------------------------------------------- density and stats
def density_g_cm3(total_mass_amu: float, volume_A3) -> np.ndarray | float:
    """Mass density ρ = M / V in g/cm³, for M in amu and V in Å³ (scalar or array)."""
    volume = np.asarray(volume_A3, dtype=float)
    if np.any(volume <= 0):
        raise ValueError(f"volume must be positive (Å³), got {volume_A3}")
    rho = total_mass_amu / volume * AMU_PER_A3_TO_G_PER_CM3
    return float(rho) if rho.ndim == 0 else rho


def series_stats(values) -> dict:
    """Mean, standard deviation, block-averaged standard error, min and max of a series."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return {"mean": float(x.mean()) if x.size else float("nan"), "std": float("nan"),
                "standard_error": float("nan"), "min": float("nan"), "max": float("nan"), "n": int(x.size)}
    block = block_average(x)
    return {"mean": block.mean, "std": float(x.std(ddof=1)), "standard_error": block.standard_error,
            "min": float(x.min()), "max": float(x.max()), "n": int(x.size)}


def relative_error_percent(value: float, reference: float) -> float:
    """100 · (value - reference) / reference."""
    if reference == 0:
        raise ValueError("the reference value is 0: the relative error is undefined")
    return float(100.0 * (value - reference) / reference)
