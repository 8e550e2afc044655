"""Least-squares refit of the readout: the last linear layer of each element's fitting net and the
per-element energy shift, with the rest of the network frozen.

With h_i the last hidden layer of atom i (width K_t for element t), the model's energy and forces
are linear in the readout weights w_t and shifts e_t:

    E_f  = Σ_t [ w_t · Σ_{i in f, t_i = t} h_i  +  N_ft e_t ]             (eV)
    F_iα = -Σ_t w_t · ∂(Σ_{j, t_j = t} h_j) / ∂r_iα                        (eV/Å)

so the training loss at fixed prefactors (mdval.train.loss: p_e mean_f ΔE_f²/N_f + p_f mean ΔF²)
is a quadratic in (w, e), and its minimum over them is one linear least-squares solve. A ridge
α ‖w - w_trained‖² (α in the loss's units, eV²/atom per unit weight²) keeps the weights near the
trained ones along poorly determined directions.

Why: gradient training leaves the readout short of this minimum where the features are nearly
collinear (the directions that fit the energy differences between structures are the flattest);
see benchmarks/analyse_mlearn_energy.py. The force features cost K backward passes per frame
(batched), so a refit over a few hundred 64-atom frames takes about a minute per 100 features on
one core.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from mdval.nn.common import PerElementFitting

#: Readout features per batched backward pass (bounds the memory of the vectorised backward).
FEATURE_CHUNK = 32


def readout_layers(model) -> list[nn.Linear]:
    """The output layer of each element's fitting net; ValueError if the model has none."""
    fitting = getattr(model, "fitting", None)
    if not isinstance(fitting, PerElementFitting):
        raise ValueError(
            f"readout refit needs per-element fitting nets (DeepPot-SE, Behler-Parrinello); "
            f"{type(model).__name__} has none"
        )
    layers = [getattr(net, "output", None) for net in fitting.nets]
    if not all(isinstance(layer, nn.Linear) and layer.out_features == 1 for layer in layers):
        raise ValueError("readout refit needs fitting nets that end in a linear layer with one output")
    return layers


def frame_features(model, frame, type_names: Sequence[str], cutoff: float, neighbor_cache=None) -> dict:
    """Readout features of one frame: ``H`` [P] and ``F`` [3N, P] with P = Σ_t (K_t + 1) (each
    element's summed h, then its atom count; the force columns of the counts are zero), the
    labels ``E`` (eV) and ``F_label`` [3N] (eV/Å), and ``n`` atoms. ``E_model`` is the model's
    energy, for checks."""
    from mdval.data.batch import make_batch

    layers = readout_layers(model)
    captured: dict[int, torch.Tensor] = {}
    hooks = [
        layer.register_forward_hook(lambda module, inputs, output, t=t: captured.__setitem__(t, inputs[0]))
        for t, layer in enumerate(layers)
    ]
    try:
        batch = make_batch([frame], type_names, cutoff, neighbor_cache)
        vectors = batch.edge_vectors.requires_grad_(True)
        energy = model(batch.species, batch.edge_index, vectors, batch.n_local).sum()
    finally:
        for hook in hooks:
            hook.remove()
    sums, counts = [], []
    for t, layer in enumerate(layers):
        h = captured.get(t)
        sums.append(h.sum(0) if h is not None else torch.zeros(layer.in_features, dtype=vectors.dtype))
        counts.append(float((batch.species == t).sum()))
    h_all = torch.cat(sums)
    n_feat = h_all.shape[0]
    centers, neighbors = batch.edge_index
    force_cols = []
    for start in range(0, n_feat, FEATURE_CHUNK):
        rows = torch.eye(n_feat, dtype=h_all.dtype)[start : start + FEATURE_CHUNK]
        if vectors.shape[0] == 0 or not h_all.requires_grad:
            g = torch.zeros(rows.shape[0], *vectors.shape, dtype=vectors.dtype)
        else:
            (g,) = torch.autograd.grad(
                h_all, vectors, grad_outputs=rows, is_grads_batched=True, retain_graph=True, allow_unused=True
            )
            if g is None:
                g = torch.zeros(rows.shape[0], *vectors.shape, dtype=vectors.dtype)
        f = torch.zeros(rows.shape[0], batch.n_local, 3, dtype=g.dtype)
        f = f.index_add(1, centers, g).index_add(1, neighbors, -g)  # F_i += g_e, F_j -= g_e
        force_cols.append(f.reshape(rows.shape[0], -1).T)
    f_all = torch.cat(force_cols, dim=1).detach().numpy()
    # Interleave each element's count column after its features: layout [h_0, N_0, h_1, N_1, ...].
    H, F, k0 = [], [], 0
    for t, layer in enumerate(layers):
        k = layer.in_features
        H += [h_all[k0 : k0 + k].detach().numpy(), np.array([counts[t]])]
        F += [f_all[:, k0 : k0 + k], np.zeros((f_all.shape[0], 1))]
        k0 += k
    return {
        "H": np.concatenate(H),
        "F": np.hstack(F),
        "E": float(frame.energy),
        "n": batch.n_local,
        "F_label": np.asarray(frame.forces, dtype=np.float64).reshape(-1),
        "E_model": float(energy.detach()),
    }


def count_columns(model) -> np.ndarray:
    """Boolean mask of the energy-shift (atom count) entries in the layout of :func:`readout_vector`."""
    widths = [layer.in_features + 1 for layer in readout_layers(model)]
    mask = np.zeros(sum(widths), dtype=bool)
    mask[np.cumsum(widths) - 1] = True
    return mask


def readout_vector(model) -> np.ndarray:
    """Current (w_0, e'_0, w_1, e'_1, ...) in the layout of :func:`frame_features`, where e'_t is the
    energy shift plus the output bias (if the layer has one)."""
    parts = []
    for t, layer in enumerate(readout_layers(model)):
        bias = float(layer.bias.detach()[0]) if layer.bias is not None else 0.0
        parts += [layer.weight.detach().reshape(-1).numpy(), [float(model.fitting.energy_shift[t]) + bias]]
    return np.concatenate(parts)


def set_readout_vector(model, x: np.ndarray) -> None:
    """Write ``x`` (layout of :func:`readout_vector`) into the output layers and energy shifts."""
    k0 = 0
    with torch.no_grad():
        for t, layer in enumerate(readout_layers(model)):
            k = layer.in_features
            layer.weight.copy_(torch.as_tensor(x[k0 : k0 + k], dtype=layer.weight.dtype).reshape(1, k))
            bias = float(layer.bias[0]) if layer.bias is not None else 0.0
            model.fitting.energy_shift[t] = float(x[k0 + k]) - bias
            k0 += k + 1


def training_loss(data: list[dict], x: np.ndarray, pref_e: float, pref_f: float) -> float:
    """p_e mean_f ΔE_f²/N_f + p_f mean ΔF² (eV²/atom) of readout ``x`` on featurised frames."""
    de = np.array([d["H"] @ x - d["E"] for d in data])
    n = np.array([d["n"] for d in data], dtype=np.float64)
    df = np.concatenate([d["F"] @ x - d["F_label"] for d in data])
    return float(pref_e * np.mean(de * de / n) + pref_f * np.mean(df * df))


def solve_readout(
    data: list[dict], x0: np.ndarray, pref_e: float, pref_f: float, ridge: float, count_columns: np.ndarray
) -> np.ndarray:
    """The readout minimising :func:`training_loss` + ridge ‖w - w0‖² (shifts unpenalised)."""
    n_frames = len(data)
    n_comp = sum(d["F"].shape[0] for d in data)
    se, sf = np.sqrt(pref_e / n_frames), np.sqrt(pref_f / max(n_comp, 1))
    rows = [se * np.array([d["H"] / np.sqrt(d["n"]) for d in data])]
    rhs = [se * np.array([d["E"] / np.sqrt(d["n"]) for d in data])]
    if n_comp:
        rows.append(sf * np.concatenate([d["F"] for d in data]))
        rhs.append(sf * np.concatenate([d["F_label"] for d in data]))
    if ridge > 0:
        penal = np.flatnonzero(~count_columns)
        reg = np.zeros((penal.size, x0.size))
        reg[np.arange(penal.size), penal] = np.sqrt(ridge)
        rows.append(reg)
        rhs.append(np.sqrt(ridge) * x0[penal])
    x, *_ = np.linalg.lstsq(np.vstack(rows), np.concatenate(rhs), rcond=None)
    return x


def refit_readout(
    model, frames, type_names: Sequence[str], *, pref_e: float, pref_f: float, ridge: float = 1e-4, neighbor_cache=None
) -> dict:
    """Refit ``model``'s readout in place on ``frames`` (with energies and forces) for the training
    loss at prefactors (pref_e, pref_f) plus the ridge; returns a summary (losses before and after,
    relative weight change)."""
    if ridge < 0:
        raise ValueError(f"readout refit: ridge must be >= 0 (eV²/atom per unit weight²), got {ridge}")
    missing = [k for k, f in enumerate(frames) if f.forces is None]
    if missing:
        raise ValueError(f"readout refit needs force labels; frame(s) {missing[:5]} have none")
    if not frames:
        raise ValueError("readout refit: no training frames")
    was_training = model.training
    model.eval()
    with torch.enable_grad():
        data = [frame_features(model, f, type_names, model.cutoff, neighbor_cache) for f in frames]
    model.train(was_training)
    x0 = readout_vector(model)
    counts = count_columns(model)
    worst = max(abs(d["H"] @ x0 - d["E_model"]) for d in data)
    if worst > 1e-6 * max(1.0, max(abs(d["E_model"]) for d in data)):
        raise RuntimeError(
            f"readout refit: the features do not reproduce the model's energies "
            f"(max |ΔE| {worst:.3g} eV); the model's energy is not linear in its readout"
        )
    x = solve_readout(data, x0, pref_e, pref_f, ridge, counts)
    before, after = training_loss(data, x0, pref_e, pref_f), training_loss(data, x, pref_e, pref_f)
    set_readout_vector(model, x)
    w_change = float(np.linalg.norm((x - x0)[~counts]) / max(np.linalg.norm(x0[~counts]), 1e-300))
    return {
        "frames": len(frames),
        "pref_e": pref_e,
        "pref_f": pref_f,
        "ridge": ridge,
        "train_loss_before": before,
        "train_loss_after": after,
        "weight_change": w_change,
    }
