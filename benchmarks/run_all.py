"""Run every benchmark in turn (``make bench``); each writes results/<name>.json/.md and appends a
section to benchmarks/RESULTS.md. Not part of ``make test``.

    .venv/bin/python benchmarks/run_all.py [--quick] [--only peers taafs ...]

Order: lammps_peers (needs DeePMD-kit in benchmarks/.venv-deepmd: ``make bench`` creates it),
taafs_cost, scaling, accuracy_mlearn, optimizers (bench_optimizers.py, owned by the optimizer
work; its Markdown is appended here), lammps (bench_lammps.py) and calculator
(bench_calculator.py), and the profile of one model call (profile_deeppot.py, plain and
with common.MALLOC_ENV). The long training benchmark train_emt_cu.py and the diagnosis
analyse_mlearn_energy.py (it reads the runs of accuracy_mlearn) are run by hand. With ``--quick``
every script that has a smoke mode runs it (results/*_quick.*, RESULTS.md untouched);
optimizers, lammps and calculator are skipped then.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

B = common.BENCH
STEPS = {
    "peers": ([B / "bench_lammps_peers.py"], ["--quick"], None),
    "taafs": ([B / "bench_taafs_cost.py"], ["--quick"], None),
    "scaling": ([B / "bench_scaling.py"], ["--quick"], None),
    "accuracy": ([B / "bench_accuracy_mlearn.py"], ["--quick"], None),
    "optimizers": (
        [B / "bench_optimizers.py"],
        ["--frames", "40", "--adam-epochs", "2", "--kalman-epochs", "1", "--max-minutes", "0.5"],
        "optimizers.md",
    ),
    "lammps": ([B / "bench_lammps.py"], ["--steps", "5", "--repeats", "1"], "bench_lammps.md"),
    "calculator": ([B / "bench_calculator.py"], ["--sizes", "3", "--repeats", "2"], "calculator.md"),
    "profile": ([B / "profile_deeppot.py"], ["--quick"], None),
    "profile-malloc": ([B / "profile_deeppot.py", "--malloc"], ["--quick"], None),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", choices=sorted(STEPS))
    args = parser.parse_args(argv)
    failed = []
    for name in args.only or list(STEPS):
        script, quick_args, md = STEPS[name]
        if args.quick and md:
            print(f"== {name}: skipped in --quick (it has no smoke mode and would overwrite results/{md})")
            continue
        cmd = [sys.executable, *map(str, script), *(quick_args if args.quick else [])]
        print(f"== {name}: {' '.join(cmd)} (load {common.load()})", flush=True)
        start = time.perf_counter()
        code = subprocess.call(cmd, cwd=common.ROOT)
        print(f"== {name}: exit {code} after {time.perf_counter() - start:.0f} s", flush=True)
        if code:
            failed.append(name)
        elif md and not args.quick and (common.RESULTS_DIR / md).exists():
            common.append_markdown_file(common.RESULTS_DIR / md)
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
