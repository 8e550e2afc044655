"""Evaluate a model (a model file or any ABI v1 module) on labelled frames: predictions and errors.

Inference only: this module never imports mdval.train.

Metrics, over frames f with N_f atoms, force components (i, α) and virial components (f, a, b):

    energy  MAE = mean_f |Ê_f - E_f| / N_f,   RMSE = sqrt(mean_f ((Ê_f - E_f) / N_f)²)   meV/atom
    force   MAE = mean |F̂_iα - F_iα|,         RMSE = sqrt(mean (F̂_iα - F_iα)²)            eV/Å
    virial  as energy, per atom, over frames with a virial label                        meV/atom
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mdval.data.batch import make_batch
from mdval.nn.forces import energy_forces_virial


@dataclass
class Predictions:
    """Labels and predictions, concatenated over frames.

    ===============  ===============  ========  ==========================================
    field            shape            unit      meaning
    ===============  ===============  ========  ==========================================
    energy_label     [n_frames]       eV/atom   label energy per atom
    energy_pred      [n_frames]       eV/atom   predicted energy per atom
    force_label      [n_f_atoms, 3]   eV/Å      labels of atoms that have force labels
    force_pred       [n_f_atoms, 3]   eV/Å      predictions for the same atoms
    virial_label     [n_v, 3, 3]      eV/atom   virial per atom, frames with a virial label
    virial_pred      [n_v, 3, 3]      eV/atom   predicted virial per atom
    n_atoms          [n_frames]       -         atoms per frame
    ===============  ===============  ========  ==========================================
    """

    energy_label: np.ndarray
    energy_pred: np.ndarray
    force_label: np.ndarray
    force_pred: np.ndarray
    virial_label: np.ndarray
    virial_pred: np.ndarray
    n_atoms: np.ndarray


def predict_frames(
    model,
    frames,
    type_names,
    cutoff: float,
    *,
    batch_size: int = 8,
    neighbor_cache=None,
    virial: bool = True,
    check_finite: bool = False,
) -> Predictions:
    """Run ``model`` (callable with the ABI v1 signature) on ``frames``, ``batch_size`` at a time.

    ``check_finite``: NaN or inf predicted energies or forces raise
    :class:`mdval.deploy.model_file.ModelOutputError` naming the frame and its atoms, instead of
    turning every error metric into NaN.
    """
    if len(frames) == 0:
        raise ValueError("no frames to evaluate; the data set is empty")
    keys = ("energy_label", "energy_pred", "force_label", "force_pred", "virial_label", "virial_pred", "n_atoms")
    parts: dict[str, list] = {k: [] for k in keys}
    for start in range(0, len(frames), batch_size):
        b = make_batch(frames[start : start + batch_size], type_names, cutoff, neighbor_cache)
        out = energy_forces_virial(
            model,
            b.species,
            b.edge_index,
            b.edge_vectors,
            b.n_local,
            frame_index=b.frame_index,
            n_frames=b.n_frames,
            forces=True,
            virial=virial,
        )
        if check_finite:
            _check_finite(model, out, b, first_frame=start)
        nat = b.n_atoms_per_frame
        parts["energy_label"].append((b.energy / nat).numpy())
        parts["energy_pred"].append((out["energy"].detach() / nat).numpy())
        parts["force_label"].append(b.forces[b.has_forces].numpy())
        parts["force_pred"].append(out["forces"].detach()[b.has_forces].numpy())
        if virial and bool(b.has_virial.any()):
            vm = b.has_virial
            parts["virial_label"].append((b.virial[vm] / nat[vm].view(-1, 1, 1)).numpy())
            parts["virial_pred"].append((out["virial"].detach()[vm] / nat[vm].view(-1, 1, 1)).numpy())
        parts["n_atoms"].append(nat.numpy())
    empty = {
        "force_label": np.zeros((0, 3)),
        "force_pred": np.zeros((0, 3)),
        "virial_label": np.zeros((0, 3, 3)),
        "virial_pred": np.zeros((0, 3, 3)),
    }
    return Predictions(**{k: (np.concatenate(v) if v else empty[k]) for k, v in parts.items()})


def _check_finite(model, out: dict, batch, first_frame: int) -> None:
    """Raise for the first frame of ``batch`` (frame ``first_frame`` of the data is its first) with
    NaN or inf predicted energies or forces, naming the atoms by their index in that frame."""
    from mdval.deploy.model_file import non_finite_atoms, non_finite_error

    bad = non_finite_atoms(out["atom_energy"].detach(), out["forces"].detach())
    if bad is None:
        return
    frame_of_atom = batch.frame_index.cpu()
    frame = int(frame_of_atom[bad[0]])
    counts = batch.n_atoms_per_frame.cpu()
    offset = int(counts[:frame].sum())
    atoms = bad[frame_of_atom[bad] == frame] - offset
    raise non_finite_error(
        getattr(model, "path", "the model"), atoms, int(counts[frame]), f" in frame {first_frame + frame} of the data"
    )


def _mae_rmse(pred: np.ndarray, label: np.ndarray) -> tuple[float, float]:
    if pred.size == 0:
        return math.nan, math.nan
    d = (pred - label).ravel()
    return float(np.abs(d).mean()), float(np.sqrt((d * d).mean()))


def error_metrics(p: Predictions) -> dict:
    """MAE and RMSE of energy and virial (meV/atom) and force (eV/Å); NaN-free keys only."""
    e_mae, e_rmse = _mae_rmse(p.energy_pred, p.energy_label)
    f_mae, f_rmse = _mae_rmse(p.force_pred, p.force_label)
    out = {
        "n_frames": int(p.energy_label.shape[0]),
        "n_atoms": int(p.n_atoms.sum()),
        "energy_mae_meV_per_atom": 1e3 * e_mae,
        "energy_rmse_meV_per_atom": 1e3 * e_rmse,
    }
    if p.force_label.size:
        out.update(force_mae_eV_per_A=f_mae, force_rmse_eV_per_A=f_rmse)
    if p.virial_label.size:
        v_mae, v_rmse = _mae_rmse(p.virial_pred, p.virial_label)
        out.update(
            n_virial_frames=int(p.virial_label.shape[0]),
            virial_mae_meV_per_atom=1e3 * v_mae,
            virial_rmse_meV_per_atom=1e3 * v_rmse,
        )
    return out


def evaluate_model_file(model_path, data_paths, *, format: str | None = None, batch_size: int = 8):
    """(metrics, predictions, metadata) of the model file ``model_path`` on the data files."""
    from mdval.data.readers import read_many
    from mdval.deploy.model_file import load

    model = load(model_path)
    frames = read_many(list(data_paths), format, type_names=model.type_names)
    with torch.enable_grad():
        pred = predict_frames(model, frames, model.type_names, model.cutoff, batch_size=batch_size, check_finite=True)
    return error_metrics(pred), pred, model.metadata
