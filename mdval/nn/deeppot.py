"""DeepPot-SE (se_e2_a), the smooth two-body embedding descriptor of DeePMD-kit.

For a centre i and each neighbour j with r = |r_ij| (Å), the switched inverse distance is

    s(r) = sw(r) / r,   sw = 1 for r < rcut_smth, C2 polynomial to 0 at rcut (see smooth_switch),

and the environment row is R_ij = (s, s x/r, s y/r, s z/r) / (std_s, std_r, std_r, std_r). The
embedding net of j's species maps the normalised s to G_ij in R^M1. With N_c = ``neighbor_norm``
(a fixed constant, as DeePMD's sum of ``sel``, so that the descriptor is smooth),

    T_i = (1/N_c) sum_j R_ij^T G_ij   in R^(4 x M1),     D_i = T_i^T T_i^<   in R^(M1 x M2),

where T^< keeps the first M2 = ``axis_neuron`` columns. The fitting net of i's species maps the
flattened D_i to the atomic energy, plus a per-element energy shift (eV).
Reference: Zhang et al., NeurIPS 2018, "End-to-end symmetry preserving inter-atomic potential
energy model for finite and extended systems".

An edge with r >= rcut has s = 0, so its row is zero and it adds exactly nothing; normalisation of
the embedding input shifts only G, never the row, so this holds after normalisation too.

``descriptor_centering`` (default off, for files written before it existed) uses DeePMD-kit's own
normalisation instead: the s column becomes (s - davg)/dstd over N_c neighbour slots, with the
empty slots at s = 0 (see DeepPotSE._centering_terms). Without it the s column is all positive,
so T_i carries a large common part and D's 1024 features a large common offset against small
differences between atoms. An edge at or beyond the cutoff still adds nothing (to rounding).
"""

from __future__ import annotations

from typing import Dict, Tuple

import torch
from torch import nn

from mdval.nn.activations import ActivationBuilder, resolve_activations
from mdval.nn.common import AtomisticModel, PerElementFitting, check_species, edge_slots, smooth_switch
from mdval.nn.introspect import place_activations
from mdval.nn.mlp import MLP

DEEPPOT_DEFAULTS: dict = {
    "architecture": "deeppot_se",
    "cutoff": 6.0,
    "cutoff_smooth": 0.5,
    "embedding": [25, 25, 25],
    "fitting": [50, 50, 50],
    "axis_neuron": 16,
    "neighbor_norm": 64.0,
    "descriptor_centering": False,
    "activation": "tanh",
    "embedding_activation": None,
    "fitting_activation": None,
    "seed": 0,
}


def environment_rows(
    edge_vectors: torch.Tensor, cutoff_smooth: float, cutoff: float
) -> Tuple[torch.Tensor, torch.Tensor]:
    """s(r) = sw(r)/r (1/Å) and the raw environment rows (s, s x/r, s y/r, s z/r) of each edge."""
    r = torch.linalg.vector_norm(edge_vectors, dim=1)
    s = smooth_switch(r, cutoff_smooth, cutoff) / r
    rows = torch.cat([s.unsqueeze(1), (s / r).unsqueeze(1) * edge_vectors], dim=1)
    return s, rows


class DeepPotSE(AtomisticModel):
    """DeepPot-SE keeping the mdval ABI v1: forward(species, edge_index, edge_vectors, n_local)."""

    def __init__(self, config: dict):
        cfg = dict(DEEPPOT_DEFAULTS)
        unknown = set(config) - set(cfg) - {"type_names"}
        if unknown:
            raise ValueError(f"unknown DeepPot-SE option(s) {sorted(unknown)}; valid: {sorted(cfg)}")
        cfg.update(config)
        if "type_names" not in cfg or not cfg["type_names"]:
            raise ValueError("DeepPot-SE needs type_names, e.g. ['Cu']")
        cfg.update(resolve_activations(cfg, ("embedding", "fitting")))
        if not 0.0 <= cfg["cutoff_smooth"] < cfg["cutoff"]:
            raise ValueError(
                f"DeepPot-SE needs 0 <= cutoff_smooth < cutoff (Å), got cutoff_smooth="
                f"{cfg['cutoff_smooth']}, cutoff={cfg['cutoff']}"
            )
        if not cfg["embedding"]:
            raise ValueError(
                "DeepPot-SE needs at least one embedding layer, got embedding = []; e.g. embedding = [25, 25, 25]"
            )
        if not 0 < cfg["axis_neuron"] <= cfg["embedding"][-1]:
            raise ValueError(
                f"axis_neuron must be in 1..{cfg['embedding'][-1]} (the last embedding width), got {cfg['axis_neuron']}"
            )
        super().__init__(cfg)
        self.cutoff_smooth: float = float(cfg["cutoff_smooth"])
        self.axis_neuron: int = int(cfg["axis_neuron"])
        self.neighbor_norm: float = float(cfg["neighbor_norm"])
        self.centered: bool = bool(cfg["descriptor_centering"])
        generator = torch.Generator().manual_seed(int(cfg["seed"]))
        builder = ActivationBuilder()
        self.embedding_nets = nn.ModuleList(
            [
                MLP(1, cfg["embedding"], cfg["embedding_activation"], builder, f"embedding_{name}", generator)
                for name in self.type_names
            ]
        )
        m1 = cfg["embedding"][-1]
        self.embedding_width: int = int(m1)
        self.fitting = PerElementFitting(
            [
                MLP(
                    m1 * self.axis_neuron,
                    cfg["fitting"],
                    cfg["fitting_activation"],
                    builder,
                    f"fitting_{name}",
                    generator,
                    n_out=1,
                    output_bias=False,
                )
                for name in self.type_names
            ]
        )
        for name, embedding, fitting in zip(self.type_names, self.embedding_nets, self.fitting.nets):
            place_activations(embedding, "embedding", name)
            place_activations(fitting, "fitting", name)
        # Descriptor normalisation per centre species (set from data by the trainer):
        # embedding input (s - s_mean) / s_std; environment row divided by (std_s, std_r x3).
        self.register_buffer("s_mean", torch.zeros(self.n_types, dtype=torch.float64))
        self.register_buffer("s_std", torch.ones(self.n_types, dtype=torch.float64))
        self.register_buffer("row_std", torch.ones(self.n_types, 4, dtype=torch.float64))

    @torch.jit.unused
    def activation_specs(self) -> Dict[str, str]:
        cfg = self.config()
        return {"embedding": cfg["embedding_activation"], "fitting": cfg["fitting_activation"]}

    @torch.jit.unused
    def environment(self, edge_index: torch.Tensor, edge_vectors: torch.Tensor, species: torch.Tensor):
        """Raw s(r) and environment rows (s, s x/r, s y/r, s z/r) per edge, for statistics."""
        return environment_rows(edge_vectors, self.cutoff_smooth, self.cutoff)

    def embed(self, s: torch.Tensor, center_species: torch.Tensor, neighbor_species: torch.Tensor) -> torch.Tensor:
        """G [E, M1] of each edge from its s (1/Å); a tabulated model overrides this."""
        return self.embedding_net_values(s, center_species, neighbor_species)

    def embedding_net_values(
        self, s: torch.Tensor, center_species: torch.Tensor, neighbor_species: torch.Tensor
    ) -> torch.Tensor:
        """G [E, M1]: the embedding net of each neighbour's species at the normalised s (1/Å)."""
        s_in = ((s - self.s_mean[center_species]) / self.s_std[center_species]).unsqueeze(1)
        if self.n_types == 1:
            g = torch.zeros(s_in.shape[0], self.embedding_width, dtype=s_in.dtype, device=s_in.device)
            for net in self.embedding_nets:
                g = net(s_in)
            return g
        g = torch.zeros(s_in.shape[0], self.embedding_width, dtype=s_in.dtype, device=s_in.device)
        for t, net in enumerate(self.embedding_nets):
            idx = torch.nonzero(neighbor_species == t).squeeze(-1)
            if idx.numel() > 0:
                g = g.index_copy(0, idx, net(s_in.index_select(0, idx)))
        return g

    def _centering_terms(
        self,
        species: torch.Tensor,
        centers: torch.Tensor,
        center_species: torch.Tensor,
        neighbor_species: torch.Tensor,
        n_local: int,
    ) -> torch.Tensor:
        """Row-0 terms [n_local, M1] of DeePMD-kit's centred environment matrix.

        DeePMD-kit normalises the s column as (s - davg) / dstd over a fixed number of neighbour
        slots, and an empty slot (s = 0) holds -davg / dstd times G(0). With mu = davg / dstd
        and N_c = ``neighbor_norm`` slots,
            N_c T_i,0 = sum_j [(s_j/dstd - mu) G_j + mu G_j(0)] - N_c mu G_ii(0),
        so every edge adds exactly (s_j/dstd - mu) G_j + mu G_j(0), which is zero at s = 0: an
        edge that leaves the cutoff fades out smoothly, as in an unpadded sum. The first part is
        in the batched product; this returns the rest, sum_j mu G_j(0) - N_c mu G_ii(0).
        G(0) comes from the same embed() as G, so a tabulated model stays consistent."""
        n = self.n_types
        mu = self.s_mean / self.row_std[:, 0]
        pair_c = torch.arange(n * n, device=species.device) // n
        pair_n = torch.arange(n * n, device=species.device) % n
        zero = torch.zeros(n * n, dtype=self.s_mean.dtype, device=species.device)
        g0 = self.embed(zero, pair_c, pair_n) * mu[pair_c].unsqueeze(1)  # mu_c G_{c,t}(0), [n*n, M1]
        per_edge = g0.index_select(0, center_species * n + neighbor_species)
        out = torch.zeros(n_local, g0.shape[1], dtype=g0.dtype, device=g0.device)
        out = out.index_add(0, centers, per_edge)
        own = species[:n_local] * (n + 1)  # the (c, c) pair of each centre
        return out - self.neighbor_norm * g0.index_select(0, own)

    def forward(
        self,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        edge_vectors: torch.Tensor,
        n_local: int,
    ) -> torch.Tensor:
        check_species(species, self.n_types)
        centers = edge_index[0]
        s, rows = environment_rows(edge_vectors, self.cutoff_smooth, self.cutoff)
        center_species = species[centers]
        rows = rows / self.row_std[center_species]
        # With one species every neighbour has the centre's species: no second gather.
        neighbor_species = species[edge_index[1]] if self.n_types > 1 else center_species
        g = self.embed(s, center_species, neighbor_species)
        m1 = g.shape[1]
        if self.centered:
            # DeePMD-kit's (R - davg) / dstd with N_c padded slots (see _centering_terms).
            mu = self.s_mean / self.row_std[:, 0]
            rows = torch.cat([rows[:, :1] - mu[center_species].unsqueeze(1), rows[:, 1:]], dim=1)

        # Per-centre padded rows: T_i = R_i^T G_i by a batched matrix product.
        slots, width = edge_slots(centers, n_local)
        rows_pad = torch.zeros(n_local, width, 4, dtype=rows.dtype, device=rows.device)
        rows_pad = rows_pad.index_put((centers, slots), rows)
        g_pad = torch.zeros(n_local, width, m1, dtype=g.dtype, device=g.device)
        g_pad = g_pad.index_put((centers, slots), g)
        t = torch.bmm(rows_pad.transpose(1, 2), g_pad) / self.neighbor_norm  # [n, 4, M1]
        if self.centered:
            pad = self._centering_terms(species, centers, center_species, neighbor_species, n_local)
            t = torch.cat([t[:, :1, :] + (pad / self.neighbor_norm).unsqueeze(1), t[:, 1:, :]], dim=1)
        d = torch.bmm(t.transpose(1, 2), t[:, :, : self.axis_neuron])  # [n, M1, M2]
        descriptor = d.reshape(n_local, m1 * self.axis_neuron)
        return self.fitting(descriptor, species[:n_local])
