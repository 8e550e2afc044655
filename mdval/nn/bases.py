"""Basis families for TAAFS activations: y = sum_k theta_k B_k(a), a = tanh(z) in [-1, 1].

Every basis is a TorchScript-safe module with

- ``n_coeffs``: the number of coefficients theta_k it takes;
- ``forward(a, theta)``: ``a`` of shape [..., width], ``theta`` of shape [n_coeffs] (shared) or
  [width, n_coeffs] (one row per neuron); returns y with the shape of ``a``;
- ``identity_coefficients()``: theta for which y == a exactly, so that a TAAFS layer starts as
  tanh (DESIGN.md section 4).

Three-term-recurrence families (Legendre, Hermite, Chebyshev of both kinds, Bessel, Jacobi) are
evaluated by Horner on their monomial coefficients up to degree 10 (one fused multiply-add per
degree: the smallest graph for training to differentiate twice) and above it by the Clenshaw
recurrence, which does not lose accuracy to the growth of the monomial coefficients. Writing the
recurrence as

    p_0 = 1,  p_{k+1}(a) = (A_k a + B_k) p_k(a) - C_k p_{k-1}(a),   p_{-1} = 0,

the sum S = sum_k theta_k p_k is b_0 from the backward recurrence
b_k = theta_k + (A_k a + B_k) b_{k+1} - C_{k+1} b_{k+2}, b_{n+1} = b_{n+2} = 0.
No trigonometric forms such as cos(n acos a) are used: their derivatives are 0/0 at a = +-1,
which tanh reaches in floating point.

The B-spline is the uniform cubic spline on [-1, 1] with G intervals (G + 3 coefficients, knots
extended three steps beyond the interval), evaluated in closed form on the local interval
(four coefficients gathered; the interval index is clamped so that a = +-1 works). It is C2, as
forces (d/dz) and force training (d2/dz dtheta) need.

Fourier and Gaussian-RBF bases cannot represent a exactly with finitely many terms, so they
carry an explicit linear term theta_lin * a as well; with theta_lin = 1 and the rest 0 the
layer starts as exact tanh (a least-squares start would be off by ~1e-3).
"""

from __future__ import annotations

import math
from typing import List, Tuple

import torch
from torch import nn

BASIS_NAMES: tuple[str, ...] = (
    "bspline",
    "fourier",
    "rbf",
    "legendre",
    "hermite",
    "chebyshev1",
    "chebyshev2",
    "bessel",
    "jacobi",
)


class ClenshawBasis(nn.Module):
    """Polynomial family with a three-term recurrence, summed by Clenshaw's algorithm."""

    def __init__(self, A: List[float], B: List[float], C: List[float], identity: List[float]):
        super().__init__()
        self.n_coeffs: int = len(A)
        self.A: List[float] = [float(v) for v in A]
        self.B: List[float] = [float(v) for v in B]
        # C[k] multiplies p_{k-1} in the recurrence for p_{k+1}; one extra zero closes Clenshaw.
        self.C: List[float] = [float(v) for v in C] + [0.0]
        self._identity: List[float] = [float(v) for v in identity]
        # monomial[k, m]: coefficient of a^m in p_k(a), from the same recurrence. Used only by the
        # first-derivative fast path (value_and_slope), which sums sum_m c_m a^m by Horner.
        n = self.n_coeffs
        mono = torch.zeros(n, n, dtype=torch.float64)
        mono[0, 0] = 1.0
        for k in range(n - 1):
            prev = mono[k - 1] if k > 0 else torch.zeros(n, dtype=torch.float64)
            shifted = torch.cat([torch.zeros(1, dtype=torch.float64), mono[k, :-1]])
            mono[k + 1] = self.A[k] * shifted + self.B[k] * mono[k] - self.C[k] * prev
        self.register_buffer("monomial", mono)

    def identity_coefficients(self) -> List[float]:
        return self._identity

    def forward(self, a: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        if self.n_coeffs <= 11:
            # Horner on the monomial coefficients c = theta @ monomial: one fused multiply-add per
            # degree, so a training step (which differentiates this twice) builds a far smaller
            # graph than Clenshaw's five ops per degree; for a in [-1, 1] and degree <= 10 the
            # monomial form loses at most ~1e-13 (Chebyshev: |c_m| <= 2^9 against |y| ~ 1).
            c = torch.matmul(theta, self.monomial.to(theta.dtype))
            return _horner(c, a, self.n_coeffs - 1)
        b1 = torch.zeros_like(a)
        b2 = torch.zeros_like(a)
        for k in range(self.n_coeffs - 1, -1, -1):
            b0 = theta[..., k] + (self.A[k] * a + self.B[k]) * b1 - self.C[k + 1] * b2
            b2 = b1
            b1 = b0
        return b1

    def value_and_slope(self, a: torch.Tensor, theta: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """y and dy/da by Horner on the monomial coefficients c = theta @ monomial (no graph)."""
        c = torch.matmul(theta, self.monomial.to(theta.dtype))
        n = self.n_coeffs - 1
        top = c[..., n]
        y = torch.addcmul(c[..., n - 1], top, a)
        dy = top.expand_as(a)
        for m in range(n - 2, -1, -1):
            dy = torch.addcmul(y, dy, a)
            y = torch.addcmul(c[..., m], y, a)
        return y, dy


def _identity_from_p1(n_coeffs: int, c0: float, c1: float) -> List[float]:
    """Coefficients of a = c0 p_0 + c1 p_1 for a family of degree n_coeffs - 1."""
    theta = [0.0] * n_coeffs
    theta[0] = c0
    theta[1] = c1
    return theta


def legendre(degree: int) -> ClenshawBasis:
    """Legendre P_k: (k+1) P_{k+1} = (2k+1) a P_k - k P_{k-1}."""
    n = degree + 1
    A = [(2 * k + 1) / (k + 1) for k in range(n)]
    C = [k / (k + 1) for k in range(n)]
    return ClenshawBasis(A, [0.0] * n, C, _identity_from_p1(n, 0.0, 1.0))


def chebyshev1(degree: int) -> ClenshawBasis:
    """Chebyshev 1st kind T_k: T_1 = a, T_{k+1} = 2a T_k - T_{k-1}."""
    n = degree + 1
    A = [1.0] + [2.0] * (n - 1)
    return ClenshawBasis(A, [0.0] * n, [1.0] * n, _identity_from_p1(n, 0.0, 1.0))


def chebyshev2(degree: int) -> ClenshawBasis:
    """Chebyshev 2nd kind U_k: U_1 = 2a, U_{k+1} = 2a U_k - U_{k-1}."""
    n = degree + 1
    return ClenshawBasis([2.0] * n, [0.0] * n, [1.0] * n, _identity_from_p1(n, 0.0, 0.5))


def hermite(degree: int) -> ClenshawBasis:
    """Physicists' Hermite H_k: H_1 = 2a, H_{k+1} = 2a H_k - 2k H_{k-1}."""
    n = degree + 1
    C = [2.0 * k for k in range(n)]
    return ClenshawBasis([2.0] * n, [0.0] * n, C, _identity_from_p1(n, 0.0, 0.5))


def bessel(degree: int) -> ClenshawBasis:
    """Bessel polynomials y_k (Krall-Frink): y_1 = 1 + a, y_{k+1} = (2k+1) a y_k + y_{k-1}."""
    n = degree + 1
    A = [1.0] + [2.0 * k + 1.0 for k in range(1, n)]
    B = [1.0] + [0.0] * (n - 1)
    C = [-1.0] * n
    return ClenshawBasis(A, B, C, _identity_from_p1(n, -1.0, 1.0))


def jacobi(degree: int, alpha: float, beta: float) -> ClenshawBasis:
    """Jacobi P_k^(alpha, beta), alpha, beta > -1, by the standard three-term recurrence."""
    if alpha <= -1.0 or beta <= -1.0:
        raise ValueError(f"jacobi needs alpha > -1 and beta > -1, got alpha={alpha}, beta={beta}")
    n = degree + 1
    ab = alpha + beta
    A = [(ab + 2.0) / 2.0]
    B = [(alpha - beta) / 2.0]
    C = [0.0]
    for k in range(1, n):
        c = 2.0 * k + ab
        denom = 2.0 * (k + 1) * (k + ab + 1) * c
        A.append((c + 1) * (c + 2) * c / denom)
        B.append((c + 1) * (alpha * alpha - beta * beta) / denom)
        C.append(2.0 * (k + alpha) * (k + beta) * (c + 2) / denom)
    # a = (2 P_1 - (alpha - beta) P_0) / (alpha + beta + 2)
    identity = _identity_from_p1(n, -(alpha - beta) / (ab + 2.0), 2.0 / (ab + 2.0))
    return ClenshawBasis(A, B, C, identity)


class CubicBSpline(nn.Module):
    """Uniform cubic B-spline on [-1, 1] with ``grid`` intervals: grid + 3 coefficients."""

    def __init__(self, grid: int):
        super().__init__()
        self.grid: int = int(grid)
        self.n_coeffs: int = self.grid + 3
        self.inv_h: float = self.grid / 2.0

    def identity_coefficients(self) -> List[float]:
        # Greville abscissae of the uniform cubic spline: xi_i = -1 + (i - 1) h.
        h = 2.0 / self.grid
        return [-1.0 + (i - 1) * h for i in range(self.n_coeffs)]

    def forward(self, a: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        x = (a + 1.0) * self.inv_h
        j = torch.clamp(torch.floor(x.detach()), 0.0, float(self.grid - 1))
        u = x - j
        u2 = u * u
        u3 = u2 * u
        one_minus = 1.0 - u
        w0 = one_minus * one_minus * one_minus / 6.0
        w1 = (3.0 * u3 - 6.0 * u2 + 4.0) / 6.0
        w2 = (-3.0 * u3 + 3.0 * u2 + 3.0 * u + 1.0) / 6.0
        w3 = u3 / 6.0
        idx = j.to(torch.long)
        if theta.dim() == 2:
            # One row of coefficients per neuron (last dimension of a).
            row = torch.arange(theta.shape[0], device=a.device) * self.n_coeffs
            idx = idx + row
        flat = theta.reshape(-1)
        return w0 * flat[idx] + w1 * flat[idx + 1] + w2 * flat[idx + 2] + w3 * flat[idx + 3]

    def value_and_slope(self, a: torch.Tensor, theta: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """y and dy/da from the local cubic and its derivative weights (no graph)."""
        x = (a + 1.0) * self.inv_h
        j = torch.clamp(torch.floor(x), 0.0, float(self.grid - 1))
        u = x - j
        idx = j.to(torch.long)
        if theta.dim() == 2:
            idx = idx + torch.arange(theta.shape[0], device=a.device) * self.n_coeffs
        flat = theta.reshape(-1)
        c0, c1, c2, c3 = flat[idx], flat[idx + 1], flat[idx + 2], flat[idx + 3]
        # The segment in powers of u: y = e0 + d1 u + d2 u^2 + d3 u^3, with
        # e0 = (c0 + 4c1 + c2)/6, d1 = (c2 - c0)/2, d2 = (c0 - 2c1 + c2)/2, d3 = (c3 - c0 + 3(c1 - c2))/6.
        e0 = (c0 + 4.0 * c1 + c2) / 6.0
        d1 = 0.5 * (c2 - c0)
        d2 = 0.5 * (c0 - 2.0 * c1 + c2)
        d3 = (c3 - c0 + 3.0 * (c1 - c2)) / 6.0
        y = e0 + ((d3 * u + d2) * u + d1) * u
        dy = ((3.0 * d3 * u + 2.0 * d2) * u + d1) * self.inv_h
        return y, dy


def _horner(coef: torch.Tensor, x: torch.Tensor, degree: int) -> torch.Tensor:
    """sum_{m <= degree} coef[..., m] x^m by Horner (coef [..., >= degree + 1], broadcast on x)."""
    if degree == 0:
        return coef[..., 0].expand_as(x)
    y = torch.addcmul(coef[..., degree - 1], coef[..., degree], x)
    for m in range(degree - 2, -1, -1):
        y = torch.addcmul(coef[..., m], y, x)
    return y


class FourierBasis(nn.Module):
    """theta_0 + theta_1 a + sum_{k=1..n} [theta_{2k} cos(k pi a) + theta_{2k+1} sin(k pi a)]."""

    def __init__(self, degree: int):
        super().__init__()
        self.degree: int = int(degree)
        self.n_coeffs: int = 2 * self.degree + 2
        self.register_buffer("freqs", math.pi * torch.arange(1, self.degree + 1, dtype=torch.float64))
        # For the serving path: cos(k x) = T_k(cos x) and sin(k x) = sin x U_{k-1}(cos x), so the
        # series is P(c) + s Q(c) in c = cos(pi a), s = sin(pi a), with polynomial coefficients
        # cos_mono[k-1, m] (of c^m in T_k) and sin_mono[k-1, m] (in U_{k-1}); two transcendental
        # calls per element instead of 2n.
        n = self.degree
        t_mono = torch.zeros(n + 1, n + 1, dtype=torch.float64)
        u_mono = torch.zeros(n + 1, n + 1, dtype=torch.float64)
        t_mono[0, 0] = 1.0
        u_mono[0, 0] = 1.0
        if n >= 1:
            t_mono[1, 1] = 1.0
            u_mono[1, 1] = 2.0
        for k in range(1, n):
            for mono in (t_mono, u_mono):
                mono[k + 1, 1:] = 2.0 * mono[k, :-1]
                mono[k + 1] -= mono[k - 1]
        self.register_buffer("cos_mono", t_mono[1:].contiguous())
        self.register_buffer("sin_mono", u_mono[:n].contiguous())
        # d/dc of a polynomial as a matrix on its coefficients: (p @ ddc)[m] = (m + 1) p[m + 1]
        ddc = torch.zeros(n + 1, n + 1, dtype=torch.float64)
        for m in range(n):
            ddc[m + 1, m] = float(m + 1)
        self.register_buffer("ddc", ddc)
        # multiplication by c and by (1 - c^2), degree kept at n (Q has degree n - 1, so c Q and
        # (1 - c^2) Q' have degree <= n)
        times_c = torch.zeros(n + 1, n + 1, dtype=torch.float64)
        one_minus_c2 = torch.zeros(n + 1, n + 1, dtype=torch.float64)
        for m in range(n + 1):
            if m + 1 <= n:
                times_c[m, m + 1] = 1.0
            one_minus_c2[m, m] = 1.0
            if m + 2 <= n:
                one_minus_c2[m, m + 2] = -1.0
        self.register_buffer("times_c", times_c)
        self.register_buffer("one_minus_c2", one_minus_c2)

    def identity_coefficients(self) -> List[float]:
        return _identity_from_p1(self.n_coeffs, 0.0, 1.0)

    def forward(self, a: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        if self.degree <= 10:
            # theta_0 + theta_1 a + P(c) + s Q(c) (see __init__): two transcendental calls and
            # Horner, a much smaller graph for training to differentiate than 2n harmonics
            x = math.pi * a
            c = torch.cos(x)
            p = torch.matmul(theta[..., 2::2], self.cos_mono.to(theta.dtype))
            q = torch.matmul(theta[..., 3::2], self.sin_mono.to(theta.dtype))
            y = torch.addcmul(_horner(p, c, self.degree), torch.sin(x), _horner(q, c, self.degree - 1))
            return y + theta[..., 0] + theta[..., 1] * a
        phase = a.unsqueeze(-1) * self.freqs.to(a.dtype)
        cos_part = (torch.cos(phase) * theta[..., 2::2]).sum(-1)
        sin_part = (torch.sin(phase) * theta[..., 3::2]).sum(-1)
        return theta[..., 0] + theta[..., 1] * a + cos_part + sin_part

    def value_and_slope(self, a: torch.Tensor, theta: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """y and dy/da as polynomials in c = cos(pi a) with a factor s = sin(pi a), by Horner.

        y = theta_0 + theta_1 a + P(c) + s Q(c) (see __init__), and since ds/da = pi c,
        dc/da = -pi s and s^2 = 1 - c^2,
        dy/da = theta_1 + pi [c Q(c) - (1 - c^2) Q'(c)] - pi s P'(c) = R(c) - s S(c),
        so the coefficients of P, Q, R and S are worked out from theta once per call (tiny
        matrix products) and each element costs cos, sin and four Horner sums.
        Monomial coefficients of T_k grow as 2^k, so above degree 10 (where Horner would lose
        more than ~1e-12) the harmonics are evaluated one by one instead."""
        if self.degree > 10:
            return self._harmonics_value_and_slope(a, theta)
        dtype = theta.dtype
        p = torch.matmul(theta[..., 2::2], self.cos_mono.to(dtype))  # [..., n + 1]
        q = torch.matmul(theta[..., 3::2], self.sin_mono.to(dtype))
        p[..., 0] += theta[..., 0]
        dq = torch.matmul(q, self.ddc.to(dtype))
        r = math.pi * (torch.matmul(q, self.times_c.to(dtype)) - torch.matmul(dq, self.one_minus_c2.to(dtype)))
        r[..., 0] += theta[..., 1]
        sp = math.pi * torch.matmul(p, self.ddc.to(dtype))
        x = math.pi * a
        c = torch.cos(x)
        s = torch.sin(x)
        n = self.degree
        y = torch.addcmul(_horner(p, c, n), s, _horner(q, c, n - 1))
        y = torch.addcmul(y, a, theta[..., 1])
        dy = torch.addcmul(_horner(r, c, n), s, _horner(sp, c, n - 1), value=-1.0)
        return y, dy

    def _harmonics_value_and_slope(self, a: torch.Tensor, theta: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        freqs = self.freqs.to(a.dtype)
        phase = a.unsqueeze(-1) * freqs
        cos, sin = torch.cos(phase), torch.sin(phase)
        tc, ts = theta[..., 2::2], theta[..., 3::2]
        y = theta[..., 0] + theta[..., 1] * a + (cos * tc + sin * ts).sum(-1)
        dy = theta[..., 1] + ((cos * ts - sin * tc) * freqs).sum(-1)
        return y, dy


class GaussianRBF(nn.Module):
    """theta_lin a + sum_k theta_k exp(-((a - c_k) / h)^2), ``grid`` centres on [-1, 1]."""

    def __init__(self, grid: int):
        super().__init__()
        if grid < 2:
            raise ValueError(f"rbf needs grid >= 2 centres, got grid={grid}")
        self.n_coeffs: int = int(grid) + 1
        self.inv_width: float = (grid - 1) / 2.0
        self.register_buffer("centres", torch.linspace(-1.0, 1.0, grid, dtype=torch.float64))

    def identity_coefficients(self) -> List[float]:
        theta = [0.0] * self.n_coeffs
        theta[0] = 1.0
        return theta

    def forward(self, a: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        d = (a.unsqueeze(-1) - self.centres.to(a.dtype)) * self.inv_width
        return theta[..., 0] * a + (torch.exp(-d * d) * theta[..., 1:]).sum(-1)

    def value_and_slope(self, a: torch.Tensor, theta: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        d = (a.unsqueeze(-1) - self.centres.to(a.dtype)) * self.inv_width
        g = torch.exp(-d * d) * theta[..., 1:]
        y = theta[..., 0] * a + g.sum(-1)
        dy = theta[..., 0] - 2.0 * self.inv_width * (g * d).sum(-1)
        return y, dy


def make_basis(name: str, size: int, alpha: float = 1.0, beta: float = 1.0) -> nn.Module:
    """Build a basis by name; ``size`` is the degree (polynomials, Fourier) or grid (B-spline, RBF)."""
    if name not in BASIS_NAMES:
        raise ValueError(f"unknown TAAFS basis {name!r}; valid bases: {', '.join(BASIS_NAMES)}")
    if int(size) != size or size <= 0:
        kind = "grid" if name in ("bspline", "rbf") else "degree"
        raise ValueError(f"TAAFS basis {name!r} needs a positive integer {kind}, got {size!r}")
    size = int(size)
    if name == "bspline":
        return CubicBSpline(size)
    if name == "rbf":
        return GaussianRBF(size)
    if name == "fourier":
        return FourierBasis(size)
    if name == "jacobi":
        return jacobi(size, alpha, beta)
    return {
        "legendre": legendre,
        "hermite": hermite,
        "chebyshev1": chebyshev1,
        "chebyshev2": chebyshev2,
        "bessel": bessel,
    }[name](size)
