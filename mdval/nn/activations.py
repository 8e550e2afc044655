"""Activation functions named by spec strings (DESIGN.md section 4).

A spec string is ``NAME`` or ``NAME:key=value,key=value``. The same string is used in configs, on
the command line, in model metadata and in report labels. Every module built from a spec carries
``spec``, the canonical form, so that ``parse -> module -> spec`` round-trips.

=========  ======================================================  ============================
name       formula                                                 options (defaults)
=========  ======================================================  ============================
tanh ...   fixed: tanh, silu, relu, softplus, gelu, sigmoid        -
irelu      IReLU(z) = max(0, z)^2 / 2 (integrated ReLU)            -
laaf       sigma(n a z), a trainable, n a = 1 at start (Jagtap)    base=tanh, scope=layer|neuron,
                                                                   n=10
taafs      y = sum_k theta_k B_k(tanh z) (Li 2024), starts as tanh basis=..., degree= or grid=,
                                                                   scope=global|network|layer|
                                                                   neuron (alpha, beta: jacobi)
=========  ======================================================  ============================

Sharing scopes for TAAFS coefficients: ``global`` (one theta for the whole model), ``network``
(one per sub-network), ``layer`` (one per layer, the paper's choice), ``neuron`` (one per neuron).
:class:`ActivationBuilder` hands out the shared parameters.

A spec is canonicalised in one place, :func:`parse_activation_spec` (:func:`canonical_spec`,
:func:`resolve_activations` for a model config); its structured form (:meth:`ActivationSpec.
as_dict`) is what model metadata carries, and :func:`spec_label` its short label for tables.
mdval.nn.introspect lists the activation modules of a model, eager or loaded from a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from mdval.nn.bases import BASIS_NAMES, make_basis

FIXED_ACTIVATIONS: tuple[str, ...] = ("tanh", "silu", "relu", "softplus", "gelu", "sigmoid")
ACTIVATION_NAMES: tuple[str, ...] = FIXED_ACTIVATIONS + ("irelu", "laaf", "taafs")
TAAFS_SCOPES: tuple[str, ...] = ("global", "network", "layer", "neuron")
LAAF_SCOPES: tuple[str, ...] = ("layer", "neuron")
TRAINABLE_FAMILIES: tuple[str, ...] = ("laaf", "taafs")
GRID_BASES: tuple[str, ...] = ("bspline", "rbf")
DEFAULT_TAAFS_SIZE: dict[str, int] = {
    "bspline": 5,
    "rbf": 8,
    "fourier": 3,
    "legendre": 5,
    "hermite": 5,
    "chebyshev1": 5,
    "chebyshev2": 5,
    "bessel": 5,
    "jacobi": 5,
}


@dataclass(frozen=True)
class ActivationSpec:
    """A parsed activation spec: its name and its options, all with defaults filled in."""

    name: str
    options: dict = field(default_factory=dict)

    @property
    def canonical(self) -> str:
        if not self.options:
            return self.name
        parts = [f"{k}={_format_value(v)}" for k, v in self.options.items()]
        return f"{self.name}:{','.join(parts)}"

    @property
    def trainable(self) -> bool:
        """True for the adaptive families (LAAF, TAAFS), which have trainable coefficients."""
        return self.name in TRAINABLE_FAMILIES

    def as_dict(self) -> dict:
        """The structured form model metadata carries: ``{"spec": canonical string, "family":
        name, "options": {option: value} (defaults filled in), "trainable": bool}``."""
        return {"spec": self.canonical, "family": self.name, "options": dict(self.options), "trainable": self.trainable}

    def __str__(self) -> str:  # pragma: no cover - convenience
        return self.canonical


def _format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _parse_number(text: str, key: str, spec: str, kind: type):
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"activation spec {spec!r}: option {key}={text!r} is not a number") from None
    if kind is int:
        if value != int(value) or value <= 0:
            raise ValueError(f"activation spec {spec!r}: {key} must be a positive integer, got {text!r}")
        return int(value)
    return value


def _choice(value: str, valid: tuple[str, ...], what: str, spec: str) -> str:
    if value not in valid:
        raise ValueError(f"activation spec {spec!r}: unknown {what} {value!r}; valid: {', '.join(valid)}")
    return value


def parse_activation_spec(spec: str) -> ActivationSpec:
    """Parse ``NAME[:key=value,...]`` into an :class:`ActivationSpec` with defaults filled in.

    Raises ``ValueError`` naming the bad part and listing the valid names.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"activation spec must be a non-empty string, got {spec!r}")
    text = spec.strip().lower()
    name, _, rest = text.partition(":")
    if name not in ACTIVATION_NAMES:
        raise ValueError(f"unknown activation {name!r} in spec {spec!r}; valid: {', '.join(ACTIVATION_NAMES)}")
    given: dict[str, str] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"activation spec {spec!r}: expected key=value, got {item!r}")
        given[key.strip()] = value.strip()

    def take(key: str, default: str) -> str:
        return given.pop(key, default)

    if name in FIXED_ACTIVATIONS or name == "irelu":
        options: dict = {}
    elif name == "laaf":
        options = {
            "base": _choice(take("base", "tanh"), FIXED_ACTIVATIONS, "LAAF base", spec),
            "scope": _choice(take("scope", "layer"), LAAF_SCOPES, "LAAF scope", spec),
            "n": _parse_number(take("n", "10"), "n", spec, float),
        }
        if options["n"] <= 0:
            raise ValueError(f"activation spec {spec!r}: LAAF scale n must be > 0")
    else:
        basis = _choice(take("basis", "chebyshev1"), BASIS_NAMES, "TAAFS basis", spec)
        size_key = "grid" if basis in GRID_BASES else "degree"
        other_key = "degree" if size_key == "grid" else "grid"
        if other_key in given:
            raise ValueError(f"activation spec {spec!r}: basis {basis!r} takes {size_key}=, not {other_key}=")
        options = {"basis": basis}
        options[size_key] = _parse_number(take(size_key, str(DEFAULT_TAAFS_SIZE[basis])), size_key, spec, int)
        if basis == "jacobi":
            options["alpha"] = _parse_number(take("alpha", "1"), "alpha", spec, float)
            options["beta"] = _parse_number(take("beta", "1"), "beta", spec, float)
        options["scope"] = _choice(take("scope", "layer"), TAAFS_SCOPES, "TAAFS scope", spec)
    if given:
        raise ValueError(f"activation spec {spec!r}: unknown option(s) {', '.join(sorted(given))} for {name!r}")
    return ActivationSpec(name, options)


def canonical_spec(spec: str) -> str:
    """The canonical form of a spec string (defaults filled in)."""
    return parse_activation_spec(spec).canonical


def resolve_activations(config: dict, networks: tuple[str, ...]) -> dict[str, str]:
    """The canonical activation keys of a model config: ``activation`` (default ``tanh``) and,
    for each sub-network in ``networks`` (e.g. ``("embedding", "fitting")``),
    ``<network>_activation``: its own spec where given, else ``activation``.

    The one place a model's specs are canonicalised; raises ``ValueError`` for a bad spec.
    """
    canonical = {"activation": canonical_spec(config.get("activation", "tanh"))}
    for network in networks:
        own = config.get(f"{network}_activation")
        canonical[f"{network}_activation"] = canonical_spec(own) if own else canonical["activation"]
    return canonical


#: Short basis names in labels.
_SHORT_BASIS: dict[str, str] = {"chebyshev1": "cheb1", "chebyshev2": "cheb2"}


def spec_label(spec: dict) -> str:
    """A short label of a structured spec (:meth:`ActivationSpec.as_dict`) for tables and
    figure titles: ``TAAFS bspline g5/layer``, ``LAAF tanh n10/layer``, ``tanh``."""
    family, options = spec["family"], spec["options"]
    if family == "taafs":
        size = f"g{options['grid']}" if "grid" in options else f"d{options['degree']}"
        return f"TAAFS {_SHORT_BASIS.get(options['basis'], options['basis'])} {size}/{options['scope']}"
    if family == "laaf":
        return f"LAAF {options['base']} n{_format_value(options['n'])}/{options['scope']}"
    return spec["spec"]


class ActivationModule(nn.Module):
    """Base of the activation modules: what one is and where it sits, as plain attributes, which
    TorchScript keeps, so that mdval.nn.introspect reads them from a loaded model file too.

    ``spec``: the canonical spec; ``width``: the neurons of its layer; ``network`` ("embedding",
    "fitting"), ``species`` (element symbol) and ``depth`` (0 for the first hidden layer of its
    sub-network): set by the model (:func:`mdval.nn.introspect.place_activations`), empty and 0
    for a stand-alone module.
    """

    def __init__(self, spec: str, width: int):
        super().__init__()
        self.spec: str = spec
        self.width: int = int(width)
        self.network: str = ""
        self.species: str = ""
        self.depth: int = 0


class FixedActivation(ActivationModule):
    """tanh, silu, relu, softplus, gelu or sigmoid."""

    def __init__(self, name: str, width: int = 1):
        super().__init__(name, width)
        self.fn = {
            "tanh": nn.Tanh,
            "silu": nn.SiLU,
            "relu": nn.ReLU,
            "softplus": nn.Softplus,
            "gelu": nn.GELU,
            "sigmoid": nn.Sigmoid,
        }[name]()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.fn(z)


class IReLU(ActivationModule):
    """Integrated ReLU, IReLU(z) = max(0, z)^2 / 2: its derivative is ReLU."""

    def __init__(self, width: int = 1):
        super().__init__("irelu", width)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        r = torch.relu(z)
        return 0.5 * r * r


class LAAF(ActivationModule):
    """Locally adaptive activation sigma(n a z) with trainable slope a (Jagtap et al.).

    ``a`` has one entry per layer (L-LAAF) or per neuron (N-LAAF) and starts at 1/n, so that
    n a = 1 and the network starts as the fixed ``base`` activation.
    """

    def __init__(self, spec: ActivationSpec, width: int):
        super().__init__(spec.canonical, width)
        self.n: float = float(spec.options["n"])
        self.base = FixedActivation(spec.options["base"], width)
        size = width if spec.options["scope"] == "neuron" else 1
        self.slope = nn.Parameter(torch.full((size,), 1.0 / self.n, dtype=torch.float64))

    def mean_slope(self) -> torch.Tensor:
        """mean of a over the layer's slope parameters (the term inside slope recovery)."""
        return self.slope.mean()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.base(self.n * self.slope * z)


class TAAFS(ActivationModule):
    """Trainable adaptive activation y = sum_k theta_k B_k(tanh z); starts as exactly tanh.

    ``coeffs`` is [n_coeffs] (global, network and layer scopes, possibly shared between
    modules) or [width, n_coeffs] (neuron scope).
    """

    def __init__(self, spec: ActivationSpec, basis: nn.Module, coeffs: nn.Parameter, width: int):
        super().__init__(spec.canonical, width)
        self.basis = basis
        self.coeffs = coeffs
        # Serving mode (see set_first_derivative_only): exact value and exact dy/dz, but no graph
        # for second derivatives or for d/dtheta.
        self.first_derivative_only: bool = False

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.first_derivative_only:
            # y0 = P(tanh z0) and s = P'(tanh z0) (1 - tanh^2 z0) are computed without a graph;
            # y = y0 + s (z - z0) has the value y0 and the derivative s, at the cost of one
            # multiply in the backward pass instead of the whole basis recurrence.
            z0 = z.detach()
            a = torch.tanh(z0)
            y0, dy_da = self.basis.value_and_slope(a, self.coeffs.detach())
            # dy/dz = dy/da (1 - a^2), as dy/da - (dy/da a) a: one elementwise op fewer
            return torch.addcmul(y0, torch.addcmul(dy_da, dy_da * a, a, value=-1.0), z - z0)
        return self.basis(torch.tanh(z), self.coeffs)


def _basis_for(spec: ActivationSpec) -> nn.Module:
    o = spec.options
    size = o["grid"] if o["basis"] in GRID_BASES else o["degree"]
    return make_basis(o["basis"], size, o.get("alpha", 1.0), o.get("beta", 1.0))


class ActivationBuilder:
    """Builds activation modules for one model, handing out shared TAAFS coefficients.

    ``build(spec, width, network)`` returns a new module for a layer of ``width`` neurons in the
    sub-network named ``network``. TAAFS modules with scope ``global`` share one parameter per
    spec across the whole model; with scope ``network`` one per (spec, network).
    """

    def __init__(self) -> None:
        self._shared: dict[tuple[str, str], nn.Parameter] = {}

    def build(self, spec: str, width: int, network: str = "") -> nn.Module:
        parsed = parse_activation_spec(spec)
        if parsed.name in FIXED_ACTIVATIONS:
            return FixedActivation(parsed.name, width)
        if parsed.name == "irelu":
            return IReLU(width)
        if parsed.name == "laaf":
            return LAAF(parsed, width)
        basis = _basis_for(parsed)
        scope = parsed.options["scope"]
        key = (parsed.canonical, "" if scope == "global" else network)
        if scope in ("global", "network") and key in self._shared:
            return TAAFS(parsed, basis, self._shared[key], width)
        init = torch.tensor(basis.identity_coefficients(), dtype=torch.float64)
        if scope == "neuron":
            init = init.repeat(width, 1)
        coeffs = nn.Parameter(init)
        if scope in ("global", "network"):
            self._shared[key] = coeffs
        return TAAFS(parsed, basis, coeffs, width)


def set_first_derivative_only(model: nn.Module, enabled: bool = True) -> int:
    """Switch the TAAFS layers of ``model`` (eager or TorchScript) to or from serving mode.

    In serving mode every TAAFS layer returns exact values and exact first derivatives with
    respect to its input, which is all that energies, forces and virials need, for a fraction of
    the cost; second derivatives and derivatives with respect to the coefficients are not
    available. Exported model files are in serving mode; training and the Fisher diagnostic
    switch it off. Returns the number of layers switched.
    """
    count = 0
    for module in model.modules():
        if hasattr(module, "first_derivative_only"):
            module.first_derivative_only = enabled
            count += 1
    return count


def make_activation(spec: str, width: int = 1) -> nn.Module:
    """One stand-alone activation module (its own parameters, nothing shared)."""
    return ActivationBuilder().build(spec, width)


def slope_recovery(model: nn.Module) -> torch.Tensor | None:
    """LAAF slope-recovery term S = 1 / mean_k exp(mean a_k) over the model's LAAF layers.

    Returns ``None`` when the model has no LAAF layer. Adding S to the loss drives the slopes up
    and speeds up training (Jagtap, Kawaguchi, Karniadakis 2020, eq. 13).
    """
    terms = [torch.exp(m.mean_slope()) for m in model.modules() if isinstance(m, LAAF)]
    if not terms:
        return None
    return 1.0 / torch.stack(terms).mean()
