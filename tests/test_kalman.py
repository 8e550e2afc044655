"""EKF and RLEKF (mdval.train.kalman, the filters in mdval.train.kalman_filters): least squares, block
filter vs global, memory, resume."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import torch

from mdval.train.kalman import EKF, RLEKF, flat_parameters, make_kalman_strategy
from mdval.train.kalman_filters import BlockKalmanFilter, GlobalKalmanFilter, block_layout
from mdval.train.strategy import LossWeights

from conftest import emt_cu_frames, small_model

FLOAT64_ALGEBRA = 1e-9  # same recursion, different (but exact) linear algebra
FLOAT64_ABS = 1e-11  # absolute floor for entries that are ~0
RLS_ILL_CONDITIONED = 1e-8  # P0 = 1e6 I: the first updates cancel ~6 digits
RIDGE_VS_LSTSQ = 1e-5  # the prior I/p0 moves the solution by ~1/(p0 η σ²)
TAAFS = "taafs:basis=chebyshev1,scope=layer"


@pytest.fixture(scope="module")
def batches():
    from mdval.data.batch import make_batch

    frames = emt_cu_frames(6)
    return [make_batch(frames[:3], ["Cu"], 4.0), make_batch(frames[3:], ["Cu"], 4.0)]


def _fresh(batch):
    return batch.to()  # a copy with a fresh leaf edge_vectors tensor


def test_ekf_on_linear_least_squares_is_recursive_least_squares():
    """Q = 0, λ = 1: after all measurements w is the exact regularised LS solution, which for a
    flat prior (P0 = I/ε, ε → 0) is the ordinary least-squares solution."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 6))
    y = X @ rng.normal(size=6) + 0.1 * rng.normal(size=120)
    p0, eta = 1e6, 2.0
    kf = GlobalKalmanFilter(6, p0=p0, eta=eta)
    w = torch.zeros(6, dtype=torch.float64)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for k in range(0, 120, 4):  # vector measurements of 4 rows
        H = Xt[k : k + 4].T
        w = w + kf.update(H, yt[k : k + 4] - H.T @ w)
    ridge = np.linalg.solve(eta * X.T @ X + np.eye(6) / p0, eta * X.T @ y)
    lstsq = np.linalg.lstsq(X, y, rcond=None)[0]
    np.testing.assert_allclose(w.numpy(), ridge, rtol=RLS_ILL_CONDITIONED, atol=FLOAT64_ABS)
    np.testing.assert_allclose(w.numpy(), lstsq, rtol=RIDGE_VS_LSTSQ, atol=RIDGE_VS_LSTSQ)
    # P is the posterior covariance (η XᵀX + I/p0)⁻¹
    np.testing.assert_allclose(
        kf.P.numpy(), np.linalg.inv(eta * X.T @ X + np.eye(6) / p0), rtol=RLS_ILL_CONDITIONED * 100, atol=FLOAT64_ABS
    )


def test_block_layout_gathers_small_and_splits_large():
    assert block_layout([3, 10, 2, 2], 4) == [(0, 3), (3, 4), (7, 4), (11, 2), (13, 4)]
    assert block_layout([5, 5], 100) == [(0, 10)]


def test_batched_block_update_matches_a_loop_over_dense_blocks():
    rng = np.random.default_rng(1)
    blocks = block_layout([7, 3, 12, 2, 9], 5)
    n = 33
    kf = BlockKalmanFilter(n, blocks, p0=0.5, lambda0=0.97, nu=0.99)
    P = [0.5 * np.eye(s) for _, s in blocks]
    lam = 0.97
    for _ in range(4):
        h, e = rng.normal(size=n), float(rng.normal())
        delta = kf.update(torch.from_numpy(h), e).numpy()
        S = lam + sum(h[a : a + s] @ P[b] @ h[a : a + s] for b, (a, s) in enumerate(blocks))
        for b, (a, s) in enumerate(blocks):
            K = P[b] @ h[a : a + s]
            np.testing.assert_allclose(delta[a : a + s], K * e / S, rtol=FLOAT64_ALGEBRA)
            P[b] = (P[b] - np.outer(K, K) / S) / lam
        lam = 0.99 * lam + 0.01
    stored = {}
    for _size, idx, Pg in zip(kf.group_sizes, kf.index, kf.P):
        for k in range(idx.shape[0]):
            stored[int(idx[k, 0])] = Pg[k].numpy()
    for b, (a, _s) in enumerate(blocks):
        np.testing.assert_allclose(stored[a], P[b], rtol=FLOAT64_ALGEBRA, atol=FLOAT64_ABS)
    assert kf.lam == pytest.approx(lam)


def test_rlekf_with_one_block_is_the_global_filter(batches):
    opts = {"lambda0": 0.98, "nu": 0.9987, "seed": 3, "force_group_size": 2, "n_force_updates": 2, "verbose": False}
    m1 = small_model("behler_parrinello", activation=TAAFS)
    m2 = small_model("behler_parrinello", activation=TAAFS)
    r = RLEKF(m1, {**opts, "block_size": 10**6})
    g = EKF(m2, {**opts, "measurement": "scalar"})
    assert len(r.filter.blocks) == 1
    for step, batch in enumerate(batches):
        out_r = r.step(m1, _fresh(batch), LossWeights(), step)
        out_g = g.step(m2, _fresh(batch), LossWeights(), step)
        assert out_r["loss"] == pytest.approx(out_g["loss"], rel=FLOAT64_ALGEBRA)
    np.testing.assert_allclose(
        flat_parameters(r.params).numpy(), flat_parameters(g.params).numpy(), rtol=FLOAT64_ALGEBRA, atol=FLOAT64_ABS
    )
    np.testing.assert_allclose(r.filter.P[0][0].numpy(), g.filter.P.numpy(), rtol=FLOAT64_ALGEBRA, atol=FLOAT64_ABS)
    assert r.filter.lam == g.filter.lam
    # and the filter moved the weights towards the labels
    assert out_r["energy_mae"] < 1.0


@pytest.mark.parametrize("p_dtype", ["float64", "float32"])
def test_printed_memory_is_the_bytes_held_by_P(p_dtype, capsys):
    model = small_model("deeppot_se", activation=TAAFS)
    s = RLEKF(model, {"block_size": 200, "p_dtype": p_dtype})
    printed = int(re.search(r"= (\d+) B", capsys.readouterr().out).group(1))
    held = sum(P.element_size() * P.numel() for P in s.filter.P)
    assert printed == s.memory_bytes == held
    sizes = s.filter.block_sizes
    assert sum(sizes) == s.n_params and max(sizes) <= 200
    assert held == sum(b * b for b in sizes) * (4 if p_dtype == "float32" else 8)
    e = EKF(small_model("behler_parrinello"), {"verbose": False})
    assert e.memory_bytes == e.filter.P.element_size() * e.filter.P.numel()


def test_taafs_coefficients_are_inside_P_and_trained(batches):
    model = small_model("behler_parrinello", activation="taafs:basis=chebyshev1,scope=global")
    s = RLEKF(model, {"block_size": 64, "verbose": False})
    coeffs = [p for n, p in model.named_parameters() if "coeffs" in n]
    assert len(coeffs) == 1  # shared: once in model.parameters()
    assert s.n_params == sum(p.numel() for p in model.parameters())
    before = coeffs[0].detach().clone()
    s.step(model, _fresh(batches[0]), LossWeights(), 0)
    assert not torch.equal(before, coeffs[0].detach())


@pytest.mark.parametrize(
    "name,activation,p_dtype", [("rlekf", TAAFS, "float64"), ("ekf", "laaf", "float64"), ("rlekf", "irelu", "float32")]
)
def test_resume_gives_the_identical_next_update(name, activation, p_dtype, batches):
    opts = {"block_size": 100, "verbose": False, "seed": 7, "n_force_updates": 2, "p_dtype": p_dtype}
    if name == "ekf":
        opts = {"verbose": False, "seed": 7, "n_force_updates": 1, "force_components": 4}
    model = small_model("behler_parrinello", activation=activation)
    s = make_kalman_strategy(name, model, opts)
    s.step(model, _fresh(batches[0]), LossWeights(), 0)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": s.state_dict()}, buf)
    out = s.step(model, _fresh(batches[1]), LossWeights(), 1)
    expected = flat_parameters(s.params)

    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    model2 = small_model("behler_parrinello", activation=activation, seed=99)
    model2.load_state_dict(ckpt["model"])
    s2 = make_kalman_strategy(name, model2, opts)
    s2.load_state_dict(ckpt["opt"])
    out2 = s2.step(model2, _fresh(batches[1]), LossWeights(), 1)
    assert torch.equal(flat_parameters(s2.params), expected)
    assert out2 == out
    assert s2.state_dict()["step"] == 2
    assert all(
        P.dtype == getattr(torch, p_dtype) for P in (s2.filter.P if isinstance(s2.filter.P, list) else [s2.filter.P])
    )


def test_laaf_slope_recovery_is_dropped_and_reported(batches, capsys):
    model = small_model("behler_parrinello", activation="laaf")
    s = RLEKF(model, {"verbose": False, "n_force_updates": 1})
    out = s.step(model, _fresh(batches[0]), LossWeights(slope_recovery=0.1), 0)
    assert out["slope_recovery_dropped"] == 1.0
    assert "dropped" in capsys.readouterr().out


def test_bad_options_are_refused():
    model = small_model("behler_parrinello")
    with pytest.raises(ValueError, match="unknown rlekf option"):
        RLEKF(model, {"blocksize": 10})
    with pytest.raises(ValueError, match="rlekf"):
        EKF(model, {"max_params": 10, "verbose": False})
    with pytest.raises(ValueError, match="valid: ekf, rlekf"):
        make_kalman_strategy("adamw", model, {})
