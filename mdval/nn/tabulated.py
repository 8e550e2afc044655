"""Tabulated DeepPot-SE embedding: the served model's answer to ``dp compress``.

The embedding net of DeepPot-SE maps one scalar per edge, s(r) = sw(r)/r (1/Å), to G in R^M1,
and in MD it is most of the cost: it runs once per edge, while the fitting net runs once per
atom. Its input is one-dimensional, so it can be replaced by a table (as DeePMD-kit's model
compression does, Lu et al., JCTC 2022): on a uniform grid s_k = k h (k = 0..n) we store G, dG/ds
and d2G/ds2 of each (centre species, neighbour species) pair, and evaluate the quintic Hermite
interpolant on the interval that holds s. The interpolant matches G and its first two derivatives
at every node, so energies, forces and force derivatives stay continuous (C2, like the switch
function), and its error falls as h^6: the default grid is refined until the largest error
over the interval midpoints and quarter points is below ``tolerance`` times max |G|.

The cost of an embedding evaluation no longer depends on the activation: a TAAFS embedding costs
the same as a tanh one. Edges with s above the table (r < r_min, far closer than atoms come in a
sane simulation) are evaluated by the exact embedding nets, which the compressed model keeps, so
the model is defined everywhere.

Like every served model, a tabulated one gives exact first derivatives of its own energy
(forces, virials) but no graph for second derivatives; it is for inference only.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch

from mdval.nn.deeppot import DeepPotSE

#: Polynomial coefficients per interval (quintic Hermite: a0..a5).
N_COEFFS: int = 6


class TabulatedDeepPotSE(DeepPotSE):
    """DeepPot-SE whose embedding nets are replaced by quintic Hermite tables (see module doc)."""

    def __init__(self, config: dict):
        super().__init__(config)
        n_pairs = self.n_types * self.n_types
        m1 = self.embedding_width
        # table[(p * n_intervals + k) * 6 + j] is a_j ([M1]) of interval k of species pair p, in
        # the local variable u = s/h - k in [0, 1].
        self.register_buffer("table", torch.zeros(n_pairs * N_COEFFS, m1, dtype=torch.float64))
        self.register_buffer("coeff_offsets", torch.arange(N_COEFFS, dtype=torch.long))
        self.n_intervals: int = 1
        self.table_step: float = 1.0  # h, 1/Å
        self.table_s_max: float = 1.0  # n h, 1/Å; s above this uses the exact nets
        self.n_coeffs: int = N_COEFFS

    def embed(self, s: torch.Tensor, center_species: torch.Tensor, neighbor_species: torch.Tensor) -> torch.Tensor:
        s0 = s.detach()
        t = s0 / self.table_step
        k = torch.clamp(torch.floor(t), 0.0, float(self.n_intervals - 1))
        row = k.long()
        if self.n_types > 1:
            row = row + (center_species * self.n_types + neighbor_species) * self.n_intervals
        # G = sum_j a_j(row) u^j as one fused gather-and-weighted-sum (embedding_bag over the
        # table's rows a_0..a_5 of each edge's interval); autograd reaches s through u.
        u = s / self.table_step - k
        u2 = u * u
        u4 = u2 * u2
        powers = torch.stack([torch.ones_like(u), u, u2, u2 * u, u4, u4 * u], dim=1)
        cols = row.unsqueeze(1) * self.n_coeffs + self.coeff_offsets
        offsets = torch.arange(0, cols.numel(), self.n_coeffs, dtype=torch.long, device=s.device)
        g = torch.nn.functional.embedding_bag(
            cols.reshape(-1), self.table, offsets, mode="sum", per_sample_weights=powers.reshape(-1)
        )
        outside = torch.nonzero(s0 > self.table_s_max).squeeze(-1)
        if outside.numel() > 0:
            exact = self.embedding_net_values(
                s.index_select(0, outside),
                center_species.index_select(0, outside),
                neighbor_species.index_select(0, outside),
            )
            g = g.index_copy(0, outside, exact)
        return g


def _derivatives(model: DeepPotSE, s: torch.Tensor, center: int, neighbor: int) -> Tuple[torch.Tensor, ...]:
    """G, dG/ds, d2G/ds2 ([len(s), M1] each) of the exact embedding of one species pair."""
    n = s.shape[0]
    cs = torch.full((n,), center, dtype=torch.long)
    ns = torch.full((n,), neighbor, dtype=torch.long)
    m1 = model.embedding_width
    x = s.detach().clone().requires_grad_(True)
    g = model.embedding_net_values(x, cs, ns)
    d1 = torch.empty(n, m1, dtype=torch.float64)
    d2 = torch.empty(n, m1, dtype=torch.float64)
    for j in range(m1):
        # Rows are independent, so the gradient of column j's sum is column j's derivative.
        (gj,) = torch.autograd.grad(g[:, j].sum(), x, create_graph=True)
        (hj,) = torch.autograd.grad(gj.sum(), x, retain_graph=True)
        d1[:, j] = gj.detach()
        d2[:, j] = hj.detach()
    return g.detach(), d1, d2


def _quintic_coefficients(g: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor, h: float) -> torch.Tensor:
    """[n_intervals, 6, M1] coefficients a0..a5 in u in [0, 1] from node values and derivatives."""
    f0, f1 = g[:-1], g[1:]
    p0, p1 = h * d1[:-1], h * d1[1:]
    q0, q1 = h * h * d2[:-1], h * h * d2[1:]
    a = f1 - f0 - p0 - 0.5 * q0
    b = p1 - p0 - q0
    c = q1 - q0
    return torch.stack(
        [f0, p0, 0.5 * q0, 10 * a - 4 * b + 0.5 * c, -15 * a + 7 * b - c, 6 * a - 3 * b + 0.5 * c],
        dim=1,
    )


def tabulate(
    model: DeepPotSE,
    *,
    r_min: float = 0.5,
    tolerance: float = 1e-10,
    max_intervals: int = 65536,
) -> Tuple[TabulatedDeepPotSE, Dict]:
    """A TabulatedDeepPotSE with ``model``'s weights and embedding tables, and a report dict.

    ``r_min`` (Å): the table covers s in [0, 1/r_min]; closer pairs use the exact nets.
    ``tolerance``: largest interpolation error allowed, relative to max |G| over the table
    (checked at the midpoints and quarter points of every interval, per species pair).
    """
    if not isinstance(model, DeepPotSE):
        raise ValueError(
            f"only DeepPot-SE models can be tabulated, got {type(model).__name__}; "
            "Behler-Parrinello models have no embedding net"
        )
    if isinstance(model, TabulatedDeepPotSE):
        raise ValueError("this model is already tabulated")
    if not r_min > 0:
        raise ValueError(f"r_min must be > 0 Å, got {r_min}")
    if not tolerance > 0:
        raise ValueError(f"tolerance must be > 0, got {tolerance}")
    out = TabulatedDeepPotSE(model.config())
    missing, unexpected = out.load_state_dict(model.state_dict(), strict=False)
    if unexpected or set(missing) != {"table", "coeff_offsets"}:
        raise RuntimeError(f"state mismatch while tabulating: missing {missing}, unexpected {unexpected}")
    out.eval()
    s_max = 1.0 / r_min
    # An s past the switch is scaled by sw <= 1, so s never exceeds 1/r; the table starts at 0.
    out.table_s_max = s_max
    n = 256
    while True:
        h = s_max / n
        nodes = torch.arange(n + 1, dtype=torch.float64) * h
        tables: List[torch.Tensor] = []
        scales: List[float] = []
        for ci in range(model.n_types):
            for ni in range(model.n_types):
                g, d1, d2 = _derivatives(model, nodes, ci, ni)
                tables.append(_quintic_coefficients(g, d1, d2, h).reshape(n * N_COEFFS, -1))
                scales.append(float(g.abs().max()) or 1.0)
        out.table = torch.cat(tables, dim=0).contiguous()
        out.n_intervals = n
        out.table_step = h
        # The check goes through the served code path (TabulatedDeepPotSE.embed) itself.
        probes = (
            torch.arange(n, dtype=torch.float64).unsqueeze(1) + torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)
        ).reshape(-1) * h
        worst = 0.0
        with torch.no_grad():
            for pair, scale in enumerate(scales):
                cs = torch.full_like(probes, pair // model.n_types, dtype=torch.long)
                ns = torch.full_like(probes, pair % model.n_types, dtype=torch.long)
                err = (out.embed(probes, cs, ns) - model.embedding_net_values(probes, cs, ns)).abs().max()
                worst = max(worst, float(err) / scale)
        if worst <= tolerance or 2 * n > max_intervals:
            break
        n *= 2
    if worst > tolerance:
        raise ValueError(
            f"the embedding could not be tabulated to tolerance {tolerance:g} with "
            f"{max_intervals} intervals (reached {worst:.2e}); raise the tolerance or r_min"
        )
    report = {
        "method": "quintic Hermite table of the embedding nets",
        "r_min_angstrom": r_min,
        "s_max_per_angstrom": s_max,
        "step_per_angstrom": h,
        "n_intervals": n,
        "max_relative_error": worst,
        "tolerance": tolerance,
        "table_megabytes": out.table.numel() * 8 / 2**20,
    }
    return out.eval(), report


__all__ = ["TabulatedDeepPotSE", "tabulate", "N_COEFFS"]
