"""Empirical Fisher information of the L1 loss and its eigenvalue spectrum (Shao et al. 2021).

Shao, Dietrich, Nettelblad, Zhang, "Training algorithm matters for the performance of neural
network potential" (J. Chem. Phys. 155, 204108) tell EKF- from Adam-trained potentials apart by
the spectrum of the empirical Fisher information matrix. Our definition (their eq. 1, with the
per-sample loss spelt out, since the per-sample loss is ours to define):

    F = (1/N) Σ_n g_n g_nᵀ,   g_n = ∇_w ℓ_n   (n = 1..N frames, w = all trainable parameters)

    ℓ_n = w_E |Ê_n - E_n| / N_n  +  w_F · (1 / 3N_n) Σ_{i,α} |F̂_iα - F_iα|

the L1 loss of frame n: absolute energy error per atom (eV/atom) plus mean absolute force
component error (eV/Å), weights w_E = w_F = 1 by default (frames without force labels contribute
the energy term only). F is n_params × n_params and positive semi-definite with rank ≤ N.

The spectrum comes from the singular values σ_k of G = [g_1 … g_N]ᵀ (N×n): λ_k = σ_k²/N, and
the other n_params - min(N, n_params) eigenvalues are exactly 0 (rank F ≤ N). Squaring singular
values keeps the tiny eigenvalues (the spectrum of a network spans 15+ decades, below the
float64 resolution of an eigen-solver on F or G Gᵀ). "Near zero" is numpy's rank tolerance
σ ≤ σ_max · max(N, n) · eps, i.e. λ ≤ λ_max (max(N, n) eps)²; the fraction near zero is over all
n_params eigenvalues, and the histogram shows log10 λ of the eigenvalues above the tolerance.

Works on an eager model (``nn.Module``) and on a loaded model file (``mdval.deploy.load``):
the TorchScript module's parameters are switched to ``requires_grad`` for the computation.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from mdval.nn.activations import set_first_derivative_only
from mdval.nn.forces import energy_forces_virial


def model_parameters(model) -> list[torch.Tensor]:
    """The parameters the Fisher matrix is over, in a fixed order, with requires_grad on.

    For a ``ModelFile`` (has ``.module``) these are the TorchScript module's parameters, which
    are stored with requires_grad False."""
    module = getattr(model, "module", model)
    # The loss has force terms, so it needs d2E/dx dtheta: switch exported TAAFS layers out of
    # their first-derivative-only serving mode.
    set_first_derivative_only(module, False)
    params = list(module.parameters())
    if not any(p.requires_grad for p in params):
        for p in params:
            p.requires_grad_(True)
    return [p for p in params if p.requires_grad]


def frame_losses(model, batch, energy_weight: float = 1.0, force_weight: float = 1.0) -> torch.Tensor:
    """ℓ_n for every frame of ``batch`` ([n_frames], differentiable w.r.t. the parameters)."""
    pred = energy_forces_virial(
        model,
        batch.species,
        batch.edge_index,
        batch.edge_vectors,
        batch.n_local,
        frame_index=batch.frame_index,
        n_frames=batch.n_frames,
        forces=force_weight != 0,
        virial=False,
        create_graph=force_weight != 0,
    )
    nat = batch.n_atoms_per_frame.to(pred["energy"].dtype)
    loss = energy_weight * (pred["energy"] - batch.energy).abs() / nat
    if force_weight != 0:
        per_atom = (pred["forces"] - batch.forces).abs().sum(dim=1) * batch.has_forces
        zero = torch.zeros(batch.n_frames, dtype=per_atom.dtype)
        loss = loss + force_weight * zero.index_add(0, batch.frame_index, per_atom) / (3 * nat)
    return loss


def per_sample_gradients(
    model, batches, energy_weight: float = 1.0, force_weight: float = 1.0, progress: bool = False
) -> torch.Tensor:
    """G [N, n_params] (float64): row n is ∇_w ℓ_n for the n-th frame over ``batches``."""
    params = model_parameters(model)
    rows = []
    iterable = batches
    if progress:
        from tqdm import tqdm

        iterable = tqdm(batches, desc="per-frame gradients", unit="batch")
    for batch in iterable:
        losses = frame_losses(model, batch, energy_weight, force_weight)
        for k in range(batch.n_frames):
            grads = torch.autograd.grad(losses[k], params, retain_graph=k + 1 < batch.n_frames, allow_unused=True)
            rows.append(
                torch.cat(
                    [
                        (g if g is not None else torch.zeros_like(p)).reshape(-1).to(torch.float64)
                        for g, p in zip(grads, params)
                    ]
                )
            )
    if not rows:
        raise ValueError("fisher: no frames")
    return torch.stack(rows)


def fisher_matrix(model, batches, energy_weight: float = 1.0, force_weight: float = 1.0) -> torch.Tensor:
    """The empirical Fisher matrix F = GᵀG / N [n_params, n_params] (see the module doc)."""
    G = per_sample_gradients(model, batches, energy_weight, force_weight)
    return G.T @ G / G.shape[0]


def spectrum_from_gradients(G: torch.Tensor) -> np.ndarray:
    """All n_params eigenvalues of GᵀG/N, descending, from the singular values of G."""
    N, n = G.shape
    eig = (torch.linalg.svdvals(G.to(torch.float64)) ** 2 / N).numpy()  # descending
    return np.concatenate([eig, np.zeros(max(n - N, 0))])


def fisher_spectrum(
    model, batches, energy_weight: float = 1.0, force_weight: float = 1.0, progress: bool = False
) -> tuple[np.ndarray, int]:
    """(eigenvalues of F, descending, length n_params; number of frames N)."""
    G = per_sample_gradients(model, batches, energy_weight, force_weight, progress=progress)
    return spectrum_from_gradients(G), int(G.shape[0])


def spectrum_summary(eigenvalues: np.ndarray, n_samples: int) -> dict:
    """Summary statistics of a Fisher spectrum (plain JSON types)."""
    eig = np.asarray(eigenvalues, dtype=np.float64)
    lmax = float(eig.max()) if eig.size else 0.0
    threshold = lmax * (max(n_samples, eig.size) * np.finfo(np.float64).eps) ** 2
    nonzero = eig[eig > threshold]
    logs = np.log10(nonzero) if nonzero.size else np.array([math.nan])
    quantiles = {f"q{int(q * 100):02d}": float(np.quantile(logs, q)) for q in (0.05, 0.25, 0.5, 0.75, 0.95)}
    return {
        "n_params": int(eig.size),
        "n_samples": int(n_samples),
        "rank": int(nonzero.size),
        "trace": float(eig.sum()),
        "largest": lmax,
        "smallest": float(eig.min()) if eig.size else 0.0,
        "smallest_nonzero": float(nonzero.min()) if nonzero.size else 0.0,
        "condition_nonzero": float(lmax / nonzero.min()) if nonzero.size else math.inf,
        "near_zero_threshold": threshold,
        "fraction_near_zero": float(1.0 - nonzero.size / eig.size) if eig.size else 0.0,
        "log10_eigenvalue_quantiles": quantiles,
        "log10_eigenvalue_mean": float(np.mean(logs)),
    }


def plot_spectrum(eigenvalues: np.ndarray, summary: dict, path, title: str = "") -> Path:
    """Histogram of log10 eigenvalues (those above the near-zero threshold) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eig = np.asarray(eigenvalues)
    nonzero = eig[eig > summary["near_zero_threshold"]]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    if nonzero.size:
        ax.hist(
            np.log10(nonzero),
            bins=min(60, max(10, nonzero.size // 4)),
            color="tab:blue",
            alpha=0.85,
            edgecolor="white",
            linewidth=0.4,
        )
    ax.set_xlabel(r"$\log_{10}$ eigenvalue of the empirical Fisher matrix (L1 loss)")
    ax.set_ylabel("count")
    text = (
        f"{summary['n_params']} parameters, {summary['n_samples']} frames; rank {summary['rank']}, "
        f"{100 * summary['fraction_near_zero']:.1f}% near zero (not shown); "
        f"trace {summary['trace']:.3g}, largest {summary['largest']:.3g}"
    )
    ax.set_title(f"{title or 'Fisher information spectrum'}\n{text}", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def fisher_report(
    model,
    batches,
    out_prefix,
    *,
    energy_weight: float = 1.0,
    force_weight: float = 1.0,
    title: str = "",
    extra: dict | None = None,
    progress: bool = False,
) -> dict:
    """Compute the spectrum, write ``<out_prefix>.png`` and ``<out_prefix>.json``; return the
    summary (with the file names)."""
    eig, n = fisher_spectrum(model, batches, energy_weight, force_weight, progress=progress)
    summary = spectrum_summary(eig, n)
    summary.update(
        {
            "loss": "L1: w_E |dE|/N_atoms + w_F mean |dF_component|",
            "energy_weight": energy_weight,
            "force_weight": force_weight,
            **(extra or {}),
        }
    )
    prefix = Path(out_prefix)
    png = plot_spectrum(eig, summary, prefix.with_name(prefix.name + ".png"), title)
    js = prefix.with_name(prefix.name + ".json")
    summary["png"], summary["json"] = str(png), str(js)
    js.write_text(json.dumps(summary, indent=1) + "\n")
    return summary
