"""Empirical Fisher matrix (mdval.train.fisher) against brute-force outer products; the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mdval.train.fisher import (
    fisher_matrix,
    per_sample_gradients,
    spectrum_from_gradients,
    spectrum_summary,
)

from conftest import emt_cu_frames, small_model

FLOAT64_ALGEBRA = 1e-10  # same sums in another order
FLOAT64_ABS = 1e-14  # absolute floor for Fisher entries that are ~0
EIGEN_REL = 1e-12  # eigvalsh of F vs squared singular values of G, relative to λ_max


def _tiny_model():
    from mdval.nn import build_model

    return build_model(
        {
            "architecture": "behler_parrinello",
            "cutoff": 4.0,
            "fitting": [4],
            "type_names": ["Cu"],
            "activation": "taafs:basis=chebyshev1,scope=layer",
            "seed": 0,
        }
    )


def test_fisher_matches_brute_force_outer_products():
    from mdval.data.batch import make_batch

    frames = emt_cu_frames(5)
    model = _tiny_model()
    params = [p for p in model.parameters() if p.requires_grad]
    # brute force: one frame at a time, loss.backward(), .grad, explicit outer products
    n = sum(p.numel() for p in params)
    F_ref = torch.zeros(n, n, dtype=torch.float64)
    for frame in frames:
        b = make_batch([frame], ["Cu"], 4.0)
        for p in params:
            p.grad = None
        pos = b.edge_vectors.clone().requires_grad_(True)
        atom_e = model(b.species, b.edge_index, pos, b.n_local)
        (g,) = torch.autograd.grad(atom_e.sum(), pos, create_graph=True)
        forces = torch.zeros(b.n_local, 3, dtype=g.dtype).index_add(0, b.edge_index[0], g)
        forces = forces.index_add(0, b.edge_index[1], -g)
        loss = (atom_e.sum() - b.energy[0]).abs() / b.n_local + (forces - b.forces).abs().mean()
        loss.backward()
        grad = torch.cat([p.grad.reshape(-1) for p in params])
        F_ref += torch.outer(grad, grad)
    F_ref /= len(frames)
    # ours: frames batched 3 + 2 in one forward pass each
    batches = [make_batch(frames[:3], ["Cu"], 4.0), make_batch(frames[3:], ["Cu"], 4.0)]
    F = fisher_matrix(model, batches)
    assert F.shape == (n, n)
    torch.testing.assert_close(F, F_ref, rtol=FLOAT64_ALGEBRA, atol=FLOAT64_ABS)
    # the spectrum from the small Gram matrix is the spectrum of F
    G = per_sample_gradients(model, batches)
    eig = spectrum_from_gradients(G)
    full = np.sort(torch.linalg.eigvalsh(F_ref).numpy())[::-1]
    np.testing.assert_allclose(eig, np.clip(full, 0, None), atol=EIGEN_REL * full.max())
    s = spectrum_summary(eig, 5)
    assert s["rank"] == 5 and s["n_params"] == n
    assert s["fraction_near_zero"] == pytest.approx(1 - 5 / n)
    assert s["trace"] == pytest.approx(float(torch.trace(F_ref)), rel=FLOAT64_ALGEBRA)


def test_fisher_command_on_an_exported_model(tmp_path, capsys):
    from ase.io import write

    from mdval.cli import main
    from mdval.deploy import export

    model = small_model("behler_parrinello")
    path = export(model, tmp_path / "m.pt", {"optimizer": "rlekf"})
    atoms = []
    for f in emt_cu_frames(4):
        a = f.to_atoms()
        atoms.append(a)
    write(tmp_path / "d.xyz", atoms, format="extxyz")
    rc = main(["fisher", str(path), str(tmp_path / "d.xyz"), "--batch-size", "3", "--quiet"])
    assert rc == 0
    summary = json.loads((tmp_path / "m.fisher.json").read_text())
    assert summary["n_samples"] == 4 and summary["n_params"] == sum(p.numel() for p in model.parameters())
    assert summary["rank"] == 4 and summary["optimizer"] == "rlekf"
    assert (tmp_path / "m.fisher.png").stat().st_size > 1000
    assert "wrote" in capsys.readouterr().out


def test_fisher_of_exported_model_equals_eager(tmp_path):
    """Exported TAAFS layers serve first derivatives only; Fisher must switch that off."""
    from mdval.data.batch import make_batch
    from mdval.deploy import export, load

    model = _tiny_model()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "coeffs" in name:
                p.add_(0.1)
    batches = [make_batch(emt_cu_frames(3), ["Cu"], 4.0)]
    eager = fisher_matrix(model, batches)
    loaded = load(export(model, tmp_path / "m.pt"))
    served = fisher_matrix(loaded, batches)
    torch.testing.assert_close(served, eager, rtol=FLOAT64_ALGEBRA, atol=FLOAT64_ABS)
