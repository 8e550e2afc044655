"""``mdval train CONFIG --committee N [--jobs J]``: N models of one config, for model deviation.

The members differ only in ``run.seed`` (member k has the config's seed + k - 1), which sets the
initial weights, the batch order and the statistics frames; ``data.split_seed`` is the config's
for all of them, so every member trains, validates and tests on the same frames. Each member is
a ``mdval train`` subprocess with one torch thread, ``--jobs`` at a time. Run folder
``<run.dir>/<run.name>/``::

    member-1/ ... member-N/   ordinary training run folders (mdval.train.trainer), with train.log,
                              the console output of their ``mdval train``
    committee/model-1.pt ...  the members' model files, for ``pair_style taafs ... committee``
                              and ``mdval.Calculator([...])``
    committee.json            {"config", "seeds", "split_seed", "members": [{"name", "seed",
                              "model", "test" (test-split errors)}]}

Running the command again resumes the members that did not finish (``mdval train --resume``) and
skips the finished ones (model.pt and metrics.json present); the committee is exported when all
members have finished.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mdval import fileio
from mdval.options import toml_text

#: Folder of the exported members' model files inside the committee's run folder.
EXPORT_FOLDER: str = "committee"


def member_dir(run_dir: Path, k: int) -> Path:
    return run_dir / f"member-{k}"


def member_state(folder: Path) -> str:
    """'finished' (model.pt and metrics.json), 'started' (a checkpoint to resume) or 'new'."""
    if (folder / "model.pt").exists() and (folder / "metrics.json").exists():
        return "finished"
    if any((folder / "checkpoints" / name).exists() for name in ("last.pt", "best.pt")):
        return "started"
    return "new"


def check_sizes(n_members: int, jobs: int) -> None:
    if n_members < 2:
        raise ValueError(
            f"--committee must be at least 2 (the number of members), got {n_members}; "
            "train a single model without --committee"
        )
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1 (members trained at a time), got {jobs}")


def _train_member(config: Path, overrides: list[str], folder: Path, seed: int, resume: bool) -> str | None:
    """Run ``mdval train`` for one member (one torch thread, console output appended to its
    train.log); returns None when it succeeded, else its error line (or where to look)."""
    sets = overrides + [
        f"run.dir={toml_text(str(folder.parent))}",
        f"run.name={toml_text(folder.name)}",
        f"run.seed={seed}",
    ]
    command = [sys.executable, "-m", "mdval", "train", str(config), "--quiet"]
    command += [arg for text in sets for arg in ("--set", text)]
    if resume:
        command.append("--resume")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "train.log"
    start = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "a") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    if code == 0:
        return None
    with open(log_path, errors="replace") as handle:  # this attempt's lines only
        handle.seek(start)
        errors = [line.strip() for line in handle if line.startswith("mdval: error:")]
    return errors[-1].removeprefix("mdval: error: ") if errors else f"exit {code}, see {log_path}"


def _export(run_dir: Path, config: Path, cfg: dict, seeds: list[int]) -> dict:
    """Copy the members' model files to committee/ and write committee.json."""
    members = []
    for k, seed in enumerate(seeds, start=1):
        folder = member_dir(run_dir, k)
        target = run_dir / EXPORT_FOLDER / f"model-{k}.pt"
        with fileio.atomic_path(target, suffix=".pt") as tmp:
            shutil.copyfile(folder / "model.pt", tmp)
        metrics = json.loads((folder / "metrics.json").read_text())
        members.append(
            {
                "name": folder.name,
                "seed": seed,
                "model": str(target.relative_to(run_dir)),
                "test": metrics.get("test", {}),
            }
        )
    for stale in (run_dir / EXPORT_FOLDER).glob("model-*.pt"):  # from an earlier, larger committee
        if stale.name not in {f"model-{k}.pt" for k in range(1, len(seeds) + 1)}:
            stale.unlink()
    record = {
        "config": str(config),
        "seeds": seeds,
        "split_seed": int(cfg["data"]["split_seed"]),
        "members": members,
    }
    fileio.write_json(run_dir / "committee.json", record)
    return record


def train_committee(config, n_members: int, *, jobs: int = 1, overrides=(), log=print) -> dict:
    """Train (or resume, or skip) the N members of ``config`` and export the committee.

    Returns committee.json's record plus ``run_dir``; raises ``ValueError`` naming the members
    that failed (with their error line) so that a rerun resumes them.
    """
    from mdval.train.config import load_config
    from mdval.train.run_data import data_paths

    check_sizes(n_members, jobs)
    config = Path(config).resolve()
    overrides = list(overrides)
    cfg = load_config(config, overrides)
    run_dir = Path(cfg["run"]["dir"]).expanduser().resolve() / (cfg["run"]["name"] or config.stem)
    data_paths(cfg, log=log)  # generates data.train once here, not N times at once in the members
    seeds = [int(cfg["run"]["seed"]) + k for k in range(n_members)]
    states = {k: member_state(member_dir(run_dir, k)) for k in range(1, n_members + 1)}
    todo = [k for k, state in states.items() if state != "finished"]
    for k, state in states.items():
        if state == "finished":
            log(f"member-{k} (seed {seeds[k - 1]}): finished, skipped")

    def run(k: int) -> str | None:
        verb = "resuming" if states[k] == "started" else "training"
        log(f"member-{k} (seed {seeds[k - 1]}): {verb}, log in {member_dir(run_dir, k) / 'train.log'}")
        error = _train_member(config, overrides, member_dir(run_dir, k), seeds[k - 1], states[k] == "started")
        log(f"member-{k}: {'done' if error is None else 'failed: ' + error}")
        return error

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        errors = dict(zip(todo, pool.map(run, todo)))
    failed = {k: error for k, error in errors.items() if error is not None}
    if failed:
        reasons = "; ".join(f"member-{k}: {error}" for k, error in failed.items())
        raise ValueError(
            f"{len(failed)} of {n_members} committee members did not finish ({reasons}); "
            "fix that and run the same command again: finished members are skipped, the others resume"
        )
    record = _export(run_dir, config, cfg, seeds)
    log(f"committee of {n_members}: {run_dir / EXPORT_FOLDER}/model-1.pt ... model-{n_members}.pt")
    return {**record, "run_dir": str(run_dir)}
