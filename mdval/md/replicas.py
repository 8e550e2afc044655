"""Replicas: N independent runs of one protocol that differ only in their seed, and their combination.

Replica k (1 … N) of a run with seed s runs with seed s + (k − 1)·:data:`SEED_STRIDE` in the folder
``<run folder>/replica-k``; with N = 1 the run is the run folder itself, as before replicas
existed, so earlier runs and their caches stay valid. Everything else is the same, so the run
folders' identities (mdval/md/run_folder.py) differ in the seed only, and each replica resumes,
is reused or is found out of date on its own. The seed sets both sources of randomness in both
engines: the initial Maxwell–Boltzmann velocities (ASE: a numpy Generator; LAMMPS:
``velocity create``) and the noise of the stochastic thermostats (ASE ``Langevin``/``Bussi`` draw
from the same Generator; LAMMPS ``fix langevin``/``fix temp/csvr`` get seeds derived from it). A
deterministic thermostat (Nosé–Hoover chain, the MTK barostat) has no noise: its replicas differ by
their velocities, which the chaotic dynamics decorrelate.

:func:`combine` turns the replicas' results into one: every observable estimate
``{"value", "stderr", "n_eff", "unit"}`` of the completed replicas is combined by
:func:`mdval.md.comparisons.combine_replicas` (inverse-variance mean, N_eff summed, the stderr
scaled up when the replicas scatter more than their errors say), g(r) is pooled over all frames
(its blocks kept, so the RDF error against a reference has its error from all replicas), and the
non-statistical numbers (window bounds, cost) are the mean over the replicas. Beside it,
:func:`combine` returns the check of the error model, the ``replicas`` block of a summary entry::

    {"n_replicas": N, "seeds": [s_1, ...],
     "runs": [{"replica": k, "seed", "status", "reason", "output_dir"}],
     "observables": {same nesting as the observables, e.g. "temperature_K", "drift": {...},
                     "first_peak": {"total": {"position_A": ...}}: for each estimate
                     {"n_replicas", "values", "stderrs", "between_sd", "within_stderr", "chi2",
                      "dof", "chi2_per_dof", "p_value", "consistent"}}}

``between_sd`` is the replicas' sample standard deviation, ``within_stderr`` the root mean square
of their own standard errors: the error model is right when the two agree, which χ²/dof ≈ 1 and
``consistent`` (p ≥ 0.05) state; null where there is nothing to check (one replica, or replicas
without a within-run error, whose combined stderr is then the between-replica one, sd/√N).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from mdval.md import observables as obs
from mdval.md.comparisons import ReplicaSummary, combine_replicas
from mdval.md.protocols import ProtocolSettings, RunResult, is_integer, is_number
from mdval.md.uncertainty import Estimate

#: Replica k runs with seed + (k − 1)·SEED_STRIDE. Not a stride of 1: LAMMPS' ``velocity create``
#: draws from a Park–Miller generator (x → 16807·x mod (2³¹ − 1)), whose streams from seeds x and
#: 2x are u and frac(2u), so seeds 1, 2, 3 would give related velocities; seeds a large stride
#: apart are related only by large factors. Room for 89 000 replicas below the 9·10⁸ that
#: LAMMPS' Marsaglia generator (fix langevin) accepts.
SEED_STRIDE = 10007
#: Where ``mdval md --replicas N`` (N > 1) writes the combined observables and the check.
COMBINED_FILE = "replicas.json"


def check_count(replicas, where: str = "--replicas") -> int:
    """``replicas`` if it is an integer >= 1, else one line naming ``where`` and the value."""
    if not is_integer(replicas, 1):
        raise ValueError(f"{where} must be an integer >= 1 (independent runs, one per seed), got {replicas!r}")
    return replicas


def seed(base_seed: int, replica: int) -> int:
    """The seed of replica ``replica`` (1-based) of a run with seed ``base_seed``."""
    return base_seed + (replica - 1) * SEED_STRIDE


def expand(settings: ProtocolSettings, folder, n_replicas: int) -> list[tuple[int, ProtocolSettings, Path]]:
    """(k, settings with replica k's seed, replica k's folder) for k = 1 … ``n_replicas``; one
    replica is the run itself (same seed, same folder)."""
    if n_replicas == 1:
        return [(1, settings, Path(folder))]
    return [
        (k, dataclasses.replace(settings, seed=seed(settings.seed, k)), Path(folder) / f"replica-{k}")
        for k in range(1, n_replicas + 1)
    ]


# -------------------------------------------------------------------------------- combination
def combine(results: list[RunResult], output_dir) -> tuple[RunResult, dict]:
    """The combined result of one run's replicas (listed in replica order) and its check (the
    module docstring); one replica is returned as it is.

    The combined run failed when any replica failed (its ``reason`` names them, the time to
    failure is the earliest); its observables combine the completed replicas (all of them when none
    completed), its timing is the replicas' mean, its ``output_dir`` the run folder.
    """
    if not results:
        raise ValueError("combine needs the results of at least one replica, got none")
    completed = [r for r in results if r.ok] or results
    observables, checks = _merge([r.observables for r in completed])
    check = {
        "n_replicas": len(results),
        "seeds": [r.settings.get("seed") for r in results],
        "runs": [
            {
                "replica": k,
                "seed": r.settings.get("seed"),
                "status": r.status,
                "reason": r.reason,
                "output_dir": r.output_dir,
            }
            for k, r in enumerate(results, 1)
        ],
        "observables": checks,
    }
    if len(results) == 1:
        return results[0], check
    failed = [(k, r) for k, r in enumerate(results, 1) if not r.ok]
    first = results[0]
    combined = RunResult(
        status="failed" if failed else "completed",
        protocol=first.protocol,
        engine=first.engine,
        output_dir=str(output_dir),
        steps_done=min(r.steps_done for r in results),
        reason="; ".join(f"replica {k}: {r.reason}" for k, r in failed) or None,
        detector=failed[0][1].detector if failed else None,
        time_to_failure_ps=min(
            (r.time_to_failure_ps for _, r in failed if r.time_to_failure_ps is not None), default=None
        ),
        observables=observables,
        provenance={**first.provenance, "seed": check["seeds"]},
        settings=first.settings,
        files={"replicas": [str(Path(r.output_dir) / first.files.get("results", "results.json")) for r in results]},
        timing=_merge([r.timing for r in results])[0],
    )
    return combined, check


def _is_estimate(value) -> bool:
    return isinstance(value, dict) and {"value", "stderr", "n_eff", "unit"} <= value.keys()


def _merge(values: list) -> tuple[object, dict | None]:
    """The replicas' values of one key combined, and the checks of the estimates in it."""
    first = values[0]
    if _is_estimate(first):
        return _combine_estimates([v for v in values if _is_estimate(v)])
    if isinstance(first, dict):
        merged, checks = {}, {}
        for key in dict.fromkeys(k for v in values if isinstance(v, dict) for k in v):
            present = [v[key] for v in values if isinstance(v, dict) and key in v]
            merged[key], check = (_pool_rdf(present), None) if key == "rdf" else _merge(present)
            if check:
                checks[key] = check
        return {k: v for k, v in merged.items() if v is not None or k != "rdf"}, checks
    if is_number(first):
        numbers = [v for v in values if is_number(v)]
        return (first if all(v == first for v in numbers) else float(np.mean(numbers))), None
    return first, None


def _combine_estimates(found: list[dict]) -> tuple[dict, dict | None]:
    """One estimate (results.json contract) from the replicas' and its check, or the first as
    it is when none has a finite value."""
    estimates = [Estimate.from_json(e) for e in found]
    usable = [e for e in estimates if math.isfinite(e.value)]
    if not usable:
        return found[0], None
    if all(math.isfinite(e.stderr) and e.stderr > 0 for e in usable):
        summary = combine_replicas(usable)
        return obs.estimate_json(summary.combined), _check_json(summary, usable)
    # No within-run error in some replica: the replicas' own scatter is the only error there is.
    x = np.array([e.value for e in usable])
    stderr = float(np.std(x, ddof=1)) / math.sqrt(x.size) if x.size > 1 else math.nan
    n_effs = [e.n_eff for e in usable if math.isfinite(e.n_eff)]
    n_eff = sum(n_effs) if n_effs else math.nan
    combined = Estimate(float(x.mean()), stderr, n_eff, usable[0].unit)
    return obs.estimate_json(combined), {
        "n_replicas": x.size,
        "values": x.tolist(),
        "stderrs": [_finite(e.stderr) for e in usable],
        "between_sd": _finite(float(np.std(x, ddof=1))) if x.size > 1 else None,
        "within_stderr": None,
        "chi2": None,
        "dof": x.size - 1,
        "chi2_per_dof": None,
        "p_value": None,
        "consistent": None,
    }


def _check_json(summary: ReplicaSummary, estimates: list[Estimate]) -> dict:
    out = {k: v for k, v in summary.as_json().items() if k != "combined"}
    return {
        "n_replicas": out.pop("n_replicas"),
        "values": [e.value for e in estimates],
        "stderrs": [e.stderr for e in estimates],
        **out,
        "consistent": summary.consistent() if math.isfinite(summary.p_value) else None,
    }


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _pool_rdf(rdfs: list[dict]) -> dict | None:
    """g(r) over the frames of all replicas (frame-weighted mean), with every replica's blocks;
    None when the replicas' r grids differ (NPT boxes that shrank below 2·r_max)."""
    r = np.asarray(rdfs[0]["r_A"])
    if any(len(g["r_A"]) != len(r) or not np.allclose(g["r_A"], r) for g in rdfs):
        return None
    weights = np.array([g["n_frames"] for g in rdfs], dtype=float)

    def mean(curves) -> list:
        return (np.asarray(curves, dtype=float).T @ weights / weights.sum()).tolist()

    pairs = list(rdfs[0]["partial"])
    blocks = [g.get("blocks") or {} for g in rdfs]
    return {
        "r_A": r.tolist(),
        "total": mean([g["total"] for g in rdfs]),
        "partial": {p: mean([g["partial"][p] for g in rdfs]) for p in pairs},
        "n_frames": int(weights.sum()),
        "r_max_A": min(g["r_max_A"] for g in rdfs),
        "start_ps": float(np.mean([g["start_ps"] for g in rdfs])),
        "blocks": {
            "n_blocks": sum(b.get("n_blocks", 0) for b in blocks),
            "total": [c for b in blocks for c in b.get("total", [])],
            "partial": {p: [c for b in blocks for c in (b.get("partial") or {}).get(p, [])] for p in pairs},
        },
    }


# -------------------------------------------------------------------------------- printout
def check_lines(summary: dict, check: dict, names: list[tuple[str, tuple[str, ...]]]) -> list[str]:
    """One line per named observable (name, key path into ``summary``): the combined estimate
    against the replicas' scatter, e.g. "temperature  600 ± 5 K (N_eff = 310) from 3 replicas;
    between-replica SD 8.1, within-run stderr 7.9 K; χ²/dof = 1.05 (p = 0.35): errors consistent
    with the scatter"."""
    lines = []
    for name, path in names:
        estimate, entry = at(summary, path), at(check.get("observables", {}), path)
        if not _is_estimate(estimate):
            continue
        combined = Estimate.from_json(estimate)
        if entry is None or entry.get("within_stderr") is None:
            n = entry["n_replicas"] if entry else check["n_replicas"]
            text = f"{combined.text()} from {n} replicas; the stderr is the between-replica one (no within-run error)"
        else:
            text = ReplicaSummary(
                combined,
                entry["n_replicas"],
                _nan(entry["between_sd"]),
                entry["within_stderr"],
                _nan(entry["chi2"]),
                entry["dof"],
                _nan(entry["p_value"]),
            ).text()
        warning = f"  [{estimate['warning']}]" if estimate.get("warning") else ""
        lines.append(f"{name:24s} {text}{warning}")
    return lines


def check_summary(check: dict) -> str:
    """One line on a run's replicas: how many observables scatter as their errors say, and which do not."""
    checked, off = [], []
    _walk(check.get("observables", {}), (), checked, off)
    head = f"{check['n_replicas']} replicas (seeds {', '.join(map(str, check['seeds']))}): "
    if not checked:
        return head + "no observable to check"
    tail = "; ".join(f"{'.'.join(path)}: χ²/dof = {c['chi2_per_dof']:.2f}, p = {c['p_value']:.2g}" for path, c in off)
    return (
        head
        + f"{len(checked) - len(off)} of {len(checked)} observables scatter as their within-run errors say"
        + (f"; more scatter than the errors say: {tail}" if off else "")
    )


def _walk(tree: dict, path: tuple[str, ...], checked: list, off: list) -> None:
    """The checks with a verdict (``consistent`` not null) in ``checked``, the inconsistent ones also in ``off``."""
    for key, value in tree.items():
        if isinstance(value, dict) and "consistent" in value:
            if value["consistent"] is not None:
                checked.append((*path, key))
                if not value["consistent"]:
                    off.append(((*path, key), value))
        elif isinstance(value, dict):
            _walk(value, (*path, key), checked, off)


def at(tree: dict, path: tuple[str, ...]):
    """``tree[path[0]][path[1]]...``, None where a key is missing."""
    for key in path:
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree


def _nan(x) -> float:
    return math.nan if x is None else float(x)
