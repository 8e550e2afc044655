"""Benchmark: DeepPot-SE (tanh, Adam) trained end to end on the mlearn Si DFT data (Zuo et al.
2020): training.json split 90/10 into train/validation, test.json as the test set.

    .venv/bin/python benchmarks/train_mlearn_si.py [--budget-min 5]

Writes benchmarks/results/train_mlearn_si.{json,md} and a parity plot of the test set.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "models/configs/si_mlearn_tanh_adam.toml"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-min", type=float, default=5.0, help="training wall time (min)")
    args = parser.parse_args(argv)
    import torch

    from mdval import __version__
    from mdval.cli import main as mdval

    os.chdir(ROOT)
    code = mdval(["train", CONFIG, "--quiet", "--set", "run.dir='benchmarks/runs'",
                  "--set", f"training.max_time_min={args.budget_min}"])
    if code:
        return code
    run = ROOT / "benchmarks/runs/si_mlearn_tanh_adam"
    out = ROOT / "benchmarks/results"
    out.mkdir(parents=True, exist_ok=True)
    test_data = "../shared/data/mlearn/Si/test.json"
    code = mdval(["test", str(run / "model.pt"), test_data, "--out", str(out / "train_mlearn_si_test")])
    if code:
        return code
    m = json.loads((run / "metrics.json").read_text())
    t = json.loads((out / "train_mlearn_si_test.json").read_text())
    report = {"benchmark": "train_mlearn_si", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()},
              "versions": {"mdval": __version__, "torch": torch.__version__},
              "settings": {"config": CONFIG, "budget_min": args.budget_min, "test_data": test_data},
              "training": {k: m[k] for k in ("epochs", "steps", "wall_time_s", "stopped_by", "training_data")},
              "test": t}
    (out / "train_mlearn_si.json").write_text(json.dumps(report, indent=1))
    lines = ["# DeepPot-SE (tanh, Adam) on mlearn Si DFT data", "",
             f"{report['date']}; {platform.platform()}, {os.cpu_count()} CPUs (shared); torch {torch.__version__}; "
             f"budget {args.budget_min} min; {m['epochs']} epochs, {m['steps']} steps.", "",
             "| test set | frames | E MAE meV/atom | E RMSE meV/atom | F MAE eV/Å | F RMSE eV/Å |",
             "|---|---|---|---|---|---|",
             f"| mlearn Si test.json | {t['n_frames']} | {t['energy_mae_meV_per_atom']:.2f} | "
             f"{t['energy_rmse_meV_per_atom']:.2f} | {t['force_mae_eV_per_A']:.3f} | {t['force_rmse_eV_per_A']:.3f} |",
             "", "For scale: Zuo et al. (2020) report for SNAP on this test set about 8 meV/atom and 0.2 eV/Å MAE."]
    (out / "train_mlearn_si.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
