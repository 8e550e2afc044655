"""Kalman-filter optimizers: global EKF (Shao et al. 2021) and layer-wise RLEKF (Hu et al. 2023).

Both implement the :class:`mdval.train.strategy.Strategy` protocol. The trainer's registry calls
:func:`make_kalman_strategy` with ``optimizer = "ekf" | "rlekf"`` and the ``[optimizer]`` TOML
table as ``options``. This module turns batches into measurements and adds the filters'
increments to the weights; the filters themselves (the update of w and P, dense for EKF,
block-diagonal for RLEKF) are in mdval/train/kalman_filters.py.

The state w ∈ R^n is the flattened trainable parameters (``model.parameters()``, which
deduplicates shared TAAFS coefficients, in that fixed order); weights are updated under
``no_grad``. A measurement is predicted scalars h(w) with labels y, its Jacobian Hᵀ = ∂h/∂w and
its error e = y - h(w).

Scalar measurements and the sign trick (RLEKF, as in PWMLFF/DeePMD-kit's ``KFOptimizerWrapper``)
--------------------------------------------------------------------------------------------------
RLEKF turns a group of errors e_i = y_i - ŷ_i into ONE scalar measurement: with s_i = sign(e_i)
(+1 for 0), h(w) = c · mean_i s_i ŷ_i(w) and e = c · mean_i |e_i| ≥ 0, i.e. the linearised
measurement of Σ s_i ŷ_i, so the update always moves each prediction towards its label. c is
``energy_prefactor`` or ``force_prefactor``. Per batch:

1. one energy update over all frames: ŷ_f = E_f / N_f (energy per atom);
2. ``n_force_updates`` force updates, each on ``force_group_size`` atoms drawn without
   replacement from the batch's atoms that have force labels (a fresh forward pass for each,
   since the weights changed); ŷ = their 3·group force components.

EKF (global, Shao et al. Algorithm 2; ``measurement = "vector"``, the default) uses vector
measurements: one update on the per-atom energies of all frames of the batch (m = n_frames,
"one energy label per update" with batch_size = 1), then ``n_force_updates`` updates on
``force_components`` (default 10) randomly drawn force components each ("ten force labels per
update"). H is built with one backward pass per component. With ``measurement = "scalar"`` the
EKF uses RLEKF's scalar schedule above (used to check RLEKF against the global filter).

RLEKF's block-diagonal P takes Σ_b s_b² × bytes (:attr:`RLEKF.memory_bytes`, printed before
training starts).

Loss weights, label scale, LAAF
-------------------------------
Kalman filters have no loss: :class:`~mdval.train.strategy.LossWeights` ``energy``/``forces``
prefactors are not used (use ``energy_prefactor`` / ``force_prefactor``); virial labels are not
assimilated. ``label_scale`` divides labels and predictions as for Adam. LAAF slope recovery is a
loss term with no label, so it is **dropped** under both filters: the LAAF slopes are ordinary
entries of w and P and are fitted to the energies and forces; when ``weights.slope_recovery > 0``
a message is printed once and every step reports ``slope_recovery_dropped = 1``.

Options (the ``[optimizer]`` table)
===================================
============================  =========  ====================================================
name                          default    meaning
============================  =========  ====================================================
p0 / epsilon                  1 / -      P(0) = p0·I; or ``epsilon``: P(0) = I/ε
eta                           1.0        R = I/η (η acts like a learning rate)
lambda0, nu                   EKF 1, 1;  forgetting λ₀ and ν in λ ← νλ + 1 - ν (λ = 1: none)
                              RLEKF
                              0.98,
                              0.9987
q0, q_tau, q_min              0, inf, 0  EKF process noise Q = max(q0·exp(-t/q_tau), q_min)·I,
                                         t = number of updates so far
block_size                    5120       RLEKF: largest block
force_group_size              6          atoms per force update (scalar schedule)
force_components              10         EKF vector: force components per force update
n_force_updates               4          force updates per batch
energy_prefactor              1.0        c for energy measurements
force_prefactor               1.0        c for force measurements
measurement                   "vector"   EKF only: "vector" | "scalar"
p_dtype                       "float64"  "float64" | "float32" storage of P
max_params                    12000      EKF refuses larger models (use rlekf)
seed                          0          atom/component sampling (its state is checkpointed)
verbose                       true       print the memory summary on construction
============================  =========  ====================================================
"""

from __future__ import annotations

import math
import sys

import torch
from torch import nn

from mdval.nn.forces import energy_forces_virial
from mdval.train.kalman_filters import BlockKalmanFilter, GlobalKalmanFilter, block_layout

_DTYPES = {"float64": torch.float64, "float32": torch.float32}
_COMMON = {
    "p0",
    "epsilon",
    "eta",
    "lambda0",
    "nu",
    "force_group_size",
    "n_force_updates",
    "energy_prefactor",
    "force_prefactor",
    "p_dtype",
    "seed",
    "verbose",
}
_EKF_ONLY = {"q0", "q_tau", "q_min", "force_components", "measurement", "max_params"}
_RLEKF_ONLY = {"block_size"}
#: keys the trainer may keep in the same [optimizer] table; ignored here.
_IGNORED = {"name", "type", "optimizer", "kind"}


# ------------------------------------------------------------------------------------------
# parameters as one flat vector


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The trainable parameters in ``model.parameters()`` order (shared tensors once)."""
    return [p for p in model.parameters() if p.requires_grad]


def flat_parameters(params) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in params])


def add_to_parameters(params, delta: torch.Tensor) -> None:
    """w ← w + delta for the flat vector ``delta`` (in place, under no_grad)."""
    offset = 0
    with torch.no_grad():
        for p in params:
            n = p.numel()
            p.add_(delta[offset : offset + n].view_as(p).to(p.dtype))
            offset += n


def flat_grad(scalar: torch.Tensor, params, retain_graph: bool = False) -> torch.Tensor:
    """∂scalar/∂w as one flat vector (zeros for parameters it does not depend on)."""
    grads = torch.autograd.grad(scalar, params, retain_graph=retain_graph, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])


# ------------------------------------------------------------------------------------------
# measurements from a batch


def _predict(model, batch, forces: bool):
    return energy_forces_virial(
        model,
        batch.species,
        batch.edge_index,
        batch.edge_vectors,
        batch.n_local,
        frame_index=batch.frame_index,
        n_frames=batch.n_frames,
        forces=forces,
        virial=False,
        create_graph=forces,
    )


def _signed(pred: torch.Tensor, label: torch.Tensor, c: float):
    """Scalar measurement by the sign trick: (h = c·mean s·ŷ, e = c·mean |y - ŷ|)."""
    err = (label - pred).detach()
    s = torch.where(err < 0, -1.0, 1.0).to(pred.dtype)
    return c * (s * pred).mean(), c * float(err.abs().mean())


def _force_candidates(batch) -> torch.Tensor:
    return torch.nonzero(batch.has_forces, as_tuple=False).reshape(-1)


class _KalmanStrategy:
    """Shared driver: measurement schedule, diagnostics, checkpointing."""

    name = "kalman"

    def __init__(self, model: nn.Module, options: dict, defaults: dict, allowed: set):
        unknown = set(options) - allowed - _IGNORED
        if unknown:
            raise ValueError(f"unknown {self.name} option(s) {sorted(unknown)}; valid: {', '.join(sorted(allowed))}")
        o = {**defaults, **options}
        if "epsilon" in options and "p0" in options:
            raise ValueError(f"{self.name}: give p0 or epsilon (P0 = I/epsilon), not both")
        self.p0 = 1.0 / float(o["epsilon"]) if "epsilon" in options else float(o["p0"])
        if o["p_dtype"] not in _DTYPES:
            raise ValueError(f"p_dtype must be float64 or float32, got {o['p_dtype']!r}")
        self.options = o
        self.p_dtype = _DTYPES[o["p_dtype"]]
        self.group = int(o["force_group_size"])
        self.n_force = int(o["n_force_updates"])
        self.ce, self.cf = float(o["energy_prefactor"]), float(o["force_prefactor"])
        self.params = trainable_parameters(model)
        self.n_params = sum(p.numel() for p in self.params)
        self.generator = torch.Generator().manual_seed(int(o["seed"]))
        self.step_count = 0
        self._warned_laaf = False
        self._has_laaf = any(type(m).__name__ == "LAAF" for m in model.modules())

    # subclasses: self.filter, _update(H, e) for the schedule
    def _check_model(self, model) -> list:
        params = trainable_parameters(model)
        if sum(p.numel() for p in params) != self.n_params:
            raise ValueError(
                f"{self.name}: model has {sum(p.numel() for p in params)} "
                f"trainable parameters, the filter was built for {self.n_params}"
            )
        return params

    def _assimilate(self, params, H: torch.Tensor, e) -> None:
        add_to_parameters(params, self.filter.update(H, e))

    def _scalar_schedule(self, model, params, batch, scale: float) -> dict:
        """Energy update then force updates on atom groups (one scalar measurement each)."""
        sq, out = [], {}
        pred = _predict(model, batch, forces=False)
        nat = batch.n_atoms_per_frame.to(pred["energy"].dtype)
        h, e = _signed(pred["energy"] / nat / scale, batch.energy / nat / scale, self.ce)
        out["energy_mae"] = e / self.ce * scale
        self._assimilate(params, flat_grad(h, params), e)
        sq.append(e * e)
        cand = _force_candidates(batch)
        if len(cand) and self.n_force > 0:
            perm = cand[torch.randperm(len(cand), generator=self.generator)]
            groups = [perm[k : k + self.group] for k in range(0, len(perm), self.group)][: self.n_force]
            for j, atoms in enumerate(groups):
                pred = _predict(model, batch, forces=True)
                h, e = _signed(pred["forces"][atoms] / scale, batch.forces[atoms] / scale, self.cf)
                if j == 0:
                    out["force_mae"] = e / self.cf * scale
                self._assimilate(params, flat_grad(h, params), e)
                sq.append(e * e)
        out["loss"] = sum(sq) / len(sq)
        return out

    def step(self, model: nn.Module, batch, weights, step: int) -> dict[str, float]:
        params = self._check_model(model)
        scale = float(getattr(weights, "label_scale", 1.0) or 1.0)
        out = self._schedule(model, params, batch, scale)
        self.step_count += 1
        out["lambda"] = self.filter.lam
        out["n_updates"] = float(self.filter.n_updates)
        if self._has_laaf and float(getattr(weights, "slope_recovery", 0.0)) > 0:
            out["slope_recovery_dropped"] = 1.0
            if not self._warned_laaf:
                print(
                    f"[{self.name}] LAAF slope recovery is a loss term and is dropped under a "
                    "Kalman filter; the slopes are fitted like all other weights",
                    flush=True,
                )
                self._warned_laaf = True
        return {k: float(v) for k, v in out.items()}

    def state_dict(self) -> dict:
        return {
            "name": self.name,
            "filter": self.filter.state_dict(),
            "step": self.step_count,
            "rng_state": self.generator.get_state(),
            "n_params": self.n_params,
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("name", self.name) != self.name:
            raise ValueError(f"checkpoint optimizer state is {state['name']!r}, not {self.name!r}")
        if int(state["n_params"]) != self.n_params:
            raise ValueError(
                f"{self.name} checkpoint is for {state['n_params']} parameters, the model has {self.n_params}"
            )
        self.filter.load_state_dict(state["filter"])
        self.step_count = int(state["step"])
        self.generator.set_state(state["rng_state"])

    def _print(self, text: str) -> None:
        if self.options.get("verbose", True):
            print(text, file=sys.stdout, flush=True)


def _human(nbytes: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.1f} {unit}" if unit != "B" else f"{nbytes} B"
        nbytes /= 1024
    return str(nbytes)


class EKF(_KalmanStrategy):
    """Global extended Kalman filter (Shao et al. 2021, Algorithm 2). See the module doc."""

    name = "ekf"
    DEFAULTS = {
        "p0": 1.0,
        "eta": 1.0,
        "lambda0": 1.0,
        "nu": 1.0,
        "q0": 0.0,
        "q_tau": math.inf,
        "q_min": 0.0,
        "force_group_size": 6,
        "force_components": 10,
        "n_force_updates": 4,
        "energy_prefactor": 1.0,
        "force_prefactor": 1.0,
        "measurement": "vector",
        "p_dtype": "float64",
        "max_params": 12000,
        "seed": 0,
        "verbose": True,
    }

    def __init__(self, model: nn.Module, options: dict | None = None):
        super().__init__(model, dict(options or {}), self.DEFAULTS, _COMMON | _EKF_ONLY)
        o = self.options
        if o["measurement"] not in ("vector", "scalar"):
            raise ValueError(f"ekf measurement must be 'vector' or 'scalar', got {o['measurement']!r}")
        if self.n_params > int(o["max_params"]):
            need = self.n_params**2 * torch.empty((), dtype=self.p_dtype).element_size()
            raise ValueError(
                f"ekf: the model has {self.n_params} parameters, so the global P needs "
                f"{_human(need)}; the limit is max_params = {o['max_params']}. Use optimizer = "
                '"rlekf" (block-diagonal P) or raise max_params'
            )
        self.n_components = int(o["force_components"])
        self.filter = GlobalKalmanFilter(
            self.n_params,
            p0=self.p0,
            eta=o["eta"],
            lambda0=o["lambda0"],
            nu=o["nu"],
            q0=o["q0"],
            q_tau=o["q_tau"],
            q_min=o["q_min"],
            dtype=self.p_dtype,
        )
        per_force = self.group * 3 if o["measurement"] == "scalar" else self.n_components
        self._print(
            f"[ekf] {self.n_params} parameters, one global P ({self.n_params}^2): "
            f"{_human(self.filter.memory_bytes)} ({o['p_dtype']}); passes per batch: 1 energy "
            f"update + {self.n_force} force updates of {per_force} force components"
            + ("" if o["measurement"] == "scalar" else f" ({self.n_components} backward passes each)")
        )

    @property
    def memory_bytes(self) -> int:
        return self.filter.memory_bytes

    def _schedule(self, model, params, batch, scale):
        if self.options["measurement"] == "scalar":
            return self._scalar_schedule(model, params, batch, scale)
        return self._vector_schedule(model, params, batch, scale)

    def _jacobian(self, y: torch.Tensor, params) -> torch.Tensor:
        rows = [flat_grad(y[i], params, retain_graph=i + 1 < len(y)) for i in range(len(y))]
        return torch.stack(rows, dim=1)  # [n, m]

    def _vector_schedule(self, model, params, batch, scale):
        out, sq = {}, []
        pred = _predict(model, batch, forces=False)
        nat = batch.n_atoms_per_frame.to(pred["energy"].dtype)
        y = self.ce * pred["energy"] / nat / scale
        e = (self.ce * batch.energy / nat / scale - y).detach()
        out["energy_mae"] = float(e.abs().mean()) / self.ce * scale
        sq.append(float((e * e).mean()))
        self._assimilate(params, self._jacobian(y, params), e)
        cand = _force_candidates(batch)
        if len(cand) and self.n_force > 0:
            comps = (cand[:, None] * 3 + torch.arange(3)[None, :]).reshape(-1)
            perm = comps[torch.randperm(len(comps), generator=self.generator)]
            m = self.n_components
            for j, sel in enumerate([perm[k : k + m] for k in range(0, len(perm), m)][: self.n_force]):
                pred = _predict(model, batch, forces=True)
                y = self.cf * pred["forces"].reshape(-1)[sel] / scale
                e = (self.cf * batch.forces.reshape(-1)[sel] / scale - y).detach()
                if j == 0:
                    out["force_mae"] = float(e.abs().mean()) / self.cf * scale
                sq.append(float((e * e).mean()))
                self._assimilate(params, self._jacobian(y, params), e)
        out["loss"] = sum(sq) / len(sq)
        return out


class RLEKF(_KalmanStrategy):
    """Layer-wise reorganised EKF (Hu et al. 2023; "LKF"). See the module doc."""

    name = "rlekf"
    DEFAULTS = {
        "p0": 1.0,
        "eta": 1.0,
        "lambda0": 0.98,
        "nu": 0.9987,
        "block_size": 5120,
        "force_group_size": 6,
        "n_force_updates": 4,
        "energy_prefactor": 1.0,
        "force_prefactor": 1.0,
        "p_dtype": "float64",
        "seed": 0,
        "verbose": True,
    }

    def __init__(self, model: nn.Module, options: dict | None = None):
        super().__init__(model, dict(options or {}), self.DEFAULTS, _COMMON | _RLEKF_ONLY)
        o = self.options
        blocks = block_layout([p.numel() for p in self.params], int(o["block_size"]))
        self.filter = BlockKalmanFilter(
            self.n_params, blocks, p0=self.p0, eta=o["eta"], lambda0=o["lambda0"], nu=o["nu"], dtype=self.p_dtype
        )
        self._print(self.summary())

    @property
    def memory_bytes(self) -> int:
        return self.filter.memory_bytes

    def summary(self) -> str:
        sizes = self.filter.block_sizes
        return (
            f"[rlekf] {self.n_params} parameters in {len(sizes)} blocks (block_size "
            f"{self.options['block_size']}): {sizes}; P memory = sum(block^2) x "
            f"{torch.empty((), dtype=self.p_dtype).element_size()} B = {self.memory_bytes} B "
            f"({_human(self.memory_bytes)}, {self.options['p_dtype']}); passes per batch: 1 "
            f"energy update + {self.n_force} force updates of {self.group} atoms"
        )

    def _schedule(self, model, params, batch, scale):
        return self._scalar_schedule(model, params, batch, scale)


def make_kalman_strategy(name: str, model: nn.Module, options: dict | None = None):
    """The Kalman strategy ``name`` ("ekf" | "rlekf") for ``model`` with the ``[optimizer]``
    table ``options`` (names in the module docstring)."""
    key = name.lower()
    if key == "ekf":
        return EKF(model, options)
    if key == "rlekf":
        return RLEKF(model, options)
    raise ValueError(f"unknown Kalman optimizer {name!r}; valid: ekf, rlekf")
