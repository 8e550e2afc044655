"""The Kalman filters of the EKF and RLEKF optimizers, on a flat parameter vector.

No model and no data here (tested on least squares): mdval.train.kalman turns batches into
measurements (H, e) and adds the returned increments to the model's weights.

The update
==========
State: the flattened trainable parameters w ∈ R^n and their error covariance P. A measurement is
m predicted scalars h(w) ∈ R^m with labels y; its Jacobian is Hᵀ = ∂h/∂w (H is n×m) and the error
(innovation) is e = y - h(w). With measurement noise R = I/η, forgetting factor λ and process
noise Q = q·I, one update is::

    S = λ R + Hᵀ P H                     (m×m)
    K = P H S⁻¹                          (n×m, the Kalman gain)
    w ← w + K e
    P ← (P - K Hᵀ P) / λ + Q

With λ = 1 and Q = 0 this is recursive least squares: after measurements (H_t, e_t) the weights
are the exact minimiser of η Σ_t |y_t - H_tᵀ w|² + |w - w₀|²_{P₀⁻¹} for a linear model. The
forgetting factor follows λ ← ν λ + 1 - ν after every update (λ₀ = 0.98, ν = 0.9987 in RLEKF).

GlobalKalmanFilter (EKF): dense P
---------------------------------
S = L Lᵀ (Cholesky), V = P H L⁻ᵀ, w ← w + V (L⁻¹ e) and P ← (P - V Vᵀ)/λ in one fused in-place
``addmm_`` (symmetrised every 64 updates); Q = max(q0·exp(-t/q_tau), q_min)·I, t the number of
updates so far.

BlockKalmanFilter (RLEKF): block-diagonal P
-------------------------------------------
Parameters are flattened in order; consecutive small tensors are gathered into one block while
the block stays ≤ ``block_size``; a tensor larger than ``block_size`` is split into chunks of
``block_size`` (plus a remainder) (:func:`block_layout`). A measurement is one scalar (m = 1).
The blocks share the scalar denominator S = λR + Σ_b h_bᵀ P_b h_b; each block updates
K_b = P_b h_b, w_b ← w_b + K_b e / S, P_b ← (P_b - K_b K_bᵀ / S)/λ. PWMLFF/DeePMD-kit add λ once
per block to the denominator; S holds λR once, so that a single block is exactly the global
filter. Blocks of equal size are stored batched in one tensor [k, s, s] (no padding) and
updated with ``bmm``; so the memory is exactly Σ_b s_b² × bytes (what ``memory_bytes`` reports),
and there is one batched update per distinct block size, not a Python loop over blocks.
"""

from __future__ import annotations

import math

import torch


class GlobalKalmanFilter:
    """Dense P (n×n). ``update(H, e)`` returns the weight increment K e (see module doc)."""

    def __init__(
        self,
        n: int,
        *,
        p0: float = 1.0,
        eta: float = 1.0,
        lambda0: float = 1.0,
        nu: float = 1.0,
        q0: float = 0.0,
        q_tau: float = math.inf,
        q_min: float = 0.0,
        dtype: torch.dtype = torch.float64,
    ):
        self.n, self.eta, self.nu = n, float(eta), float(nu)
        self.q0, self.q_tau, self.q_min = float(q0), float(q_tau), float(q_min)
        self.P = torch.eye(n, dtype=dtype) * float(p0)
        self.lam = float(lambda0)
        self.n_updates = 0

    @property
    def memory_bytes(self) -> int:
        return self.n * self.n * torch.empty((), dtype=self.P.dtype).element_size()

    def process_noise(self) -> float:
        if self.q0 == 0.0 and self.q_min == 0.0:
            return 0.0
        return max(self.q0 * math.exp(-self.n_updates / self.q_tau), self.q_min)

    def update(self, H: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """H [n, m] (or [n]), e [m] (or scalar) -> weight increment [n] (float64)."""
        # P follows the model's device (cuda training): it starts on the CPU, moves on first use
        if self.P.device != H.device:
            self.P = self.P.to(H.device)
        H = H.reshape(self.n, -1).to(self.P.dtype)
        e = torch.as_tensor(e, dtype=self.P.dtype, device=H.device).reshape(-1)
        m = H.shape[1]
        PH = self.P @ H  # [n, m]
        S = (self.lam / self.eta) * torch.eye(m, dtype=H.dtype, device=H.device) + H.T @ PH
        # S = L Lᵀ, V = P H L⁻ᵀ: K = P H S⁻¹ = V L⁻¹ and K Hᵀ P = V Vᵀ (symmetric by form)
        L = torch.linalg.cholesky(S)
        V = torch.linalg.solve_triangular(L, PH.T, upper=False).T  # [n, m]
        delta = V @ torch.linalg.solve_triangular(L, e.unsqueeze(1), upper=False).squeeze(1)
        # P ← (P - V Vᵀ) / λ in one fused, in-place pass
        self.P.addmm_(V, V.T, beta=1.0 / self.lam, alpha=-1.0 / self.lam)
        if (self.n_updates + 1) % 64 == 0:  # remove round-off asymmetry now and then
            self.P.copy_(0.5 * (self.P + self.P.T))
        q = self.process_noise()
        if q:
            self.P.diagonal().add_(q)
        self.lam = self.nu * self.lam + 1.0 - self.nu
        self.n_updates += 1
        return delta.to(torch.float64)

    def state_dict(self) -> dict:
        return {"P": self.P.clone(), "lambda": self.lam, "n_updates": self.n_updates}

    def load_state_dict(self, state: dict) -> None:
        if tuple(state["P"].shape) != tuple(self.P.shape):
            raise ValueError(
                f"EKF checkpoint has P of shape {tuple(state['P'].shape)}, the model needs {tuple(self.P.shape)}"
            )
        self.P = state["P"].to(self.P.dtype).clone()
        self.lam = float(state["lambda"])
        self.n_updates = int(state["n_updates"])


def block_layout(sizes: list[int], block_size: int) -> list[tuple[int, int]]:
    """(start, length) of the blocks for parameter tensors of ``sizes`` flattened in order:
    small tensors are gathered while the block stays ≤ block_size, large ones split."""
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    blocks: list[tuple[int, int]] = []
    start, length, offset = 0, 0, 0
    for s in sizes:
        if length and length + s > block_size:
            blocks.append((start, length))
            start, length = offset, 0
        if s > block_size:
            for k in range(0, s, block_size):
                blocks.append((offset + k, min(block_size, s - k)))
            start, length = offset + s, 0
        else:
            length += s
        offset += s
    if length:
        blocks.append((start, length))
    return blocks


class BlockKalmanFilter:
    """Block-diagonal P, blocks of equal size stored batched as [k, s, s] (no padding).

    ``update(h, e)`` takes the flat gradient h = ∂h/∂w [n] of one scalar measurement and its
    error e, and returns the weight increment (see module doc: one shared denominator
    S = λR + Σ_b h_bᵀ P_b h_b, K_b = P_b h_b, Δw_b = K_b e / S, P_b ← (P_b - K_b K_bᵀ/S)/λ).
    """

    def __init__(
        self,
        n: int,
        blocks: list[tuple[int, int]],
        *,
        p0: float = 1.0,
        eta: float = 1.0,
        lambda0: float = 0.98,
        nu: float = 0.9987,
        dtype: torch.dtype = torch.float64,
    ):
        self.n, self.blocks, self.eta, self.nu = n, list(blocks), float(eta), float(nu)
        self.dtype = dtype
        self.lam = float(lambda0)
        self.n_updates = 0
        groups: dict[int, list[int]] = {}
        for start, length in self.blocks:
            groups.setdefault(length, []).append(start)
        self.group_sizes = sorted(groups)
        #: index [k, s] into the flat vector, per block size
        self.index = [
            (torch.tensor(groups[s], dtype=torch.long)[:, None] + torch.arange(s)[None, :]) for s in self.group_sizes
        ]
        self.P = [torch.eye(s, dtype=dtype).repeat(len(groups[s]), 1, 1) * float(p0) for s in self.group_sizes]

    @property
    def block_sizes(self) -> list[int]:
        return [length for _, length in self.blocks]

    @property
    def memory_bytes(self) -> int:
        """Σ_b s_b² × bytes per element, from the layout (equals the stored P's bytes)."""
        return sum(s * s for s in self.block_sizes) * torch.empty((), dtype=self.dtype).element_size()

    def update(self, h: torch.Tensor, e: float | torch.Tensor) -> torch.Tensor:
        h = h.reshape(-1).to(self.dtype)
        if self.P[0].device != h.device:  # P and the index follow the model's device (cuda training)
            self.P = [P.to(h.device) for P in self.P]
            self.index = [idx.to(h.device) for idx in self.index]
        e = float(e)
        Hs = [h[idx] for idx in self.index]  # [k, s]
        Ks = [torch.bmm(P, H.unsqueeze(2)).squeeze(2) for P, H in zip(self.P, Hs)]  # P_b h_b
        hph = sum((H * K).sum() for H, K in zip(Hs, Ks))
        S = self.lam / self.eta + hph
        delta = torch.zeros(self.n, dtype=torch.float64, device=h.device)
        for idx, P, K in zip(self.index, self.P, Ks):
            delta[idx.reshape(-1)] = (K * (e / S)).reshape(-1).to(torch.float64)
            # P ← (P - K Kᵀ / S) / λ in one fused, in-place pass over P
            P.baddbmm_(K.unsqueeze(2), K.unsqueeze(1), beta=1.0 / self.lam, alpha=-1.0 / (float(S) * self.lam))
        self.lam = self.nu * self.lam + 1.0 - self.nu
        self.n_updates += 1
        return delta

    def state_dict(self) -> dict:
        return {
            "P": [P.clone() for P in self.P],
            "block_sizes": self.block_sizes,
            "lambda": self.lam,
            "n_updates": self.n_updates,
        }

    def load_state_dict(self, state: dict) -> None:
        if list(state["block_sizes"]) != self.block_sizes:
            raise ValueError(
                "RLEKF checkpoint has another block layout "
                f"({len(state['block_sizes'])} blocks) than the model "
                f"({len(self.blocks)} blocks); same model and block_size needed"
            )
        self.P = [P.to(self.dtype).clone() for P in state["P"]]
        self.lam = float(state["lambda"])
        self.n_updates = int(state["n_updates"])
