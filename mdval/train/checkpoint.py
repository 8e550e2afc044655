"""Training checkpoints: written atomically (temp file + ``os.replace``), read with
``torch.load(weights_only=True)``, so they hold only tensors and plain Python values.

Contents: ``format`` (1), ``model_config`` (dict, rebuilds the model), ``model`` (state_dict),
``strategy`` (optimizer state), ``epoch`` (epochs completed), ``batch_in_epoch`` (batches of the
current epoch done), ``step`` (updates done), ``stop_steps`` (the lr plan), ``best_metric``,
``best_epoch``, ``elapsed_s`` (training wall time so far), ``rng_torch`` (uint8 tensor),
``config`` (the run's config as a dict).
"""

from __future__ import annotations

from pathlib import Path

import torch

from mdval import fileio

CHECKPOINT_FORMAT: int = 1


def save_checkpoint(path, state: dict) -> Path:
    """Write ``state`` to ``path`` atomically (readers never see a half-written file)."""
    with fileio.atomic_path(path) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, tmp)
    return Path(path)


def load_checkpoint(path) -> dict:
    """The checkpoint at ``path`` (``weights_only=True``); clear errors for missing/bad files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}; checkpoints are in "
                                "runs/NAME/checkpoints/ (last.pt, best.pt)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several kinds with long messages
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path} is not a readable mdval checkpoint ({reason})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an mdval checkpoint (format {CHECKPOINT_FORMAT} expected)")
    return state


def model_from_checkpoint(state: dict):
    """The model of a checkpoint, weights loaded, in eval mode."""
    from mdval.nn import build_model

    model = build_model(state["model_config"])
    model.load_state_dict(state["model"])
    return model
