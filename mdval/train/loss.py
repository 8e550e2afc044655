"""Learning-rate and loss-prefactor schedules (as DeePMD-kit) and the training loss.

Learning rate (exponential decay, DeePMD's ``exp`` schedule), step t, decay every ``decay_steps``,
reaching ``stop_lr`` at ``stop_steps``:

    lr(t) = start_lr · r^floor(t / decay_steps),   r = (stop_lr / start_lr)^(decay_steps / stop_steps)

Loss prefactors follow the learning rate (DeePMD):

    p(t) = p_limit + (p_start - p_limit) · lr(t) / lr(0)

Loss for a batch of frames f with N_f atoms, with labels and predictions divided by the label
scale C (the IReLU paper's rescaling; C = 1 disables it):

    L = p_e · mean_f (E_f - Ê_f)² / (N_f C²)                   energy, eV²/atom
      + p_f · mean_{i,α} ((F_iα - F̂_iα) / C)²                   force components, (eV/Å)²
      + p_v · mean_{f with virial, ab} (W_fab - Ŵ_fab)² / (N_f C²)   virial, eV²/atom
      + w_s · S,   S = 1 / mean_k exp(mean a_k)                 LAAF slope recovery (Jagtap 2020)

The energy and virial terms are DeePMD-kit's (``atom_norm · pref_e · mean ΔE²``, atom_norm =
1/N): the squared error of the *total* energy over N, i.e. N_f times the squared per-atom error.
That is the normalisation DeePMD's prefactors (start_pref_e 0.02, limit_pref_e 1, start_pref_f
1000, limit_pref_f 1) are tuned for; with the per-atom square ((ΔE/N)²) the energy would weigh
N times less against the forces (64 times on 64-atom cells), and the energy differences that the
forces do not fix (crystal against melt, one cell volume against another) are left unfitted.
The diagnostics ``rmse_e`` and ``rmse_v`` stay per atom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mdval.nn.activations import slope_recovery
from mdval.nn.forces import energy_forces_virial
from mdval.train.strategy import LossWeights


@dataclass(frozen=True)
class LRSchedule:
    """Exponential decay from ``start_lr`` to ``stop_lr`` over ``stop_steps`` steps."""

    start_lr: float
    stop_lr: float
    stop_steps: int
    decay_steps: int = 1

    def __post_init__(self) -> None:
        if self.stop_steps < 1 or self.decay_steps < 1:
            raise ValueError(f"stop_steps and decay_steps must be >= 1, got {self.stop_steps}, {self.decay_steps}")

    @property
    def decay_rate(self) -> float:
        return (self.stop_lr / self.start_lr) ** (self.decay_steps / self.stop_steps)

    def __call__(self, step: int) -> float:
        """Learning rate at ``step`` (never below ``stop_lr``)."""
        lr = self.start_lr * self.decay_rate ** math.floor(step / self.decay_steps)
        return max(lr, self.stop_lr) if self.stop_lr < self.start_lr else lr


def prefactor(start: float, limit: float, lr: float, lr0: float) -> float:
    """DeePMD's p(t) = limit + (start - limit) · lr(t) / lr(0)."""
    return limit + (start - limit) * lr / lr0


def loss_weights(loss_cfg: dict, schedule: LRSchedule, step: int) -> LossWeights:
    """The :class:`LossWeights` at ``step`` from the ``[loss]`` table and the lr schedule."""
    lr, lr0 = schedule(step), schedule.start_lr
    c = loss_cfg
    return LossWeights(
        energy=prefactor(c["start_pref_e"], c["limit_pref_e"], lr, lr0),
        forces=prefactor(c["start_pref_f"], c["limit_pref_f"], lr, lr0),
        virial=prefactor(c["start_pref_v"], c["limit_pref_v"], lr, lr0),
        slope_recovery=float(c["slope_recovery"]),
        label_scale=float(c["label_scale"]),
    )


def predict(model, batch, *, create_graph: bool, virial: bool = True) -> dict:
    """Energies [n_frames] (eV), forces [n_atoms, 3] (eV/Å) and virials [n_frames, 3, 3] (eV)."""
    return energy_forces_virial(
        model,
        batch.species,
        batch.edge_index,
        batch.edge_vectors,
        batch.n_local,
        frame_index=batch.frame_index,
        n_frames=batch.n_frames,
        forces=True,
        virial=virial,
        create_graph=create_graph,
    )


def compute_loss(model, batch, weights: LossWeights, *, create_graph: bool = True):
    """(loss tensor, diagnostics dict of floats) for ``batch``; see the module docstring.

    Diagnostics: ``loss``, ``rmse_e`` (eV/atom), ``rmse_f`` (eV/Å), ``rmse_v`` (eV/atom, if any
    virial labels and p_v > 0), ``slope_recovery`` (if the model has LAAF layers).
    """
    need_virial = weights.virial > 0 and bool(batch.has_virial.any())
    pred = predict(model, batch, create_graph=create_graph, virial=need_virial)
    c = weights.label_scale
    nat = batch.n_atoms_per_frame
    de = (pred["energy"] - batch.energy) / nat / c  # per-atom error (diagnostics)
    loss_e = (de * de * nat).mean()  # DeePMD: mean_f ΔE_f² / N_f
    mask = batch.has_forces
    df = (pred["forces"][mask] - batch.forces[mask]) / c
    loss_f = (df * df).mean() if df.numel() else torch.zeros((), dtype=de.dtype)
    loss = weights.energy * loss_e + weights.forces * loss_f
    out = {"rmse_e": math.sqrt(float((de * de).mean().detach())) * c, "rmse_f": math.sqrt(float(loss_f.detach())) * c}
    if need_virial:
        vm = batch.has_virial
        dv = (pred["virial"][vm] - batch.virial[vm]) / nat[vm].view(-1, 1, 1) / c  # per atom
        loss_v = (dv * dv * nat[vm].view(-1, 1, 1)).mean()  # DeePMD: mean ΔW² / N
        loss = loss + weights.virial * loss_v
        out["rmse_v"] = math.sqrt(float((dv * dv).mean().detach())) * c
    if weights.slope_recovery > 0:
        s = slope_recovery(model)
        if s is not None:
            loss = loss + weights.slope_recovery * s
            out["slope_recovery"] = float(s.detach())
    out["loss"] = float(loss.detach())
    return loss, out
