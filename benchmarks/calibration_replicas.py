"""Is the within-run standard error right? Replicas of the EAM reference in LAMMPS, by hand (issue 17).

    .venv/bin/python benchmarks/calibration_replicas.py [--replicas 60] [--quick]

Runs ``--replicas`` independent seeds (mdval.md.replicas.seed) of four protocols on 108-atom fcc
copper with Cu_u3.eam (``lammps:Cu_u3.eam``, the demo's reference) in LAMMPS, keeps the thermo
series of each (cached in benchmarks/runs/calibration/<protocol>.npz; delete it to rerun), and
for every error model below compares the scatter of the replicas' means with the standard errors
the runs report about themselves, on prefixes of the runs as long as the demo's and several times
longer:

- ``sd``: the sample standard deviation of the replica means; ``rms se``: the root mean square of
  their reported standard errors (equal when the error model is right);
- ``χ²/dof`` and ``p``: mdval.md.comparisons.combine_replicas (≈ 1 and uniform when right);
- ``cover``: how often mean ± 1.96·stderr holds the thermostat's temperature (NVT and NPT: the
  kinetic temperature averages to the target exactly).

Protocols (workflows/cu_demo.toml's settings: 2 fs, Langevin 100 fs, samples every 10 fs):
``nvt300`` and ``nvt600`` (the demo's NVT at 300 and 600 K, 3200 production steps),
``npt_demo`` (the demo's NPT: Nosé-Hoover chain, barostat 500 fs, from a = 3.615 Å after 0.2 ps
of NVT) and ``npt_stationary`` (the same barostat from a = 3.6326 Å, the 300 K lattice constant,
after 0.5 ps of Langevin NVT), 3000 production steps each. The first 0.2 ps of production are
the warm-up (the demo's ``warmup_ps``).

Error models (``window`` + ``g``): the window is ``fixed`` (all samples after the warm-up),
``chodera`` (the t0 maximising N/ĝ of the rest, as mdval did before; ĝ by the first-zero cut)
or ``mser`` (mdval.md.uncertainty.detect_equilibration now). ĝ is ``first-zero`` (the sum of
ρ(t) cut at the first ρ ≤ 0 after lag 3, pymbar's rule and mdval's before), ``geyer`` (initial
monotone sequence, Geyer 1992), ``blocking`` (mdval's block_standard_error), ``sokal`` (the
automatic window, no corrections), ``sokal+wolff`` (with the mean-subtraction correction) and
``mdval`` (mdval.md.uncertainty.mean_estimate: both, and the allowance for the noise of ĝ).
Writes benchmarks/results/calibration_replicas.{json,md} (every model) and appends the former and
the present error model's rows to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from mdval.md import uncertainty as unc
from mdval.md.comparisons import combine_replicas
from mdval.md.lammps_engine import run_lammps
from mdval.md.replicas import seed as replica_seed
from mdval.md.results import read_thermo
from mdval.md.uncertainty import Estimate
from mdval.md.workflow import build_system, load_workflow

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

CACHE = common.RUNS / "calibration"
COLUMNS = ("time_ps", "temperature_K", "pressure_bar", "epot_eV", "density_g_cm3")
SAMPLE_STEPS = 5  # the demo's sample_interval
WARMUP_SAMPLES = 20  # 0.2 ps at 2 fs × 5
#: 300 K lattice constant of Cu_u3.eam at 0 bar (the mean NPT density 8.8057 g/cm³ of npt_demo)
A_300K = 3.6326


def protocols() -> dict:
    """name -> (settings, lattice constant Å, prefixes analysed (production steps), window series, observables)."""
    workflow = load_workflow(common.ROOT / "workflows" / "cu_demo.toml")
    demo = {p.kind: p for p in workflow.protocols}
    long = {"trajectory_interval": 10_000, "checkpoint_interval": 10_000}
    nvt = ("epot_eV", ("temperature_K", "pressure_bar"))
    npt = ("density_g_cm3", ("temperature_K", "pressure_bar", "density_g_cm3"))
    return {
        "nvt300": (
            dataclasses.replace(demo["nvt"], temperature_K=300.0, steps=3200, **long),
            3.615,
            (400, 1600, 3200),
            *nvt,
        ),
        "nvt600": (dataclasses.replace(demo["nvt"], steps=3200, **long), 3.615, (400, 1600, 3200), *nvt),
        "npt_demo": (dataclasses.replace(demo["npt"], steps=3000, **long), 3.615, (600, 2400), *npt),
        "npt_stationary": (
            dataclasses.replace(demo["npt"], steps=3000, thermostat="langevin", equilibration_steps=250, **long),
            A_300K,
            (600, 2400),
            *npt,
        ),
    }


def collect(name: str, settings, a_A: float, n_replicas: int) -> dict:
    """The production thermo columns of ``n_replicas`` seeds, [replica, sample] arrays (cached)."""
    cache = CACHE / f"{name}.npz"
    if cache.exists():
        data = dict(np.load(cache))
        if data["time_ps"].shape[0] >= n_replicas:
            return {k: v[:n_replicas] for k, v in data.items()}
    atoms = build_system("fcc", "Cu", a_A, (3, 3, 3))
    series = {c: [] for c in COLUMNS}
    for k in range(1, n_replicas + 1):
        folder = CACHE / name / str(k)
        started = time.perf_counter()
        result = run_lammps(
            atoms, "lammps:Cu_u3.eam", dataclasses.replace(settings, seed=replica_seed(1, k)), folder, resume=False
        )
        if not result.ok:
            raise RuntimeError(f"{name} replica {k} failed: {result.reason}")
        thermo = read_thermo(folder / "thermo.csv")
        production = thermo["phase"] == "production"
        for c in COLUMNS:
            series[c].append(thermo[c][production])
        shutil.rmtree(folder)
        print(f"  {name} replica {k}/{n_replicas}: {time.perf_counter() - started:.1f} s", flush=True)
    data = {c: np.array(v) for c, v in series.items()}
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **data)
    return data


# ------------------------------------------------------------------------- the error models
def first_zero_g(x: np.ndarray) -> float:
    """pymbar's (and mdval's former) g: Σ (1 − t/N) ρ(t), ρ normalised by 1/(N − t), cut at the
    first ρ(t) ≤ 0 after lag 3."""
    n, dx = x.size, x - x.mean()
    if not np.any(dx):
        return 1.0
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(dx, size)
    rho = np.fft.irfft(spectrum * spectrum.conjugate(), size)[:n] / np.arange(n, 0, -1)
    rho = rho[1 : n - 1] / rho[0]
    lags = np.arange(1, n - 1)
    stop = np.flatnonzero((rho <= 0) & (lags > 3))
    end = stop[0] if stop.size else lags.size
    return max(1.0, 1.0 + 2.0 * float(np.sum((1.0 - lags[:end] / n) * rho[:end])))


def autocovariance(x: np.ndarray) -> np.ndarray:
    n, dx = x.size, x - x.mean()
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(dx, size)
    return np.fft.irfft(spectrum * spectrum.conjugate(), size)[:n] / n


def geyer_g(x: np.ndarray) -> float:
    """Geyer's initial monotone sequence estimator (Stat. Sci. 7, 473 (1992))."""
    gamma = autocovariance(x)
    if gamma[0] <= 0:
        return 1.0
    pairs = gamma[: gamma.size // 2 * 2].reshape(-1, 2).sum(axis=1)
    negative = np.flatnonzero(pairs <= 0)
    pairs = np.minimum.accumulate(pairs[: negative[0] if negative.size else pairs.size])
    return max(1.0, (2.0 * pairs.sum() - gamma[0]) / gamma[0])


def sokal_g(x: np.ndarray, wolff: bool) -> float:
    """The automatic window of mdval.md.uncertainty.inefficiency, with or without Wolff's factor."""
    found = unc.inefficiency(x)
    return found.g if wolff else max(1.0, found.g / (1.0 + (2 * found.window + 1) / x.size))


def from_g(g_of):
    return lambda x: (math.sqrt(g_of(x) * np.var(x, ddof=1) / x.size), x.size / g_of(x))


def blocking(x: np.ndarray):
    b = unc.block_standard_error(x)
    return b.stderr, b.n_eff


def mdval_default(x: np.ndarray):
    e = unc.mean_estimate(x, "")
    return e.stderr, e.n_eff


def chodera_t0(x: np.ndarray) -> int:
    """mdval's former window: argmax over t0 (every N/200-th sample) of (N − t0)/ĝ(t0), first-zero ĝ."""
    n = x.size
    starts = range(0, n - 2, max(1, n // 200))
    return max(starts, key=lambda t0: (n - t0) / first_zero_g(x[t0:]))


G = {
    "first-zero": from_g(first_zero_g),
    "geyer": from_g(geyer_g),
    "blocking": blocking,
    "sokal": from_g(lambda x: sokal_g(x, False)),
    "sokal+wolff": from_g(lambda x: sokal_g(x, True)),
    "mdval": mdval_default,
}
WINDOWS = {"fixed": lambda x: 0, "chodera": chodera_t0, "mser": lambda x: unc.detect_equilibration(x).t0}
#: (window, g) rows of the table; the first is mdval's former default, the last its default now
MODELS = [
    ("chodera", "first-zero"),
    ("fixed", "first-zero"),
    ("mser", "first-zero"),
    ("mser", "geyer"),
    ("mser", "blocking"),
    ("mser", "sokal"),
    ("mser", "sokal+wolff"),
    ("chodera", "mdval"),
    ("fixed", "mdval"),
    ("mser", "mdval"),
]


def analyse(name: str, data: dict, steps: int, window_series: str, observables, target_K: float) -> list[dict]:
    end = steps // SAMPLE_STEPS + 1
    rows = []
    starts = {w: [WINDOWS[w](s[WARMUP_SAMPLES:end]) for s in data[window_series]] for w in WINDOWS}
    for observable in observables:
        for window, g in MODELS:
            per = []
            for series, t0 in zip(data[observable], starts[window]):
                x = series[WARMUP_SAMPLES:end][t0:]
                per.append((x.mean(), *G[g](x), x.size))
            v = np.array(per)
            summary = combine_replicas([Estimate(m, s, n, "") for m, s, n, _ in v])
            sd, rms = float(np.std(v[:, 0], ddof=1)), float(math.sqrt(np.mean(v[:, 1] ** 2)))
            cover = (
                float(np.mean(np.abs(v[:, 0] - target_K) <= 1.959964 * v[:, 1]))
                if observable == "temperature_K"
                else None
            )
            rows.append(
                {
                    "protocol": name,
                    "steps": steps,
                    "samples": float(np.mean(v[:, 3])),
                    "observable": observable,
                    "window": window,
                    "g": g,
                    "median_n_eff": float(np.median(v[:, 2])),
                    "sd_of_means": sd,
                    "rms_stderr": rms,
                    "sd_over_rms": sd / rms,
                    "chi2_per_dof": summary.chi2_per_dof,
                    "p_value": summary.p_value,
                    "coverage_of_target_T": cover,
                }
            )
    return rows


def markdown(report: dict, models=None) -> str:
    """The table of every row (``models`` None) or of the rows of the (window, g) pairs in ``models``."""
    rows = [r for r in report["rows"] if models is None or (r["window"], r["g"]) in models]
    lines = [
        "## Calibration of the within-run error model (calibration_replicas.py)",
        "",
        f"{report['n_replicas']} replicas per protocol; {common.header_line(report)}",
        "",
        "| protocol | steps | samples | observable | window | g | N_eff (median) | sd of means | rms stderr "
        "| sd/rms | χ²/dof | p | cover T |",
        "|" + "---|" * 13,
    ]
    if models is not None:
        lines[2] += (
            " Former error model (chodera, first-zero) against the present one (mser, mdval); every "
            "model in results/calibration_replicas.md."
        )
    for r in rows:
        cover = "" if r["coverage_of_target_T"] is None else f"{100 * r['coverage_of_target_T']:.0f} %"
        lines.append(
            f"| {r['protocol']} | {r['steps']} | {r['samples']:.0f} | {r['observable']} | {r['window']} | "
            f"{r['g']} | {r['median_n_eff']:.1f} | {r['sd_of_means']:.4g} | {r['rms_stderr']:.4g} | "
            f"{r['sd_over_rms']:.2f} | {r['chi2_per_dof']:.2f} | {r['p_value']:.2g} | {cover} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=60)
    parser.add_argument("--quick", action="store_true", help="4 replicas of the NVT protocols: a smoke run")
    args = parser.parse_args(argv)
    n_replicas = 4 if args.quick else args.replicas
    chosen = {k: v for k, v in protocols().items() if not args.quick or k.startswith("nvt")}
    report = {
        "created": common.now(),
        "machine": common.machine(),
        "versions": common.versions(),
        "load_before": common.load(),
        "n_replicas": n_replicas,
    }
    rows = []
    for name, (settings, a_A, prefixes, window_series, observables) in chosen.items():
        data = collect(name, settings, a_A, n_replicas)
        for steps in prefixes:
            rows += analyse(name, data, steps, window_series, observables, settings.temperature_K)
    report.update(load_after=common.load(), rows=rows)
    text = markdown(report)
    common.write_results("calibration_replicas", report, text, quick=args.quick, section=False)
    if not args.quick:
        common.write_section(markdown(report, {MODELS[0], MODELS[-1]}))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
