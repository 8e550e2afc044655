"""Multi-layer perceptrons with any activation spec, as DeePMD-kit builds them.

Each hidden layer is y = act(W x + b), with the DeePMD residual: y += x when the width is kept,
y += [x, x] when it doubles. An optional final linear layer (no activation) gives the output.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from mdval.nn.activations import ActivationBuilder


class Dense(nn.Module):
    """One hidden layer: act(W x + b) with the DeePMD-style residual connection."""

    def __init__(self, n_in: int, n_out: int, activation: nn.Module, generator: torch.Generator):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out, dtype=torch.float64)
        _init_linear(self.linear, generator, bias_std=1.0)
        self.activation = activation
        # 0: no residual, 1: y += x, 2: y += cat(x, x)
        self.residual: int = 1 if n_in == n_out else (2 if n_out == 2 * n_in else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.activation(self.linear(x))
        if self.residual == 1:
            y = y + x
        elif self.residual == 2:
            y = y + torch.cat([x, x], dim=-1)
        return y


def _init_linear(linear: nn.Linear, generator: torch.Generator, bias_std: float) -> None:
    """DeePMD-kit initialisation: W ~ N(0, 1/(n_in + n_out)), b ~ N(0, bias_std^2)."""
    n_out, n_in = linear.weight.shape
    with torch.no_grad():
        linear.weight.normal_(0.0, 1.0 / math.sqrt(n_in + n_out), generator=generator)
        if linear.bias is not None:
            linear.bias.normal_(0.0, bias_std, generator=generator)


class MLP(nn.Module):
    """Hidden layers ``hidden`` with activation ``activation``, then an optional linear output.

    ``n_out`` None means the output is the last hidden layer (an embedding net);
    ``output_bias`` False drops the bias of the output layer (DeePMD's fitting net, whose constant
    is the per-element energy shift held by the model).
    """

    def __init__(
        self,
        n_in: int,
        hidden: Sequence[int],
        activation: str,
        builder: ActivationBuilder,
        network: str,
        generator: torch.Generator,
        n_out: int | None = None,
        output_bias: bool = True,
    ):
        super().__init__()
        layers = []
        width = n_in
        for n in hidden:
            layers.append(Dense(width, n, builder.build(activation, n, network), generator))
            width = n
        self.layers = nn.ModuleList(layers)
        if n_out is None:
            self.output: nn.Module = nn.Identity()
            self.n_out: int = width
        else:
            linear = nn.Linear(width, n_out, bias=output_bias, dtype=torch.float64)
            _init_linear(linear, generator, bias_std=0.0)
            self.output = linear
            self.n_out = n_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.output(x)


def count_parameters(module: nn.Module) -> int:
    """Number of distinct trainable scalars (shared parameters counted once)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
