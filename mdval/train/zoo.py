"""The model zoo: train every config with ``mdval train``, ship the model file, its model card and
its training log next to the config.

    python -m mdval.train.zoo models/cu/*.toml          # what `make models` runs
    python -m mdval.train.zoo models/cu/tanh-adam.toml --jobs 1

For each ``models/<system>/<NAME>.toml`` the run folder ``<run.dir>/<run.name>`` is cleared, the
config is trained with ``mdval train`` (a subprocess, one torch thread each, ``--jobs`` at a
time), and then

- ``NAME.pt``          the exported model (ABI v1) of the best checkpoint;
- ``NAME.json``        the model card (schema below);
- ``NAME.log.jsonl``   the per-epoch training log (training curves, TAAFS coefficient snapshots,
                       read by ``mdval compare`` for the training-curve and activation-evolution
                       figures)

are copied/written next to the config; the console output of ``mdval train`` goes to
``<run.dir>/<run.name>.train.log``. Model card (JSON)::

    {"name": str, "model_file": "NAME.pt", "config": "NAME.toml", "config_sha256": str,
     "model_sha256": str, "activation": str | dict, "optimizer": str, "architecture": str,
     "n_parameters": int, "cutoff_A": float, "type_names": [str],
     "training_data": {"name", "files" (relative to the repository), "sha256", "n_train", ...},
     "metrics": {"energy_rmse_meV_per_atom", "force_rmse_eV_per_A", ...  (test split)},
     "training": {"epochs", "steps", "best_epoch", "wall_time_s", "stopped_by", "seed"},
     "mdval_version": str, "created": ISO time}
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import tomllib

from mdval import fileio
from mdval.train.config import find_root
from mdval.train.run_data import hash_paths


def run_dir_of(config: Path) -> Path:
    with open(config, "rb") as handle:
        raw = tomllib.load(handle)
    run = raw.get("run", {})
    base = Path(run.get("dir", "runs"))
    if not base.is_absolute():  # mdval train runs in the project root (see build_one)
        base = find_root(config.resolve().parent) / base
    return base / (run.get("name") or config.stem)


def _portable(training_data: dict, root: Path) -> dict:
    """The data files as paths relative to the project root (a card is read on other machines)."""
    files = []
    for name in training_data.get("files", []):
        path = Path(name)
        files.append(str(path.relative_to(root)) if path.is_relative_to(root) else name)
    return {**training_data, "files": files}


def model_card(config: Path, run_dir: Path, model_path: Path) -> dict:
    """The model card of a trained zoo model (schema in the module docstring)."""
    from mdval.deploy.model_file import read_metadata

    meta = read_metadata(model_path)
    metrics_file = run_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    return {
        "name": config.stem,
        "model_file": model_path.name,
        "config": config.name,
        "config_sha256": hash_paths([config]),
        "model_sha256": hash_paths([model_path]),
        "activation": meta.get("activation"),
        "optimizer": meta.get("optimizer"),
        "architecture": meta.get("architecture"),
        "n_parameters": meta.get("n_parameters"),
        "cutoff_A": meta.get("cutoff"),
        "type_names": meta.get("type_names"),
        "training_data": _portable(meta.get("training_data", {}), find_root(config.resolve().parent)),
        "metrics": metrics.get("test") or meta.get("metrics", {}),
        "training": meta.get("training", {}),
        "mdval_version": meta.get("mdval_version"),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def build_one(config: Path, *, log=print) -> dict:
    """Train one config afresh and ship NAME.pt, NAME.json and NAME.log.jsonl next to it."""
    config = Path(config).resolve()
    run_dir = run_dir_of(config)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    train_log = run_dir.parent / f"{run_dir.name}.train.log"  # stdout of mdval train, beside the run folder
    train_log.parent.mkdir(parents=True, exist_ok=True)
    with open(train_log, "w") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "mdval", "train", str(config), "--quiet"],
            cwd=find_root(config.parent),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not (run_dir / "model.pt").exists():
        log(f"FAILED {config.name} after {wall:.0f} s (exit {proc.returncode}); see {train_log}")
        return {"name": config.stem, "ok": False, "wall_s": wall}
    target = config.with_suffix(".pt")
    shutil.copyfile(run_dir / "model.pt", target)
    if (run_dir / "log.jsonl").exists():
        shutil.copyfile(run_dir / "log.jsonl", config.with_suffix(".log.jsonl"))
    else:  # stopped within its first epoch: no log, and the previous model's log is not this one's
        config.with_suffix(".log.jsonl").unlink(missing_ok=True)
    card = model_card(config, run_dir, target)
    fileio.write_json(config.with_suffix(".json"), card)
    m = card["metrics"]
    log(
        f"done {config.stem}: {wall:.0f} s, test E RMSE {m.get('energy_rmse_meV_per_atom', float('nan')):.3g} "
        f"meV/atom, F RMSE {m.get('force_rmse_eV_per_A', float('nan')):.3g} eV/Å"
    )
    return {"name": config.stem, "ok": True, "wall_s": wall}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mdval.train.zoo", description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="+", help="zoo training configs (models/cu/*.toml)")
    parser.add_argument("--jobs", type=int, default=2, help="trainings at a time (default 2)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        results = list(pool.map(lambda c: build_one(Path(c), log=lambda m: print(m, flush=True)), args.configs))
    print(f"zoo: {sum(r['ok'] for r in results)}/{len(results)} models in {time.perf_counter() - t0:.0f} s")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
