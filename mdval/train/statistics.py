"""Statistics set from training data before training: energy shifts and descriptor normalisation.

Per-element energy shift (DeePMD's ``bias_atom_e``): with n_ft the number of atoms of element t
in frame f, the shifts e_t (eV/atom) minimise Σ_f (E_f - Σ_t n_ft e_t)², solved by
``numpy.linalg.lstsq`` (minimum-norm when the composition matrix is rank deficient, e.g. every
frame has the same stoichiometry).

Descriptor statistics (from up to ``stat_frames`` training frames):

- DeepPot-SE, per centre species t over its edges: s_mean = mean s, s_std = std s for the
  embedding input, row_std = (std s, rms of s·x/r over the three components ×3); DeePMD's
  protection: standard deviations below 1e-2 become 1e-2.
- Behler-Parrinello, per centre species: feature_mean / feature_std over its atoms.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

STD_FLOOR: float = 1e-2


def composition_matrix(frames, type_names: Sequence[str]) -> np.ndarray:
    """[n_frames, n_types] atom counts."""
    index = {name: k for k, name in enumerate(type_names)}
    counts = np.zeros((len(frames), len(type_names)))
    for f, frame in enumerate(frames):
        for symbol in frame.symbols:
            counts[f, index[symbol]] += 1.0
    return counts


def fit_energy_shift(frames, type_names: Sequence[str], baseline=None) -> np.ndarray:
    """Least-squares per-element energies e_t (eV/atom) with E_f - B_f ≈ Σ_t n_ft e_t.

    ``baseline`` B_f (eV, optional) is what the network already predicts without shift, so that
    the shifted untrained model is unbiased per element.
    """
    a = composition_matrix(frames, type_names)
    e = np.array([frame.energy for frame in frames], dtype=np.float64)
    if baseline is not None:
        e = e - np.asarray(baseline, dtype=np.float64)
    shift, *_ = np.linalg.lstsq(a, e, rcond=None)
    return shift


@torch.no_grad()
def network_energies(model, frames, *, neighbor_cache=None, batch_size: int = 16) -> np.ndarray:
    """Total energies (eV) the model predicts for ``frames`` with its energy shift set to zero."""
    from mdval.data.batch import make_batch

    saved = model.fitting.energy_shift.clone()
    model.fitting.energy_shift.zero_()
    try:
        out = []
        for start in range(0, len(frames), batch_size):
            b = make_batch(frames[start : start + batch_size], model.type_names, model.cutoff, neighbor_cache)
            atom_e = model(b.species, b.edge_index, b.edge_vectors, b.n_local)
            out.append(torch.zeros(b.n_frames, dtype=atom_e.dtype).index_add(0, b.frame_index, atom_e))
        return torch.cat(out).numpy()
    finally:
        model.fitting.energy_shift.copy_(saved)


def set_energy_shift(model, shift) -> None:
    """Write ``shift`` (eV/atom per species) into the model's ``energy_shift`` buffer."""
    with torch.no_grad():
        model.fitting.energy_shift.copy_(torch.as_tensor(np.asarray(shift), dtype=torch.float64))


def _sample(frames, n: int, seed: int):
    if len(frames) <= n:
        return list(frames)
    idx = np.sort(np.random.default_rng(seed).choice(len(frames), n, replace=False))
    return [frames[i] for i in idx]


@torch.no_grad()
def set_descriptor_statistics(model, frames, *, neighbor_cache=None, n_frames: int = 100, seed: int = 0) -> dict:
    """Set the model's normalisation buffers from a sample of ``frames``; returns them as lists."""
    from mdval.data.batch import make_batch

    sample = _sample(frames, n_frames, seed)
    arch = model.architecture
    n_types = model.n_types
    if arch == "deeppot_se":
        s_all, rows_all, centre_all = [], [], []
        for frame in sample:
            b = make_batch([frame], model.type_names, model.cutoff, neighbor_cache)
            s, rows = model.environment(b.edge_index, b.edge_vectors, b.species)
            keep = s > 0  # edges inside the cutoff
            s_all.append(s[keep])
            rows_all.append(rows[keep])
            centre_all.append(b.species[b.edge_index[0]][keep])
        s, rows, centres = torch.cat(s_all), torch.cat(rows_all), torch.cat(centre_all)
        for t in range(n_types):
            sel = centres == t
            if int(sel.sum()) < 2:
                continue
            st = s[sel]
            model.s_mean[t] = st.mean()
            model.s_std[t] = st.std().clamp_min(STD_FLOOR)
            model.row_std[t, 0] = st.std().clamp_min(STD_FLOOR)
            model.row_std[t, 1:] = rows[sel][:, 1:].pow(2).mean().sqrt().clamp_min(STD_FLOOR)
        return {"s_mean": model.s_mean.tolist(), "s_std": model.s_std.tolist(), "row_std": model.row_std.tolist()}
    if arch == "behler_parrinello":
        feats, species = [], []
        for frame in sample:
            b = make_batch([frame], model.type_names, model.cutoff, neighbor_cache)
            feats.append(model.descriptor(b.species, b.edge_index, b.edge_vectors, b.n_local))
            species.append(b.species)
        x, sp = torch.cat(feats), torch.cat(species)
        for t in range(n_types):
            sel = sp == t
            if int(sel.sum()) < 2:
                continue
            model.feature_mean[t] = x[sel].mean(0)
            model.feature_std[t] = x[sel].std(0).clamp_min(STD_FLOOR)
        return {"feature_mean": model.feature_mean.tolist(), "feature_std": model.feature_std.tolist()}
    raise ValueError(f"no descriptor statistics for architecture {arch!r}")
