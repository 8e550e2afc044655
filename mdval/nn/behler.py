"""Behler-Parrinello / ANI-style network: atom-centred symmetry functions, one MLP per element.

For a centre i, neighbours j, k with r_ij = |r_j - r_i| (Å), neighbour species t_j, and the C2
cutoff f_c(r) = smooth_switch(r, 0, rcut) (1 - 10u^3 + 15u^4 - 6u^5 with u = r / rcut; zero
value, slope and curvature at rcut, unlike Behler's cosine cutoff which is only C1):

    radial   G_R[i, t, k] = sum_{j: t_j = t} exp(-eta_R (r_ij - R_s,k)^2) f_c(r_ij)

    angular  G_A[i, {t, t'}, m] = 2^(1 - zeta_m) sum_{j < k: {t_j, t_k} = {t, t'}}
               (1 + lambda_m cos theta_ijk)^zeta_m exp(-eta_m (r_ij^2 + r_ik^2)) f_c(r_ij) f_c(r_ik)

with cos theta_ijk = r_ij . r_ik / (r_ij r_ik). The angular terms are Behler's G5 ("wide"): they
need only the two edges from i (no r_jk), so the descriptor is strictly local. The pair {t, t'}
is unordered; j and k are different edges (periodic images of one atom count as different
neighbours), and an edge is never paired with itself. The angular index m runs over all
(eta, zeta, lambda) of the three lists, eta slowest (zeta whole numbers >= 1; an empty list turns
the angular terms off).

Radial shells are evenly spaced, R_s,k = radial_start + k D with D = (rcut - radial_start) /
n_radial, and eta_R = 1 / D^2 unless given (ANI's width for its shell spacing). The default
radial_start of 1.5 Å suits metals and semiconductors (shortest bonds 2.3-3 Å: Si, Ge, Cu, Ni,
Al, Mo, Li) and still sees close approaches; use ~0.8 Å for systems with H.

The feature vector of atom i is [G_R (n_types x n_radial), G_A (n_pairs x n_angular)] with
n_pairs = n_types (n_types + 1) / 2, normalised by ``(G - feature_mean[t_i]) / feature_std[t_i]``
(buffers set from data by the trainer, see ``descriptor``), and the fitting net of t_i maps it to
the atomic energy, plus a per-element energy shift (eV).

References: Behler & Parrinello, PRL 98, 146401 (2007); Behler, J. Chem. Phys. 134, 074106
(2011) (G2 and G5); Smith, Isayev & Roitberg, Chem. Sci. 8, 3192 (2017) (ANI, species-resolved).

Edges with r >= rcut are dropped before anything is computed, so they add exactly nothing (and
f_c makes the features of an atom crossing the cutoff continuous up to second derivatives). The
triplets (j, k) of each centre are built from the edge list by sorting on the centre,
sum_i n_i (n_i - 1) / 2 of them: fine for up to ~100 neighbours.
"""

# No "from __future__ import annotations" here: TorchScript must read the class-level attribute
# annotations of BehlerParrinello as real types.
from typing import Dict, List, Optional, Tuple

import torch

from mdval.nn.activations import ActivationBuilder, resolve_activations
from mdval.nn.common import AtomisticModel, PerElementFitting, check_species, smooth_switch
from mdval.nn.introspect import place_activations
from mdval.nn.mlp import MLP

BEHLER_DEFAULTS: dict = {
    "architecture": "behler_parrinello",
    "cutoff": 5.0,
    "n_radial": 10,
    "radial_start": 1.5,
    "radial_eta": None,
    "angular_eta": [0.01, 0.05],
    "angular_zeta": [1, 2, 4],
    "angular_lambda": [1.0, -1.0],
    "fitting": [64, 64],
    "activation": "tanh",
    "fitting_activation": None,
    "seed": 0,
}


def _float_list(cfg: dict, key: str) -> List[float]:
    value = cfg[key]
    if isinstance(value, (int, float)):
        raise ValueError(f"Behler-Parrinello option {key} must be a list of numbers, got {value!r}")
    try:
        return [float(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f"Behler-Parrinello option {key} must be a list of numbers, got {value!r}") from None


def _validate(cfg: dict) -> None:
    """Refuse inconsistent symmetry-function settings with a message naming the option."""
    cutoff = float(cfg["cutoff"])
    if not cutoff > 0.0:
        raise ValueError(f"Behler-Parrinello needs cutoff > 0 (Å), got {cfg['cutoff']}")
    n_radial = cfg["n_radial"]
    if isinstance(n_radial, bool) or not isinstance(n_radial, int) or n_radial < 1:
        raise ValueError(f"n_radial must be a positive integer, got {n_radial!r}")
    if not 0.0 <= float(cfg["radial_start"]) < cutoff:
        raise ValueError(
            f"radial_start must satisfy 0 <= radial_start < cutoff (Å), got radial_start="
            f"{cfg['radial_start']}, cutoff={cutoff}"
        )
    if cfg["radial_eta"] is not None and not float(cfg["radial_eta"]) > 0.0:
        raise ValueError(f"radial_eta must be > 0 (1/Å^2), or None for 1/spacing^2; got {cfg['radial_eta']}")
    eta = _float_list(cfg, "angular_eta")
    zeta = _float_list(cfg, "angular_zeta")
    lam = _float_list(cfg, "angular_lambda")
    if any(e < 0.0 for e in eta):
        raise ValueError(f"angular_eta values must be >= 0 (1/Å^2), got {eta}")
    if any(z < 1.0 or z != int(z) for z in zeta):
        # Whole zeta keep (1 + lambda cos)^zeta smooth where the base is 0 (zeta < 1: infinite
        # forces; 1 < zeta < 2: infinite force derivatives).
        raise ValueError(f"angular_zeta values must be whole numbers >= 1 (e.g. 1, 2, 4, 8, 16), got {zeta}")
    if any(abs(v) > 1.0 for v in lam):
        raise ValueError(f"angular_lambda values must be in [-1, 1] (usually +1 and -1), got {lam}")
    if not cfg["fitting"] or any(int(n) < 1 for n in cfg["fitting"]):
        raise ValueError(f"fitting must be a non-empty list of layer widths, got {cfg['fitting']}")


def _power(base: torch.Tensor, zeta: int) -> torch.Tensor:
    """base ** zeta for a whole zeta >= 1, by repeated squaring: cheaper than pow, and all its
    derivatives stay finite where the base is 0 (lambda cos theta = -1)."""
    result: Optional[torch.Tensor] = None
    square = base
    n = zeta
    while n > 0:
        if n % 2 == 1:
            result = square if result is None else result * square
        n = n // 2
        if n > 0:
            square = square * square
    assert result is not None
    return result


def _full_config(config: dict) -> dict:
    """BEHLER_DEFAULTS updated with ``config``, checked (ValueError naming the option), with the
    activations resolved and the lists as numbers of their kind."""
    cfg = dict(BEHLER_DEFAULTS)
    unknown = set(config) - set(cfg) - {"type_names"}
    if unknown:
        raise ValueError(
            f"unknown Behler-Parrinello option(s) {sorted(unknown)}; valid: {sorted(set(cfg) | {'type_names'})}"
        )
    cfg.update(config)
    if "type_names" not in cfg or not cfg["type_names"]:
        raise ValueError("Behler-Parrinello needs type_names, e.g. ['Cu']")
    _validate(cfg)
    cfg.update(resolve_activations(cfg, ("fitting",)))
    for key in ("angular_eta", "angular_lambda"):
        cfg[key] = _float_list(cfg, key)
    cfg["angular_zeta"] = [int(z) for z in _float_list(cfg, "angular_zeta")]
    cfg["fitting"] = [int(n) for n in cfg["fitting"]]
    return cfg


def _pair_index(n_types: int) -> torch.Tensor:
    """[n_types, n_types]: unordered species pair {a, b} -> index in 0..n_pairs-1 (a <= b, row-major)."""
    pair_index = torch.zeros(n_types, n_types, dtype=torch.long)
    p = 0
    for a in range(n_types):
        for b in range(a, n_types):
            pair_index[a, b] = p
            pair_index[b, a] = p
            p += 1
    return pair_index


def _fitting_nets(type_names: List[str], n_features: int, cfg: dict) -> PerElementFitting:
    """One MLP per element from the n_features normalised symmetry functions to the atomic energy
    (eV), initialised from cfg["seed"] in type_names order."""
    generator = torch.Generator().manual_seed(int(cfg["seed"]))
    builder = ActivationBuilder()
    fitting = PerElementFitting(
        [
            MLP(
                n_features,
                cfg["fitting"],
                cfg["fitting_activation"],
                builder,
                f"fitting_{name}",
                generator,
                n_out=1,
                output_bias=False,
            )
            for name in type_names
        ]
    )
    for name, net in zip(type_names, fitting.nets):
        place_activations(net, "fitting", name)
    return fitting


class BehlerParrinello(AtomisticModel):
    """Behler-Parrinello network keeping the mdval ABI v1: forward(species, edge_index,
    edge_vectors, n_local) -> atom energies (eV)."""

    # Class-level, so that TorchScript types it even when empty (no angular terms).
    angular_zeta: List[int]

    def __init__(self, config: dict):
        cfg = _full_config(config)
        super().__init__(cfg)

        n_types = self.n_types
        n_radial = int(cfg["n_radial"])
        start = float(cfg["radial_start"])
        spacing = (self.cutoff - start) / n_radial
        radial_eta = 1.0 / spacing**2 if cfg["radial_eta"] is None else float(cfg["radial_eta"])
        self.n_radial: int = n_radial
        self.register_buffer(
            "radial_shift",
            start + spacing * torch.arange(n_radial, dtype=torch.float64),  # R_s,k (Å)
        )
        self.radial_eta: float = radial_eta  # 1/Å^2

        # Angular terms: every (eta, zeta, lambda) of the three lists, eta slowest, lambda fastest.
        self.n_angular_eta: int = len(cfg["angular_eta"])
        self.n_angular_zeta: int = len(cfg["angular_zeta"])
        self.n_angular_lambda: int = len(cfg["angular_lambda"])
        self.n_angular: int = self.n_angular_eta * self.n_angular_zeta * self.n_angular_lambda
        self.angular_zeta = list(cfg["angular_zeta"])
        self.register_buffer("angular_eta", torch.tensor(cfg["angular_eta"], dtype=torch.float64))
        self.register_buffer("angular_lambda", torch.tensor(cfg["angular_lambda"], dtype=torch.float64))
        # 2^(1 - zeta) per angular column, applied after the sum over triplets.
        self.register_buffer(
            "angular_prefactor",
            torch.tensor(
                [
                    2.0 ** (1.0 - z)
                    for _ in cfg["angular_eta"]
                    for z in cfg["angular_zeta"]
                    for _ in cfg["angular_lambda"]
                ],
                dtype=torch.float64,
            ),
        )
        self.n_pairs: int = n_types * (n_types + 1) // 2
        self.register_buffer("pair_index", _pair_index(n_types))

        self.n_features: int = n_types * n_radial + self.n_pairs * self.n_angular
        # Feature normalisation per centre species (set from data by the trainer).
        shape = (n_types, self.n_features)
        self.register_buffer("feature_mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("feature_std", torch.ones(shape, dtype=torch.float64))
        self.fitting = _fitting_nets(self.type_names, self.n_features, cfg)

    @torch.jit.unused
    def activation_specs(self) -> Dict[str, str]:
        return {"fitting": self.config()["fitting_activation"]}

    @torch.jit.unused
    def feature_names(self) -> List[str]:
        """A label for each column of the descriptor, e.g. ``G2[Cu] Rs=2.48`` (for reports)."""
        names = [f"G2[{t}] Rs={float(rs):.3g}" for t in self.type_names for rs in self.radial_shift.tolist()]
        pairs = [(self.type_names[a], self.type_names[b]) for a in range(self.n_types) for b in range(a, self.n_types)]
        for a, b in pairs:
            for e in self.angular_eta.tolist():
                for z in self.angular_zeta:
                    for lam in self.angular_lambda.tolist():
                        names.append(f"G5[{a},{b}] eta={e:g} zeta={z:g} lambda={lam:g}")
        return names

    @torch.jit.unused
    def descriptor(
        self,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        edge_vectors: torch.Tensor,
        n_local: int,
    ) -> torch.Tensor:
        """Raw (unnormalised) symmetry functions [n_local, n_features], for feature statistics."""
        check_species(species, self.n_types)
        return self._symmetry_functions(species, edge_index, edge_vectors, n_local)

    def _triplets(self, centers: torch.Tensor, n_local: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """All pairs (e1, e2) of distinct edges with the same centre, each unordered pair once."""
        n_edges = centers.shape[0]
        order = torch.argsort(centers, stable=True)
        sorted_centers = centers[order]
        counts = torch.bincount(sorted_centers, minlength=n_local)
        offsets = torch.cumsum(counts, 0) - counts
        slot = torch.arange(n_edges, device=centers.device) - offsets[sorted_centers]
        # The edge in slot s of a centre with n edges pairs with the slots s+1 .. n-1.
        partners = counts[sorted_centers] - 1 - slot
        first = torch.repeat_interleave(torch.arange(n_edges, device=centers.device), partners)
        starts = torch.cumsum(partners, 0) - partners
        step = torch.arange(first.shape[0], device=centers.device) - torch.repeat_interleave(starts, partners)
        second = first + 1 + step
        return order[first], order[second]

    def _symmetry_functions(
        self,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        edge_vectors: torch.Tensor,
        n_local: int,
    ) -> torch.Tensor:
        dtype = edge_vectors.dtype
        device = edge_vectors.device
        r_all = torch.linalg.vector_norm(edge_vectors, dim=1)
        # Edges at or beyond the cutoff contribute exactly nothing: drop them first.
        keep = torch.nonzero(r_all < self.cutoff).squeeze(-1)
        r = r_all.index_select(0, keep)
        vectors = edge_vectors.index_select(0, keep)
        centers = edge_index[0].index_select(0, keep)
        neighbor_species = species[edge_index[1].index_select(0, keep)]
        fc = smooth_switch(r, 0.0, self.cutoff)

        # Radial: one Gaussian shell per column, summed into (centre, neighbour species).
        gauss = torch.exp(-self.radial_eta * (r.unsqueeze(1) - self.radial_shift) ** 2)
        radial = torch.zeros(n_local * self.n_types, self.n_radial, dtype=dtype, device=device)
        radial = radial.index_add(0, centers * self.n_types + neighbor_species, gauss * fc.unsqueeze(1))
        features = [radial.reshape(n_local, self.n_types * self.n_radial)]

        if self.n_angular > 0:
            e1, e2 = self._triplets(centers, n_local)
            unit = vectors / r.unsqueeze(1)
            cos = (unit.index_select(0, e1) * unit.index_select(0, e2)).sum(dim=1)
            # |cos| <= 1 up to rounding; clamped, with |lambda| <= 1 the base is exactly >= 0.
            base = 1.0 + torch.clamp(cos, -1.0, 1.0).unsqueeze(1) * self.angular_lambda
            # [n_triplets, n_zeta * n_lambda], zeta slower.
            powers = torch.cat([_power(base, z) for z in self.angular_zeta], dim=1)
            # Per edge exp(-eta r^2) f_c(r); the triplet weight is the product over its two edges.
            radial_part = torch.exp(-(r * r).unsqueeze(1) * self.angular_eta) * fc.unsqueeze(1)
            # [n_triplets, n_eta]
            weight = radial_part.index_select(0, e1) * radial_part.index_select(0, e2)
            # [n_triplets, n_angular], eta slowest (a column loop is faster than a 3-d broadcast).
            terms = torch.cat([weight[:, k : k + 1] * powers for k in range(self.n_angular_eta)], dim=1)
            pair = self.pair_index[neighbor_species.index_select(0, e1), neighbor_species.index_select(0, e2)]
            angular = torch.zeros(n_local * self.n_pairs, self.n_angular, dtype=dtype, device=device)
            angular = angular.index_add(0, centers.index_select(0, e1) * self.n_pairs + pair, terms)
            angular = angular * self.angular_prefactor
            features.append(angular.reshape(n_local, self.n_pairs * self.n_angular))
        return torch.cat(features, dim=1)

    def forward(
        self,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        edge_vectors: torch.Tensor,
        n_local: int,
    ) -> torch.Tensor:
        check_species(species, self.n_types)
        g = self._symmetry_functions(species, edge_index, edge_vectors, n_local)
        local_species = species[:n_local]
        x = (g - self.feature_mean[local_species]) / self.feature_std[local_species]
        return self.fitting(x, local_species)
