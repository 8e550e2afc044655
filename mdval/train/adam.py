"""Adam with DeePMD-style exponential learning-rate decay and gradient-norm clipping.

Each step: lr ← lr(t) (:class:`mdval.train.loss.LRSchedule`), loss L from
:func:`mdval.train.loss.compute_loss` (forces by autograd with ``create_graph``), backward,
clip ‖∇L‖₂ to ``clip_grad_norm`` (0 disables), Adam update (Kingma & Ba 2015).

Options (``[optimizer]`` table): ``clip_grad_norm`` (default 0: off), ``beta1`` (0.9),
``beta2`` (0.999), ``eps`` (1e-8), ``weight_decay`` (0).
"""

from __future__ import annotations

import torch
from torch import nn

from mdval.train.loss import LRSchedule, compute_loss
from mdval.train.strategy import LossWeights

ADAM_DEFAULTS: dict = {"clip_grad_norm": 0.0, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}
_IGNORED = {"name"}


class AdamStrategy:
    """The Adam :class:`~mdval.train.strategy.Strategy`."""

    name = "adam"

    def __init__(self, model: nn.Module, options: dict | None, schedule: LRSchedule):
        options = dict(options or {})
        unknown = set(options) - set(ADAM_DEFAULTS) - _IGNORED
        if unknown:
            raise ValueError(
                f"unknown adam option(s) {sorted(unknown)} in [optimizer]; valid: name, {', '.join(ADAM_DEFAULTS)}"
            )
        o = {**ADAM_DEFAULTS, **{k: v for k, v in options.items() if k not in _IGNORED}}
        self.options = o
        self.schedule = schedule
        self.clip = float(o["clip_grad_norm"])
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(
            self.params,
            lr=schedule.start_lr,
            betas=(float(o["beta1"]), float(o["beta2"])),
            eps=float(o["eps"]),
            weight_decay=float(o["weight_decay"]),
        )

    def step(self, model: nn.Module, batch, weights: LossWeights, step: int) -> dict[str, float]:
        lr = self.schedule(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss, out = compute_loss(model, batch, weights, create_graph=True)
        loss.backward()
        if self.clip > 0:
            out["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.params, self.clip))
        self.optimizer.step()
        out["lr"] = lr
        return out

    def state_dict(self) -> dict:
        return {"name": self.name, "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if state.get("name", self.name) != self.name:
            raise ValueError(
                f"checkpoint optimizer state is {state['name']!r}, not {self.name!r}; "
                "resume with the optimizer the run was started with"
            )
        self.optimizer.load_state_dict(state["optimizer"])
