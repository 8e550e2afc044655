"""Training checkpoints: written atomically (temp file + ``os.replace``), read with
``torch.load(weights_only=True)``, so they hold only tensors and plain Python values.

Contents: ``format`` (1), ``model_config`` (dict, rebuilds the model), ``model`` (state_dict),
``strategy`` (optimizer state), ``epoch`` (epochs completed), ``batch_in_epoch`` (batches of the
current epoch done), ``step`` (updates done), ``stop_steps`` (the lr plan), ``best_metric``,
``best_epoch``, ``elapsed_s`` (training wall time so far), ``rng_torch`` (uint8 tensor),
``config`` (the run's config as a dict).

A resumed run starts from ``last.pt``, or from ``best.pt`` when ``last.pt`` cannot be read
(:func:`load_for_resume`).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from mdval import fileio

CHECKPOINT_FORMAT: int = 1


def save_checkpoint(path, state: dict) -> Path:
    """Write ``state`` to ``path`` atomically (readers never see a half-written file)."""
    with fileio.atomic_path(path) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)
    return Path(path)


def _torchscript_archive(path: Path) -> bool:
    """An exported model (a TorchScript zip holds a code/ folder); torch.load would warn, then fail."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name for name in archive.namelist())


def _why_unreadable(path: Path, error: Exception) -> str:
    """The reason ``torch.load`` failed, in a few words (its own message is a paragraph)."""
    if not zipfile.is_zipfile(path):
        return "not a file written by torch.save: cut short, or a file of another kind"
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return first if len(first) <= 160 else first[:157] + "..."


def load_checkpoint(path) -> dict:
    """The checkpoint at ``path`` (``weights_only=True``); clear errors for missing/bad files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint not found: {path}; checkpoints are in runs/NAME/checkpoints/ (last.pt, best.pt)"
        )
    if _torchscript_archive(path):
        raise ValueError(
            f"{path} is not a readable mdval checkpoint (it is an exported TorchScript model; "
            "give a checkpoint, runs/NAME/checkpoints/best.pt)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several kinds, with paragraphs of advice
        raise ValueError(f"{path} is not a readable mdval checkpoint ({_why_unreadable(path, error)})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an mdval checkpoint (format {CHECKPOINT_FORMAT} expected)")
    return state


def model_from_checkpoint(state: dict):
    """The model of a checkpoint, weights loaded, in eval mode."""
    from mdval.nn import build_model

    model = build_model(state["model_config"])
    model.load_state_dict(state["model"])
    return model


def load_for_resume(ckpt_dir, log=print) -> dict:
    """The state to resume a run from: ``last.pt``, or ``best.pt`` when ``last.pt`` is missing or
    damaged (the process or the machine died while the file system wrote it, or the disk was
    full), with a one-line warning through ``log``. Raises with the way out when neither loads.
    """
    ckpt_dir = Path(ckpt_dir)
    last, best, run_dir = ckpt_dir / "last.pt", ckpt_dir / "best.pt", ckpt_dir.parent
    if not last.exists() and not best.exists():
        raise FileNotFoundError(
            f"nothing to resume in {run_dir}: {last} does not exist; train without "
            "--resume to start the run (or check run.name and run.dir)"
        )
    try:
        return load_checkpoint(last)
    except FileNotFoundError:
        problem = f"{last} is missing"
    except ValueError as error:
        problem = str(error)
    try:
        state = load_checkpoint(best)
    except (ValueError, FileNotFoundError):
        raise ValueError(
            f"cannot resume {run_dir}: {problem}, and {best} is missing or unreadable too; "
            f"move the run aside (mv {run_dir} {run_dir}.damaged) and train again without "
            "--resume"
        ) from None
    log(
        f"warning: {problem}; resuming from {best} (epoch {state['epoch']}, step {state['step']}), "
        "the steps after it are done again"
    )
    return state
