"""Model physics for both architectures: finite-difference forces, invariances, extensivity,
cutoff smoothness, TorchScript, and the parameter counts of the TAAFS paper's Table 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms

from mdval.nn import build_model, count_parameters
from mdval.nn.forces import energy_forces_virial

from conftest import (
    FLOAT64_EXACT,
    FLOAT64_FD,
    FLOAT64_ROUNDING,
    ase_edges,
    edge_vectors_from,
    fcc_cu,
    numeric_forces,
    small_model,
    species_of,
)

ARCHITECTURES = ["deeppot_se", "behler_parrinello", "deeppot_se_centered"]
ACTIVATIONS = [
    "tanh",
    "taafs:basis=bspline,grid=5,scope=layer",
    "taafs:basis=chebyshev1,degree=4,scope=neuron",
    "taafs:basis=fourier,scope=global",
    "laaf:scope=neuron",
    "silu",
]
CASES = [(a, s) for a in ARCHITECTURES for s in ACTIVATIONS]


def cu_o_cell(seed=0):
    """A small periodic Cu/O cell (12 atoms, cell shorter than 2 cutoffs: self-images)."""
    atoms = fcc_cu((1, 1, 3), rattle=0.08, seed=seed)
    symbols = atoms.get_chemical_symbols()
    for k in (1, 4, 9):
        symbols[k] = "O"
    atoms.set_chemical_symbols(symbols)
    return atoms


def energy_and_forces(model, atoms, type_names, cutoff):
    edge_index, shifts, cell = ase_edges(atoms, cutoff)
    pos = torch.tensor(atoms.positions)
    vec = edge_vectors_from(pos, edge_index, shifts, cell)
    out = energy_forces_virial(model, species_of(atoms, type_names), edge_index, vec, len(atoms))
    return out["energy"].item(), out["forces"].detach().numpy()


# ---------------------------------------------------------------------------------------------
# Table 1 of the TAAFS paper


def test_parameter_counts_match_taafs_table_1():
    base = {"type_names": ["Cu"], "embedding": [25, 25, 25], "fitting": [50, 50, 50], "axis_neuron": 16}
    tanh = count_parameters(build_model({**base, "activation": "tanh"}))
    assert tanh == 26550
    for scope, extra in (("global", 8), ("network", 16), ("layer", 48)):
        spec = f"taafs:basis=bspline,grid=5,scope={scope}"
        assert count_parameters(build_model({**base, "activation": spec})) - tanh == extra, scope


# ---------------------------------------------------------------------------------------------
# Forces


@pytest.mark.parametrize("architecture, activation", CASES)
def test_forces_match_central_finite_differences(architecture, activation):
    type_names = ["Cu", "O"]
    model = small_model(architecture, type_names, activation, seed=3)
    atoms = cu_o_cell()
    cutoff = model.cutoff
    edge_index, shifts, cell = ase_edges(atoms, cutoff + 0.3)  # a skin: extra edges add zero
    species = species_of(atoms, type_names)
    pos0 = torch.tensor(atoms.positions)

    def energy(pos):
        vec = edge_vectors_from(pos, edge_index, shifts, cell)
        return model(species, edge_index, vec, len(atoms)).sum().item()

    forces = energy_forces_virial(
        model, species, edge_index, edge_vectors_from(pos0, edge_index, shifts, cell), len(atoms)
    )["forces"].detach()
    numeric = numeric_forces(energy, pos0)
    scale = forces.abs().max().item()
    assert scale > 1e-3, "forces are trivially zero; the test would prove nothing"
    assert (numeric - forces).abs().max().item() <= FLOAT64_FD * scale


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_virial_matches_strain_derivative(architecture):
    """W = -dE/d(strain) at zero strain: the virial from edge gradients is the real one."""
    model = small_model(architecture, ["Cu", "O"], "taafs:basis=chebyshev2,scope=layer", seed=5)
    atoms = cu_o_cell(seed=2)
    edge_index, shifts, cell = ase_edges(atoms, model.cutoff + 0.3)
    species = species_of(atoms, ["Cu", "O"])
    pos = torch.tensor(atoms.positions)
    out = energy_forces_virial(model, species, edge_index, edge_vectors_from(pos, edge_index, shifts, cell), len(atoms))
    h = 1e-6
    numeric = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            energies = []
            for sign in (1, -1):
                strain = torch.eye(3, dtype=torch.float64)
                strain[a, b] += sign * h
                vec = edge_vectors_from(pos @ strain, edge_index, shifts, cell @ strain)
                energies.append(model(species, edge_index, vec, len(atoms)).sum().item())
            numeric[a, b] = -(energies[0] - energies[1]) / (2 * h)
    virial = out["virial"][0].detach().numpy()
    assert np.abs(numeric - virial).max() <= FLOAT64_FD * np.abs(virial).max()
    # Per-atom virials sum to the global one.
    out = energy_forces_virial(
        model, species, edge_index, edge_vectors_from(pos, edge_index, shifts, cell), len(atoms), atom_virial=True
    )
    assert torch.allclose(out["atom_virial"].sum(0), out["virial"][0], atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Invariances and extensivity


@pytest.mark.parametrize("architecture, activation", CASES[::2])
def test_energy_invariant_under_rotation_translation_permutation(architecture, activation):
    type_names = ["Cu", "O"]
    model = small_model(architecture, type_names, activation, seed=1)
    atoms = cu_o_cell(seed=4)
    e0, f0 = energy_and_forces(model, atoms, type_names, model.cutoff)

    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rotated = atoms.copy()
    rotated.set_cell(atoms.cell.array @ q.T, scale_atoms=False)
    rotated.positions = atoms.positions @ q.T + np.array([0.3, -1.2, 2.5])
    e1, f1 = energy_and_forces(model, rotated, type_names, model.cutoff)
    assert abs(e1 - e0) <= 1e-10 * abs(e0)
    assert np.abs(f1 - f0 @ q.T).max() <= 1e-9

    perm = rng.permutation(len(atoms))
    permuted = atoms[perm]
    e2, f2 = energy_and_forces(model, permuted, type_names, model.cutoff)
    assert abs(e2 - e0) <= 1e-10 * abs(e0)
    assert np.abs(f2 - f0[perm]).max() <= 1e-10


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_supercell_is_extensive(architecture):
    model = small_model(architecture, ["Cu", "O"], "taafs:basis=legendre,scope=network", seed=2)
    atoms = cu_o_cell(seed=6)
    e1, f1 = energy_and_forces(model, atoms, ["Cu", "O"], model.cutoff)
    e8, f8 = energy_and_forces(model, atoms.repeat((2, 2, 2)), ["Cu", "O"], model.cutoff)
    assert e8 == pytest.approx(8 * e1, rel=1e-11)
    assert np.abs(f8[: len(atoms)] - f1).max() <= 1e-10


# ---------------------------------------------------------------------------------------------
# Cutoff


@pytest.mark.parametrize("architecture, activation", CASES[::3])
def test_edges_beyond_cutoff_change_nothing(architecture, activation):
    model = small_model(architecture, ["Cu"], activation, seed=4)
    atoms = fcc_cu((2, 2, 2), rattle=0.1, seed=3)
    species = species_of(atoms, ["Cu"])
    pos = torch.tensor(atoms.positions)
    ei, s, cell = ase_edges(atoms, model.cutoff)
    ei_far, s_far, _ = ase_edges(atoms, model.cutoff + 2.0)
    e_exact = model(species, ei, edge_vectors_from(pos, ei, s, cell), len(atoms))
    e_extra = model(species, ei_far, edge_vectors_from(pos, ei_far, s_far, cell), len(atoms))
    assert ei_far.shape[1] > ei.shape[1]
    assert (e_exact - e_extra).abs().max().item() <= FLOAT64_EXACT


@pytest.mark.parametrize("architecture, activation", CASES[1::3])
def test_energy_and_forces_continuous_across_cutoff(architecture, activation):
    """A dimer+spectator cluster: move one atom through r = rcut; E and F have no jump."""
    model = small_model(architecture, ["Cu"], activation, seed=7)
    rc = model.cutoff

    def at(r):
        atoms = Atoms("Cu3", positions=[[0, 0, 0], [r, 0, 0], [0.0, 2.3, 0.4]])
        return energy_and_forces(model, atoms, ["Cu"], rc + 1.0)

    for delta in (1e-3, 1e-5, 1e-7):
        (e_in, f_in), (e_out, f_out) = at(rc - delta), at(rc + delta)
        # Smooth (C2) switching: the jump shrinks like delta^3 and vanishes, it is never O(1).
        assert abs(e_in - e_out) <= 10 * delta**2
        assert np.abs(f_in - f_out).max() <= 10 * delta
    # Beyond the cutoff, the far atom feels nothing at all.
    e_far, f_far = at(rc + 0.5)
    assert np.abs(f_far[1]).max() == 0.0


# ---------------------------------------------------------------------------------------------
# TorchScript and bad input


@pytest.mark.parametrize("architecture, activation", CASES[::2])
def test_scripted_model_equals_eager(architecture, activation):
    model = small_model(architecture, ["Cu", "O"], activation, seed=8)
    scripted = torch.jit.script(model)
    atoms = cu_o_cell(seed=8)
    ei, s, cell = ase_edges(atoms, model.cutoff)
    vec = edge_vectors_from(torch.tensor(atoms.positions), ei, s, cell)
    species = species_of(atoms, ["Cu", "O"])
    diff = scripted(species, ei, vec, len(atoms)) - model(species, ei, vec, len(atoms))
    assert diff.abs().max().item() <= FLOAT64_EXACT


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_species_out_of_range_is_refused(architecture):
    model = small_model(architecture, ["Cu", "O"])
    atoms = cu_o_cell()
    ei, s, cell = ase_edges(atoms, model.cutoff)
    vec = edge_vectors_from(torch.tensor(atoms.positions), ei, s, cell)
    species = species_of(atoms, ["Cu", "O"])
    species[3] = 2
    with pytest.raises(
        ValueError,
        match=r"species index out of range: got values in \[0, 2\], "
        r"the model has 2 types \(valid 0\.\.1\)",
    ):
        model(species, ei, vec, len(atoms))
    with pytest.raises(Exception, match=r"species index out of range"):
        torch.jit.script(model)(species, ei, vec, len(atoms))


def test_unknown_architecture_and_option_are_refused():
    with pytest.raises(ValueError, match=r"unknown architecture 'mace'; valid: deeppot_se, behler_parrinello"):
        build_model({"architecture": "mace", "type_names": ["Cu"]})
    with pytest.raises(ValueError, match=r"unknown DeepPot-SE option\(s\) \['rcut'\]"):
        build_model({"architecture": "deeppot_se", "type_names": ["Cu"], "rcut": 5.0})


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_no_atoms_and_no_edges(architecture):
    model = small_model(architecture, ["Cu"])
    empty = model(
        torch.zeros(0, dtype=torch.long), torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, 3, dtype=torch.float64), 0
    )
    assert empty.shape == (0,)
    lonely = model(
        torch.zeros(2, dtype=torch.long), torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, 3, dtype=torch.float64), 2
    )
    # Two isolated atoms of one species: the same energy, computed in two rows of one matrix
    # product (MKL rounds rows differently on AVX2), so equal to rounding, not bitwise.
    assert lonely.shape == (2,) and torch.isfinite(lonely).all()
    assert abs(lonely[0] - lonely[1]) <= FLOAT64_ROUNDING * abs(lonely[1])


def test_centred_descriptor_is_deepmd_padded_slots():
    """descriptor_centering is DeePMD-kit's environment matrix: rows (R - davg) / dstd over
    N_c = neighbor_norm slots, the empty slots holding s = 0, i.e. (-davg / dstd, 0, 0, 0) with
    G(0). Built here slot by slot, independently of the model's per-edge form."""
    from mdval.nn.deeppot import environment_rows

    model = small_model("deeppot_se_centered", ["Cu"], "tanh", seed=2)
    atoms = fcc_cu((2, 2, 2), rattle=0.1, seed=5)
    ei, s, cell = ase_edges(atoms, model.cutoff)
    vec = edge_vectors_from(torch.tensor(atoms.positions), ei, s, cell)
    species = species_of(atoms, ["Cu"])
    n_slots = int(model.neighbor_norm)
    sj, rows = environment_rows(vec, model.cutoff_smooth, model.cutoff)
    mean, std_s, std_r = model.s_mean[0], model.row_std[0, 0], model.row_std[0, 1]
    zero_s = torch.zeros(1, dtype=torch.float64)
    one = torch.zeros(1, dtype=torch.long)
    with torch.no_grad():
        g0 = model.embed(zero_s, one, one)[0]
        expected = []
        for i in range(len(atoms)):
            mine = ei[0] == i
            n_i = int(mine.sum())
            assert n_i <= n_slots
            r = rows[mine] / torch.stack([std_s, std_r, std_r, std_r])
            r[:, 0] -= mean / std_s
            g = model.embed(sj[mine], species[ei[0][mine]], species[ei[1][mine]])
            empty = torch.zeros(n_slots - n_i, 4, dtype=torch.float64)
            empty[:, 0] = -mean / std_s
            t = (r.T @ g + empty.T @ g0.expand(n_slots - n_i, -1)) / n_slots
            d = (t.T @ t[:, : model.axis_neuron]).reshape(1, -1)
            expected.append(model.fitting(d, species[i : i + 1]))
        got = model(species, ei, vec, len(atoms))
    assert (got - torch.cat(expected)).abs().max().item() <= FLOAT64_EXACT
    uncentred = small_model("deeppot_se", ["Cu"], "tanh", seed=2)
    uncentred.load_state_dict(model.state_dict())
    with torch.no_grad():  # the same weights and statistics without centring give other energies
        assert (uncentred(species, ei, vec, len(atoms)) - got).abs().max().item() > 1e-3
