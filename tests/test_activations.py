"""Activations: spec round trips, exact tanh start of TAAFS, derivatives, TorchScript, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mdval.nn.activations import (
    ACTIVATION_NAMES,
    FIXED_ACTIVATIONS,
    TAAFS_SCOPES,
    ActivationBuilder,
    make_activation,
    parse_activation_spec,
    slope_recovery,
)
from mdval.nn.bases import BASIS_NAMES

from conftest import FLOAT64_EXACT

WIDTH = 3
TAAFS_SPECS = [f"taafs:basis={b},scope={s}" for b in BASIS_NAMES for s in TAAFS_SCOPES]
ALL_SPECS = list(FIXED_ACTIVATIONS) + ["irelu", "laaf:scope=layer", "laaf:base=silu,scope=neuron,n=5"] + TAAFS_SPECS
# Activations with a kink at z = 0 (finite differences must stay away from it).
KINKED = ("relu", "irelu")


def perturbed(spec: str, seed: int = 0) -> torch.nn.Module:
    """The activation with its trainable parameters moved away from their start."""
    module = make_activation(spec, WIDTH)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return module


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_spec_round_trips(spec):
    module = make_activation(spec, WIDTH)
    canonical = parse_activation_spec(spec).canonical
    assert module.spec == canonical
    assert parse_activation_spec(module.spec).canonical == module.spec
    assert make_activation(module.spec, WIDTH).spec == module.spec


def test_spec_defaults_and_sizes_are_explicit():
    assert parse_activation_spec("taafs:basis=bspline").canonical == "taafs:basis=bspline,grid=5,scope=layer"
    assert parse_activation_spec("TAAFS:basis=chebyshev1,degree=8").canonical == (
        "taafs:basis=chebyshev1,degree=8,scope=layer"
    )
    assert parse_activation_spec("taafs:basis=jacobi").options["alpha"] == 1.0
    assert parse_activation_spec("laaf").canonical == "laaf:base=tanh,scope=layer,n=10"


@pytest.mark.parametrize("basis", BASIS_NAMES)
@pytest.mark.parametrize("size", [1, 2, 7])
def test_taafs_starts_as_exact_tanh(basis, size):
    if basis == "rbf" and size == 1:
        pytest.skip("rbf needs at least 2 centres")
    key = "grid" if basis in ("bspline", "rbf") else "degree"
    z = torch.linspace(-40.0, 40.0, 4001, dtype=torch.float64).reshape(-1, 1).repeat(1, WIDTH)
    for scope in TAAFS_SCOPES:
        module = make_activation(f"taafs:basis={basis},{key}={size},scope={scope}", WIDTH)
        err = (module(z) - torch.tanh(z)).abs().max().item()
        assert err <= 1e-12, f"{basis} {key}={size} scope={scope}: max |y - tanh| = {err}"


@pytest.mark.parametrize("spec", ALL_SPECS)
def test_first_and_second_derivatives_finite_at_extremes(spec):
    module = perturbed(spec)
    z = torch.tensor([[-40.0] * WIDTH, [40.0] * WIDTH], dtype=torch.float64, requires_grad=True)
    y = module(z)
    (d1,) = torch.autograd.grad(y.sum(), z, create_graph=True)
    # d2y/dz2, and the mixed d2y/dz dtheta that force training needs.
    second = torch.autograd.grad(d1.sum(), [z, *module.parameters()], allow_unused=True)
    assert torch.isfinite(y).all()
    assert torch.isfinite(d1).all()
    assert all(g is None or torch.isfinite(g).all() for g in second)


def _away_from_kinks(values, spec):
    z = torch.tensor(values, dtype=torch.float64).reshape(-1, WIDTH)
    if spec in KINKED:
        z = torch.where(z.abs() < 1e-2, z + 0.05, z)
    return z


@pytest.mark.parametrize("spec", ALL_SPECS)
@settings(max_examples=6, deadline=None)
@given(values=st.lists(st.floats(-4.0, 4.0), min_size=2 * WIDTH, max_size=2 * WIDTH))
def test_gradcheck_and_gradgradcheck(spec, values):
    module = perturbed(spec)
    z = _away_from_kinks(values, spec).requires_grad_(True)
    names = [name for name, _ in module.named_parameters()]

    def fn(z, *theta):
        # The parameters are bound as functional inputs, so gradcheck differentiates them too.
        return torch.func.functional_call(module, dict(zip(names, theta)), (z,))

    inputs = (z,) + tuple(p.detach().clone().requires_grad_(True) for p in module.parameters())
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7)
    assert torch.autograd.gradgradcheck(fn, inputs, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("spec", ALL_SPECS)
@settings(max_examples=5, deadline=None)
@given(values=st.lists(st.floats(-40.0, 40.0), min_size=4 * WIDTH, max_size=4 * WIDTH))
def test_scripted_equals_eager(spec, values):
    module = perturbed(spec)
    scripted = torch.jit.script(module)
    z = torch.tensor(values, dtype=torch.float64).reshape(-1, WIDTH)
    assert (scripted(z) - module(z)).abs().max().item() <= FLOAT64_EXACT


def test_irelu_is_integrated_relu():
    z = torch.linspace(-3, 3, 61, dtype=torch.float64, requires_grad=True)
    y = make_activation("irelu")(z)
    assert torch.equal(y, torch.where(z > 0, z * z / 2, torch.zeros_like(z)))
    (d1,) = torch.autograd.grad(y.sum(), z)
    assert torch.equal(d1, torch.relu(z))


def test_laaf_starts_as_base_and_slope_recovery():
    z = torch.linspace(-3, 3, 31, dtype=torch.float64).reshape(-1, 1)
    for spec in ("laaf:base=tanh,scope=layer,n=10", "laaf:base=tanh,scope=neuron,n=4"):
        layer = make_activation(spec, 1)
        assert torch.allclose(layer(z), torch.tanh(z), atol=1e-15)
    model = torch.nn.Sequential(make_activation("laaf:n=10", 1), make_activation("laaf:n=10", 1))
    # S = 1 / mean_k exp(mean a_k) with a = 1/n = 0.1 at the start.
    assert slope_recovery(model).item() == pytest.approx(1.0 / np.exp(0.1), rel=1e-14)
    with torch.no_grad():
        model[1].slope.fill_(0.3)
    expected = 1.0 / ((np.exp(0.1) + np.exp(0.3)) / 2)
    assert slope_recovery(model).item() == pytest.approx(expected, rel=1e-14)
    assert slope_recovery(torch.nn.Sequential(make_activation("tanh"))) is None


def test_known_basis_values():
    """Basis sums (Horner up to degree 10, Clenshaw above) against closed forms: T_3, U_2, P_2, H_2,
    Bessel y_2, Jacobi(0,0) = P_2, T_12 = cos(12 acos a), and Fourier cos(2 pi a), sin(3 pi a)."""
    a = torch.linspace(-1, 1, 41, dtype=torch.float64).reshape(-1, 1)
    z = torch.atanh(a.clamp(-1 + 1e-15, 1 - 1e-15))
    cases = {
        "chebyshev1": (3, 4 * a**3 - 3 * a),
        "chebyshev2": (2, 4 * a**2 - 1),
        "legendre": (2, (3 * a**2 - 1) / 2),
        "hermite": (2, 4 * a**2 - 2),
        "bessel": (2, 3 * a**2 + 3 * a + 1),
    }
    for basis, (k, expected) in cases.items():
        module = make_activation(f"taafs:basis={basis},degree={k}", 1)
        with torch.no_grad():
            module.coeffs.zero_()
            module.coeffs[k] = 1.0
        a_used = torch.tanh(z)
        expected_at = expected if basis != "bessel" else 3 * a_used**2 + 3 * a_used + 1
        assert torch.allclose(module(z), expected_at, atol=1e-12), basis
    jac = make_activation("taafs:basis=jacobi,degree=2,alpha=0,beta=0", 1)
    with torch.no_grad():
        jac.coeffs.zero_()
        jac.coeffs[2] = 1.0
    assert torch.allclose(jac(z), (3 * torch.tanh(z) ** 2 - 1) / 2, atol=1e-12)
    a_used = torch.tanh(z)
    t12 = make_activation("taafs:basis=chebyshev1,degree=12", 1)
    with torch.no_grad():
        t12.coeffs.zero_()
        t12.coeffs[12] = 1.0
    assert torch.allclose(t12(z), torch.cos(12 * torch.acos(a_used)), atol=1e-12)
    for index, expected in ((4, torch.cos(2 * math.pi * a_used)), (7, torch.sin(3 * math.pi * a_used))):
        fourier = make_activation("taafs:basis=fourier,degree=3", 1)  # theta_{2k} cos, theta_{2k+1} sin
        with torch.no_grad():
            fourier.coeffs.zero_()
            fourier.coeffs[index] = 1.0
        assert torch.allclose(fourier(z), expected, atol=1e-12), index


def test_bspline_partition_of_unity():
    module = make_activation("taafs:basis=bspline,grid=7", 1)
    with torch.no_grad():
        module.coeffs.fill_(1.0)
    z = torch.linspace(-40, 40, 801, dtype=torch.float64).reshape(-1, 1)
    assert torch.allclose(module(z), torch.ones_like(z), atol=1e-14)


def test_sharing_scopes_share_parameters():
    builder = ActivationBuilder()
    spec = "taafs:basis=bspline,grid=5,scope={}"
    g1, g2 = builder.build(spec.format("global"), 4, "a"), builder.build(spec.format("global"), 8, "b")
    assert g1.coeffs is g2.coeffs
    n1, n2 = builder.build(spec.format("network"), 4, "a"), builder.build(spec.format("network"), 4, "b")
    assert n1.coeffs is not n2.coeffs
    assert builder.build(spec.format("network"), 4, "a").coeffs is n1.coeffs
    l1, l2 = builder.build(spec.format("layer"), 4, "a"), builder.build(spec.format("layer"), 4, "a")
    assert l1.coeffs is not l2.coeffs
    assert builder.build(spec.format("neuron"), 6, "a").coeffs.shape == (6, 8)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("swish", "unknown activation 'swish' in spec 'swish'; valid: " + ", ".join(ACTIVATION_NAMES)),
        (
            "taafs:basis=wavelet",
            "activation spec 'taafs:basis=wavelet': unknown TAAFS basis 'wavelet'; valid: " + ", ".join(BASIS_NAMES),
        ),
        (
            "taafs:basis=chebyshev1,degree=0",
            "activation spec 'taafs:basis=chebyshev1,degree=0': degree must be a positive integer, got '0'",
        ),
        (
            "taafs:basis=bspline,grid=-2",
            "activation spec 'taafs:basis=bspline,grid=-2': grid must be a positive integer, got '-2'",
        ),
        ("taafs:basis=legendre,degree=2.5", "degree must be a positive integer, got '2.5'"),
        ("taafs:basis=bspline,degree=3", "basis 'bspline' takes grid=, not degree="),
        ("taafs:scope=row", "unknown TAAFS scope 'row'; valid: global, network, layer, neuron"),
        ("laaf:scope=global", "unknown LAAF scope 'global'; valid: layer, neuron"),
        ("tanh:n=3", "unknown option(s) n for 'tanh'"),
        ("", "activation spec must be a non-empty string, got ''"),
    ],
)
def test_bad_specs_raise_clear_value_errors(spec, message):
    with pytest.raises(ValueError) as info:
        make_activation(spec)
    assert message in str(info.value)


def test_make_basis_rejects_non_positive_size():
    from mdval.nn.bases import make_basis

    with pytest.raises(ValueError, match=r"TAAFS basis 'hermite' needs a positive integer degree, got 0"):
        make_basis("hermite", 0)
    with pytest.raises(ValueError, match=r"TAAFS basis 'bspline' needs a positive integer grid, got -1"):
        make_basis("bspline", -1)
    with pytest.raises(ValueError, match=r"unknown TAAFS basis 'spline'; valid bases: bspline, fourier"):
        make_basis("spline", 3)


@pytest.mark.parametrize(
    "spec",
    TAAFS_SPECS
    + [
        "taafs:basis=fourier,degree=8,scope=neuron",
        "taafs:basis=fourier,degree=14,scope=layer",
        "taafs:basis=chebyshev1,degree=14,scope=layer",
    ],
)
def test_serving_mode_has_exact_values_and_first_derivatives(spec):
    """Exported models evaluate TAAFS by value-and-slope; it must equal the full graph."""
    from mdval.nn.activations import set_first_derivative_only

    module = perturbed(spec, seed=4)
    z = torch.linspace(-6.0, 6.0, 60 * WIDTH, dtype=torch.float64).reshape(-1, WIDTH).requires_grad_(True)
    y_full = module(z)
    (g_full,) = torch.autograd.grad(y_full.sum(), z)
    assert set_first_derivative_only(module, True) == 1
    for candidate in (module, torch.jit.script(module)):
        y = candidate(z)
        (g,) = torch.autograd.grad(y.sum(), z)
        scale = max(1.0, y_full.abs().max().item())
        assert (y - y_full).abs().max().item() <= FLOAT64_EXACT * scale
        assert (g - g_full).abs().max().item() <= FLOAT64_EXACT * max(1.0, g_full.abs().max().item())
