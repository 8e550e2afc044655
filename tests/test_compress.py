"""Compressed (tabulated-embedding) DeepPot-SE models: accuracy against the exact nets,
self-consistent forces, C2 joins at the table nodes, exact nets for close pairs, and the
`mdval compress` / `mdval export --compress` commands with their errors."""

from __future__ import annotations

import pytest
import torch

from mdval.cli import main as mdval_main
from mdval.deploy import export, load, read_metadata
from mdval.nn.forces import energy_forces_virial
from mdval.nn.tabulated import TabulatedDeepPotSE, tabulate

from conftest import (
    FLOAT32_EXACT,
    FLOAT64_EXACT,
    FLOAT64_FD,
    ase_edges,
    edge_vectors_from,
    fcc_cu,
    numeric_forces,
    small_model,
)

ACTIVATIONS = ["tanh", "taafs:basis=chebyshev1,scope=neuron", "taafs:basis=bspline,scope=layer"]
# The table is built to max |G_interp - G| <= TOLERANCE * max |G|; energies and forces inherit an
# error of that order times the fitting net's gain, far below 1e-7 relative for these models.
TOLERANCE = 1e-10
INHERITED = 1e-7


def cu_o_model(activation: str, seed: int = 3, centered: bool = False):
    """Two species with different descriptor statistics per centre species (as after training)."""
    model = small_model("deeppot_se_centered" if centered else "deeppot_se", ["Cu", "O"], activation, seed=seed)
    with torch.no_grad():
        model.s_mean.copy_(torch.tensor([0.25, 0.35], dtype=torch.float64))
        model.s_std.copy_(torch.tensor([0.08, 0.12], dtype=torch.float64))
        model.row_std.copy_(torch.tensor([[0.2, 0.1, 0.1, 0.1], [0.25, 0.12, 0.12, 0.12]], dtype=torch.float64))
    return model


def cu_o_inputs(model, seed=0, rattle=0.15):
    atoms = fcc_cu((2, 2, 1), rattle=rattle, seed=seed)
    atoms.set_cell(atoms.cell.array + [[0, 0, 0], [0.4, 0, 0], [0.3, -0.2, 0]], scale_atoms=True)
    species = torch.tensor([i % 3 == 0 for i in range(len(atoms))], dtype=torch.long)
    ei, shifts, cell = ase_edges(atoms, model.cutoff)
    positions = torch.tensor(atoms.positions)
    return species, ei, shifts, cell, positions


def evaluate(model, species, ei, shifts, cell, positions):
    vec = edge_vectors_from(positions, ei, shifts, cell)
    return energy_forces_virial(model, species, ei, vec, len(species))


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_tabulated_model_matches_the_exact_nets(activation, centered):
    model = cu_o_model(activation, centered=centered)
    tab, report = tabulate(model, tolerance=TOLERANCE)
    assert isinstance(tab, TabulatedDeepPotSE)
    assert report["max_relative_error"] <= TOLERANCE
    args = cu_o_inputs(model)
    exact, approx = evaluate(model, *args), evaluate(tab, *args)
    for key in ("atom_energy", "forces", "virial"):
        scale = exact[key].abs().max().item()
        assert (approx[key] - exact[key]).abs().max().item() <= INHERITED * scale, key
    # Not the same function: the table is an interpolant, not a copy of the nets.
    assert (approx["forces"] - exact["forces"]).abs().max().item() > 0.0


@pytest.mark.parametrize("activation", ACTIVATIONS[1:])
def test_tabulated_forces_and_virial_are_derivatives_of_its_energy(activation):
    tab, _ = tabulate(cu_o_model(activation))
    species, ei, shifts, cell, positions = cu_o_inputs(tab, seed=1)
    out = evaluate(tab, species, ei, shifts, cell, positions)
    fd = numeric_forces(lambda pos: evaluate(tab, species, ei, shifts, cell, pos)["energy"].item(), positions)
    scale = out["forces"].abs().max().item()
    assert scale > 1e-3, "forces are trivially zero; the test would prove nothing"
    assert (out["forces"] - fd).abs().max().item() <= FLOAT64_FD * scale
    # Virial W = dE/d(strain) applied to positions and cell together.
    eps = 1e-6
    w_fd = torch.zeros(3, 3, dtype=torch.float64)
    for a in range(3):
        for b in range(3):
            energies = []
            for sign in (1.0, -1.0):
                strain = torch.eye(3, dtype=torch.float64)
                strain[a, b] += sign * eps
                energies.append(evaluate(tab, species, ei, shifts, cell @ strain, positions @ strain)["energy"].item())
            w_fd[a, b] = -(energies[0] - energies[1]) / (2 * eps)
    w = out["virial"][0]
    assert (w - w_fd).abs().max().item() <= FLOAT64_FD * w.abs().max().item()


def _embed_with_slope(model, s, pair=(0, 1)):
    s = s.clone().requires_grad_(True)
    cs = torch.full(s.shape, pair[0], dtype=torch.long)
    ns = torch.full(s.shape, pair[1], dtype=torch.long)
    g = model.embed(s, cs, ns)
    slope = torch.stack([torch.autograd.grad(g[:, j].sum(), s, retain_graph=True)[0] for j in range(g.shape[1])], dim=1)
    return g.detach(), slope


def test_table_nodes_reproduce_the_nets_and_join_smoothly():
    model = cu_o_model("taafs:basis=chebyshev1,scope=neuron")
    tab, report = tabulate(model)
    h = report["step_per_angstrom"]
    nodes = torch.arange(3, report["n_intervals"] - 3, 17, dtype=torch.float64) * h
    g_exact, slope_exact = _embed_with_slope(model, nodes)
    g_node, slope_node = _embed_with_slope(tab, nodes)
    scale = g_exact.abs().max().item()
    # At a node u = 0, the interpolant is a_0 = G and a_1/h = dG/ds exactly.
    assert (g_node - g_exact).abs().max().item() <= FLOAT64_EXACT * scale
    assert (slope_node - slope_exact).abs().max().item() <= FLOAT64_EXACT * slope_exact.abs().max().item() * 10
    # Approached from the interval on the left (u -> 1) the same values and slopes: continuous
    # energies and forces across interval boundaries.
    left = nodes - 1e-9 * h
    g_left, slope_left = _embed_with_slope(tab, left)
    assert (g_left - g_node).abs().max().item() <= 1e-8 * scale
    assert (slope_left - slope_node).abs().max().item() <= 1e-6 * slope_exact.abs().max().item()


def test_pairs_closer_than_r_min_use_the_exact_nets():
    model = cu_o_model("taafs:basis=bspline,scope=layer")
    tab, report = tabulate(model, r_min=1.0)
    s = torch.tensor([1.2, 2.0, 3.5], dtype=torch.float64)  # 1/Å; r < 1 Å
    assert (s > report["s_max_per_angstrom"]).all()
    g_exact, slope_exact = _embed_with_slope(model, s)
    g_tab, slope_tab = _embed_with_slope(tab, s)
    assert (g_tab - g_exact).abs().max().item() <= FLOAT64_EXACT
    assert (slope_tab - slope_exact).abs().max().item() <= FLOAT64_EXACT


def test_compress_command_round_trip(tmp_path, capsys):
    model = cu_o_model("taafs:basis=chebyshev1,scope=layer")
    src = export(model, tmp_path / "model.pt", {"optimizer": "adam"})
    out = tmp_path / "model_compressed.pt"
    assert mdval_main(["compress", str(src), "-o", str(out)]) == 0
    assert "max relative error" in capsys.readouterr().out
    meta = read_metadata(out)
    assert meta["compression"]["max_relative_error"] <= 1e-10
    assert meta["optimizer"] == "adam" and meta["config"] == model.config()
    species, ei, shifts, cell, positions = cu_o_inputs(model)
    served = evaluate(load(out), species, ei, shifts, cell, positions)
    eager = evaluate(tabulate(model)[0], species, ei, shifts, cell, positions)
    for key in ("atom_energy", "forces", "virial"):
        assert (served[key] - eager[key]).abs().max().item() <= FLOAT64_EXACT, key
    # float32 compute from the float64 file
    out32 = tmp_path / "model_c32.pt"
    assert mdval_main(["compress", str(src), "-o", str(out32), "--dtype", "float32"]) == 0
    e32 = evaluate(load(out32), species, ei, shifts, cell, positions)["atom_energy"]
    assert (e32 - eager["atom_energy"]).abs().max().item() <= FLOAT32_EXACT * eager["atom_energy"].abs().max().item()


def test_compress_refuses_what_it_cannot_compress(tmp_path, capsys):
    model = cu_o_model("tanh")
    src = export(model, tmp_path / "model.pt")
    done = tmp_path / "c.pt"
    assert mdval_main(["compress", str(src), "-o", str(done)]) == 0
    capsys.readouterr()
    assert mdval_main(["compress", str(done), "-o", str(tmp_path / "cc.pt")]) == 2
    assert f"{done} is already compressed (quintic Hermite table of the embedding nets)" in capsys.readouterr().err

    bp = export(small_model("behler_parrinello", ["Cu"]), tmp_path / "bp.pt")
    assert mdval_main(["compress", str(bp), "-o", str(tmp_path / "bpc.pt")]) == 2
    assert (
        f"{bp}: only DeepPot-SE models can be compressed (they have an embedding net), this one is 'behler_parrinello'"
    ) in capsys.readouterr().err

    f32 = export(model, tmp_path / "m32.pt", compute_dtype="float32")
    assert mdval_main(["compress", str(f32), "-o", str(tmp_path / "c32.pt")]) == 2
    assert (
        f"{f32} runs in float32; compress the float64 model file instead and pass --dtype float32 to `mdval compress`"
    ) in capsys.readouterr().err

    with pytest.raises(ValueError, match="r_min must be > 0 Å, got 0.0"):
        tabulate(model, r_min=0.0)
    with pytest.raises(ValueError, match="could not be tabulated to tolerance 1e-30"):
        tabulate(model, tolerance=1e-30, max_intervals=1024)


def test_fisher_refuses_a_compressed_model(tmp_path, capsys):
    src = export(cu_o_model("tanh"), tmp_path / "model.pt")
    out = tmp_path / "c.pt"
    assert mdval_main(["compress", str(src), "-o", str(out)]) == 0
    capsys.readouterr()
    assert mdval_main(["fisher", str(out), str(tmp_path / "unused.xyz")]) == 2
    assert (
        f"mdval: error: {out} is a compressed model (its embedding is a table, not trainable "
        "weights); run mdval fisher on the uncompressed model file"
    ) in capsys.readouterr().err
