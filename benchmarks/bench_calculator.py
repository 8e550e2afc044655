"""Benchmark of mdval.Calculator: where the time of one energy+forces+stress call goes.

For FCC Cu supercells of 108, 864 and 4000 atoms (a = 3.61 Å, rattled 0.05 Å) and a DeepPot-SE of
the paper's size (embedding [25, 25, 25], fitting [50, 50, 50], axis 16, tanh, cutoff 6 Å), it
times, as medians over repeats:

- ``total``: one full ``Calculator.calculate`` (atoms -> inputs -> model -> results);
- ``neighbor_list``: ``mdval.data.neighbors.neighbor_list`` alone (vesin);
- ``forward``: the TorchScript model call alone;
- ``backward``: ``torch.autograd.grad`` of the energy with respect to the edge vectors;
- ``overhead`` = total - neighbor_list - forward - backward (checks, species, tensor building,
  force/virial scatter, copies back to numpy).

Goal (issue 5): everything outside the model call (neighbour list + overhead) is <= 15 % of the
total at 864 atoms. Writes ``benchmarks/results/calculator.json`` and ``calculator.md``.

    .venv/bin/python benchmarks/bench_calculator.py [--threads N] [--repeats R] [--sizes 3 6 10]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mdval import fileio
from mdval.nn.deeppot import DEEPPOT_DEFAULTS

RESULTS = Path(__file__).resolve().parent / "results"
MODEL_CONFIG = {**DEEPPOT_DEFAULTS, "type_names": ["Cu"]}  # DeepPot-SE of the DeePMD paper
GOAL_FRACTION = 0.15


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": sys.version.split()[0],
    }


def versions() -> dict:
    import ase
    import torch
    import vesin

    import mdval

    return {
        "mdval": mdval.__version__,
        "torch": torch.__version__,
        "ase": ase.__version__,
        "vesin": vesin.__version__,
        "numpy": np.__version__,
    }


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_size(calc, repeat: int, n_repeats: int) -> dict:
    import torch
    from ase.build import bulk
    from ase.calculators.calculator import all_changes

    from mdval.data.neighbors import neighbor_list

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((repeat,) * 3)
    atoms.positions += np.random.default_rng(0).normal(0.0, 0.05, atoms.positions.shape)
    properties = ["energy", "forces", "stress"]
    calc.calculate(atoms, properties, all_changes)  # warm-up (TorchScript profiling runs)
    calc.calculate(atoms, properties, all_changes)
    times: dict[str, list[float]] = {k: [] for k in ("total", "neighbor_list", "forward", "backward")}
    n_edges = 0
    for _ in range(n_repeats):
        times["total"].append(timed(lambda: calc.calculate(atoms, properties, all_changes)))
        times["neighbor_list"].append(
            timed(lambda: neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, calc.cutoff))
        )
        inputs = calc.inputs(atoms)
        n_edges = int(inputs.edge_vectors.shape[0])
        vectors = inputs.edge_vectors.requires_grad_(True)
        start = time.perf_counter()
        energy = calc.model(inputs.species, inputs.edge_index, vectors, inputs.n_local).sum()
        times["forward"].append(time.perf_counter() - start)
        times["backward"].append(timed(lambda e=energy, v=vectors: torch.autograd.grad(e, v)))
    med = {k: statistics.median(v) for k, v in times.items()}
    med["overhead"] = med["total"] - med["neighbor_list"] - med["forward"] - med["backward"]
    outside = med["neighbor_list"] + med["overhead"]
    return {
        "n_atoms": len(atoms),
        "n_edges": n_edges,
        "repeats": n_repeats,
        "median_s": med,
        "outside_model_fraction": outside / med["total"],
        "us_per_atom": 1e6 * med["total"] / len(atoms),
        "all_s": times,
    }


def markdown(report: dict) -> str:
    lines = [
        "# mdval.Calculator: time per energy+forces+stress call",
        "",
        f"{report['created']}; {report['machine']['cpu']} ({report['machine']['cpu_count']} CPUs, "
        f"load {report['machine']['load_average']}); torch threads {report['torch_threads']}; "
        + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
        "",
        f"Model: DeepPot-SE {report['model']['embedding']}/{report['model']['fitting']}, axis "
        f"{report['model']['axis_neuron']}, cutoff {report['model']['cutoff']} Å, float64. Medians.",
        "",
        "| atoms | edges | total ms | neighbour list ms | forward ms | backward ms | overhead ms "
        "| outside model | µs/atom |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        m = {k: 1e3 * v for k, v in r["median_s"].items()}
        lines.append(
            f"| {r['n_atoms']} | {r['n_edges']} | {m['total']:.1f} | {m['neighbor_list']:.1f} | "
            f"{m['forward']:.1f} | {m['backward']:.1f} | {m['overhead']:.1f} | "
            f"{100 * r['outside_model_fraction']:.1f} % | {r['us_per_atom']:.0f} |"
        )
    lines += [
        "",
        f"Goal: outside model (neighbour list + overhead) <= {100 * GOAL_FRACTION:.0f} % of the call at 864 atoms.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per size (default 10/5/3)")
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[3, 6, 10],
        help="cubic repeats of the 4-atom cell (3, 6, 10 = 108, 864, 4000 atoms)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import torch

    from mdval.deploy.calculator import Calculator
    from mdval.deploy.model_file import export
    from mdval.nn import build_model

    with tempfile.TemporaryDirectory() as tmp:
        path = export(build_model(MODEL_CONFIG), Path(tmp) / "bench.pt")
        calc = Calculator(path, threads=args.threads)
        results = []
        for repeat in args.sizes:
            n_repeats = args.repeats or {3: 10, 6: 5}.get(repeat, 3)
            result = bench_size(calc, repeat, n_repeats)
            print(
                f"{result['n_atoms']:6d} atoms: total {1e3 * result['median_s']['total']:.1f} ms, "
                f"outside model {100 * result['outside_model_fraction']:.1f} %",
                flush=True,
            )
            results.append(result)
    report = {
        "benchmark": "calculator",
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "torch_threads": torch.get_num_threads(),
        "model": MODEL_CONFIG,
        "results": results,
    }
    for name, text in (("calculator.json", json.dumps(report, indent=1)), ("calculator.md", markdown(report))):
        fileio.write_text(args.out / name, text)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
