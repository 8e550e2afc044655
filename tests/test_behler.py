"""Behler-Parrinello specific checks (mdval.nn.behler); the generic ABI tests are in test_models.

Forces follow the ABI (DESIGN.md section 3): g = dE/d(edge_vectors), F_i += g, F_j -= g.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list

from mdval.nn import build_model, count_parameters, make_activation
from mdval.nn.behler import BEHLER_DEFAULTS, BehlerParrinello

from conftest import FLOAT64_ROUNDING

# Named float64 tolerances (STYLE.md 9).
TOL_SCRIPT = 1e-12  # scripted vs eager, relative
TOL_FD = 1e-6  # autograd forces vs central finite differences, relative to max |F|
TOL_INVARIANCE = 1e-10  # rotation / translation / permutation, relative
TOL_FEATURES = 1e-12  # vectorised symmetry functions vs the explicit double loop, relative
TOL_CROSSING = 1e-10  # energy / force jump as an atom crosses the cutoff at delta = 1e-6 Å
FD_STEP = 1e-5  # Å
CUTOFF = 5.0
SKIN = 1.0  # Å; neighbour lists are built with a skin, so edges beyond the cutoff are present

TAAFS_SPEC = "taafs:basis=chebyshev1,scope=layer"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These systems are tiny: a thread pool only adds overhead (and stalls on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _script(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(model)


def _model(type_names=("Cu",), activation="tanh", **options):
    return BehlerParrinello(
        {"type_names": list(type_names), "cutoff": CUTOFF, "activation": activation, "fitting": [16, 16], **options}
    )


# --- systems --------------------------------------------------------------------------------


def _cluster(n_atoms=8, n_types=2, seed=0, box=5.5, min_dist=1.9):
    """Random non-periodic cluster with all pair distances >= min_dist (Å)."""
    rng = np.random.default_rng(seed)
    positions = []
    while len(positions) < n_atoms:
        p = rng.uniform(0.0, box, 3)
        if all(np.linalg.norm(p - q) >= min_dist for q in positions):
            positions.append(p)
    species = np.arange(n_atoms) % n_types
    return Atoms("H" * n_atoms, positions=positions, pbc=False), species


def _periodic_cell(seed=1):
    """Rattled 4-atom fcc cell (a = 3.61 Å < 2 rcut: many images of each atom, and self-images)."""
    a = 3.61
    frac = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    atoms = Atoms("H4", scaled_positions=frac, cell=np.diag([a, a * 1.02, a * 0.98]), pbc=True)
    atoms.cell[1, 0] = 0.2  # slightly triclinic
    atoms.positions += np.random.default_rng(seed).normal(0.0, 0.08, (4, 3))
    return atoms, np.array([0, 1, 1, 0])


def _graph(atoms, cutoff=CUTOFF + SKIN):
    """Full neighbour list (i, j, shift) from ase, as torch tensors, edge order shuffled."""
    i, j, shifts = neighbor_list("ijS", atoms, cutoff, self_interaction=False)
    perm = np.random.default_rng(7).permutation(len(i))
    edge_index = torch.tensor(np.stack([i[perm], j[perm]]), dtype=torch.long)
    offsets = torch.tensor(shifts[perm] @ np.asarray(atoms.cell), dtype=torch.float64)
    return edge_index, offsets


def _edge_vectors(positions, edge_index, offsets):
    return positions[edge_index[1]] - positions[edge_index[0]] + offsets


def _energy_forces(model, positions, species, edge_index, offsets):
    """Atom energies and forces by the ABI recipe: F_i += g, F_j -= g."""
    n = positions.shape[0]
    vectors = _edge_vectors(positions, edge_index, offsets).detach().requires_grad_(True)
    energies = model(species, edge_index, vectors, n)
    (g,) = torch.autograd.grad(energies.sum(), vectors)
    forces = torch.zeros(n, 3, dtype=torch.float64)
    forces = forces.index_add(0, edge_index[0], g).index_add(0, edge_index[1], -g)
    return energies.detach(), forces


def _set_normalisation(model, atoms, species, edge_index, offsets):
    """Feature mean/std from the configuration itself, so that the nets are not saturated."""
    pos = torch.tensor(atoms.positions)
    g = model.descriptor(species, edge_index, _edge_vectors(pos, edge_index, offsets), len(atoms))
    with torch.no_grad():
        model.feature_mean.copy_(g.mean(0).expand_as(model.feature_mean))
        model.feature_std.copy_(g.std(0).clamp(min=1e-2).expand_as(model.feature_std))


def _perturb_taafs(model, seed=3):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("coeffs"):
                p.add_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


SYSTEMS = {"cluster": _cluster, "periodic": _periodic_cell}


# --- slow reference -------------------------------------------------------------------------


def _reference_features(model, species, edge_index, vectors, n_local):
    """The symmetry functions by an explicit Python loop over centres and neighbour pairs."""
    t = model.n_types
    rc = model.cutoff
    shifts = model.radial_shift.tolist()
    eta_r = model.radial_eta
    terms = [
        (e, z, lam)
        for e in model.angular_eta.tolist()
        for z in model.angular_zeta
        for lam in model.angular_lambda.tolist()
    ]
    pair_ids, p = {}, 0
    for a in range(t):
        for b in range(a, t):
            pair_ids[(a, b)] = pair_ids[(b, a)] = p
            p += 1

    def fc(r):
        u = min(max(r / rc, 0.0), 1.0)
        return 1.0 - 10 * u**3 + 15 * u**4 - 6 * u**5

    out = np.zeros((n_local, model.n_features))
    vec = vectors.tolist()
    ei = edge_index.tolist()
    sp = species.tolist()
    for i in range(n_local):
        nbrs = [
            (sp[ei[1][e]], vec[e]) for e in range(len(ei[0])) if ei[0][e] == i and math.dist(vec[e], (0, 0, 0)) < rc
        ]
        for tj, v in nbrs:
            r = math.dist(v, (0, 0, 0))
            for k, rs in enumerate(shifts):
                out[i, tj * len(shifts) + k] += math.exp(-eta_r * (r - rs) ** 2) * fc(r)
        base = t * len(shifts)
        for a in range(len(nbrs)):
            for b in range(a + 1, len(nbrs)):
                (ta, va), (tb, vb) = nbrs[a], nbrs[b]
                ra, rb = math.dist(va, (0, 0, 0)), math.dist(vb, (0, 0, 0))
                cos = sum(x * y for x, y in zip(va, vb)) / (ra * rb)
                col = base + pair_ids[(ta, tb)] * len(terms)
                for m, (eta, zeta, lam) in enumerate(terms):
                    out[i, col + m] += (
                        2.0 ** (1.0 - zeta)
                        * (1.0 + lam * cos) ** zeta
                        * math.exp(-eta * (ra * ra + rb * rb))
                        * fc(ra)
                        * fc(rb)
                    )
    return out


# --- tests ----------------------------------------------------------------------------------


def test_default_config_and_parameter_count():
    model = build_model({"architecture": "behler_parrinello", "type_names": ["Cu"]})
    assert isinstance(model, BehlerParrinello)
    # 10 radial + 2 eta x 3 zeta x 2 lambda angular = 22 features; fitting 22-64-64-1, no out bias.
    assert model.n_features == 22
    assert count_parameters(model) == 22 * 64 + 64 + 64 * 64 + 64 + 64
    assert model.activation_specs() == {"fitting": "tanh"}
    assert len(model.feature_names()) == model.n_features
    assert model.feature_mean.shape == (1, 22) and model.feature_std.shape == (1, 22)
    two = _model(("Cu", "Au"))
    # 2 x 10 radial + 3 pairs x 12 angular.
    assert two.n_features == 2 * 10 + 3 * 12
    # The config round-trips through build_model.
    again = build_model(two.config())
    for (n1, p1), (n2, p2) in zip(two.state_dict().items(), again.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)


def test_config_errors():
    with pytest.raises(ValueError, match="unknown Behler-Parrinello option.*valid:.*angular_zeta"):
        _model(radial_shells=4)
    with pytest.raises(ValueError, match="type_names"):
        BehlerParrinello({"cutoff": 5.0})
    with pytest.raises(ValueError, match="angular_zeta values must be whole numbers >= 1"):
        _model(angular_zeta=[0.5])
    with pytest.raises(ValueError, match="angular_zeta values must be whole numbers >= 1"):
        _model(angular_zeta=[1.5])
    with pytest.raises(ValueError, match="angular_lambda"):
        _model(angular_lambda=[2.0])
    with pytest.raises(ValueError, match="radial_start"):
        _model(radial_start=6.0)
    with pytest.raises(ValueError, match="n_radial"):
        _model(n_radial=0)
    with pytest.raises(ValueError, match="angular_eta must be a list"):
        _model(angular_eta=0.1)
    with pytest.raises(ValueError, match="unknown activation"):
        _model(activation="tanhh")


def test_taafs_parameters_follow_the_network_scopes():
    n_coeffs = make_activation(TAAFS_SPEC).coeffs.numel()
    base = count_parameters(_model(("Cu", "Au")))
    layer = _model(("Cu", "Au"), activation=TAAFS_SPEC)
    network = _model(("Cu", "Au"), activation="taafs:basis=chebyshev1,scope=network")
    glob = _model(("Cu", "Au"), activation="taafs:basis=chebyshev1,scope=global")
    # 2 elements x 2 hidden layers; one fitting_<element> network per element.
    assert count_parameters(layer) == base + 4 * n_coeffs
    assert count_parameters(network) == base + 2 * n_coeffs
    assert count_parameters(glob) == base + n_coeffs
    assert layer.activation_specs() == {"fitting": "taafs:basis=chebyshev1,degree=5,scope=layer"}


@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_features_match_explicit_double_loop(system):
    atoms, sp = SYSTEMS[system]()
    model = _model(("Cu", "Au"), angular_zeta=[1, 2, 4, 5, 16])
    species = torch.tensor(sp)
    edge_index, offsets = _graph(atoms)
    vectors = _edge_vectors(torch.tensor(atoms.positions), edge_index, offsets)
    got = model.descriptor(species, edge_index, vectors, len(atoms)).numpy()
    want = _reference_features(model, species, edge_index, vectors, len(atoms))
    np.testing.assert_allclose(got, want, rtol=TOL_FEATURES, atol=TOL_FEATURES * np.abs(want).max())
    assert np.all(want[:, 2 * model.n_radial :].sum(0) > 0.0)  # every species pair is present


def test_triplets_are_each_unordered_pair_of_distinct_edges_once():
    model = _model()
    rng = np.random.default_rng(4)
    n_local = 5
    centers = torch.tensor(rng.integers(0, n_local, 40))
    centers[centers == 3] = 2  # a centre with no edges
    e1, e2 = model._triplets(centers, n_local)
    counts = torch.bincount(centers, minlength=n_local)
    assert e1.shape[0] == int((counts * (counts - 1) // 2).sum())
    assert torch.all(e1 != e2)
    assert torch.equal(centers[e1], centers[e2])
    pairs = {(min(a, b), max(a, b)) for a, b in zip(e1.tolist(), e2.tolist())}
    assert len(pairs) == e1.shape[0]
    e1, e2 = model._triplets(torch.zeros(0, dtype=torch.long), 3)
    assert e1.shape == (0,) and e2.shape == (0,)


@pytest.mark.parametrize("activation", ["tanh", TAAFS_SPEC])
@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_forces_match_finite_differences(system, activation):
    atoms, sp = SYSTEMS[system]()
    species = torch.tensor(sp)
    model = _model(("Cu", "Au"), activation=activation)
    edge_index, offsets = _graph(atoms)
    _set_normalisation(model, atoms, species, edge_index, offsets)
    _perturb_taafs(model)
    positions = torch.tensor(atoms.positions)
    _, forces = _energy_forces(model, positions, species, edge_index, offsets)
    fd = torch.zeros_like(forces)
    with torch.no_grad():
        for a in range(len(atoms)):
            for c in range(3):
                e = []
                for sign in (1.0, -1.0):
                    p = positions.clone()
                    p[a, c] += sign * FD_STEP
                    vectors = _edge_vectors(p, edge_index, offsets)
                    e.append(model(species, edge_index, vectors, len(atoms)).sum())
                fd[a, c] = -(e[0] - e[1]) / (2.0 * FD_STEP)
    scale = forces.abs().max()
    assert scale > 1e-3  # the test is not vacuous
    assert (forces - fd).abs().max() <= TOL_FD * scale
    if system == "cluster":  # Newton's third law: no net force on a free cluster
        assert forces.sum(0).abs().max() <= 1e-12 * scale


@pytest.mark.parametrize("activation", ["tanh", TAAFS_SPEC])
def test_scripted_matches_eager_and_survives_save_load(activation):
    atoms, sp = _periodic_cell()
    species = torch.tensor(sp)
    model = _model(("Cu", "Au"), activation=activation)
    edge_index, offsets = _graph(atoms)
    _set_normalisation(model, atoms, species, edge_index, offsets)
    _perturb_taafs(model)
    scripted = _script(model)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    positions = torch.tensor(atoms.positions)
    e0, f0 = _energy_forces(model, positions, species, edge_index, offsets)
    for other in (scripted, loaded):
        for _ in range(3):  # the profiling executor specialises on the first calls
            e1, f1 = _energy_forces(other, positions, species, edge_index, offsets)
            assert (e1 - e0).abs().max() <= TOL_SCRIPT * e0.abs().max()
            assert (f1 - f0).abs().max() <= TOL_SCRIPT * f0.abs().max()


def test_rotation_translation_permutation_invariance():
    atoms, sp = _cluster(n_atoms=10, seed=2)
    species = torch.tensor(sp)
    model = _model(("Cu", "Au"))
    edge_index, offsets = _graph(atoms)
    _set_normalisation(model, atoms, species, edge_index, offsets)
    positions = torch.tensor(atoms.positions)
    e0, f0 = _energy_forces(model, positions, species, edge_index, offsets)
    tol_e = TOL_INVARIANCE * e0.abs().max()
    tol_f = TOL_INVARIANCE * f0.abs().max()

    gen = torch.Generator().manual_seed(5)
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=gen))
    moved = positions @ q.T + torch.tensor([1.3, -7.2, 0.4], dtype=torch.float64)
    e1, f1 = _energy_forces(model, moved, species, edge_index, offsets)
    assert (e1 - e0).abs().max() <= tol_e
    assert (f1 - f0 @ q.T).abs().max() <= tol_f

    # Relabel the atoms (each keeps its species), rebuild the list in the new order.
    perm = torch.tensor(np.random.default_rng(6).permutation(len(atoms)))
    permuted = atoms[perm.numpy()]
    edge_index_p, offsets_p = _graph(permuted)
    e2, f2 = _energy_forces(model, positions[perm], species[perm], edge_index_p, offsets_p)
    assert (e2 - e0[perm]).abs().max() <= tol_e
    assert (f2 - f0[perm]).abs().max() <= tol_f


def test_ghost_nodes_equal_periodic_shifts():
    """Periodic images as explicit ghost nodes (as LAMMPS passes them) give the same result."""
    atoms, sp = _periodic_cell()
    species = torch.tensor(sp)
    model = _model(("Cu", "Au"))
    edge_index, offsets = _graph(atoms)
    _set_normalisation(model, atoms, species, edge_index, offsets)
    n = len(atoms)
    positions = torch.tensor(atoms.positions)
    vectors = _edge_vectors(positions, edge_index, offsets)
    e0 = model(species, edge_index, vectors, n)
    # Every edge j with a non-zero shift points to a new ghost node at the shifted position.
    ghost = offsets.abs().sum(1) > 0
    j = edge_index[1].clone()
    j[ghost] = n + torch.arange(int(ghost.sum()))
    species_g = torch.cat([species, species[edge_index[1][ghost]]])
    e1 = model(species_g, torch.stack([edge_index[0], j]), vectors, n)
    assert e1.shape == (n,)
    assert (e1 - e0).abs().max() <= TOL_SCRIPT * e0.abs().max()


def test_edges_beyond_cutoff_change_nothing():
    atoms, sp = _cluster()
    species = torch.tensor(sp)
    model = _model(("Cu", "Au"))
    edge_index, offsets = _graph(atoms, cutoff=CUTOFF)
    _set_normalisation(model, atoms, species, edge_index, offsets)
    vectors = _edge_vectors(torch.tensor(atoms.positions), edge_index, offsets)
    vectors = vectors.requires_grad_(True)
    e0 = model(species, edge_index, vectors, len(atoms))
    (g0,) = torch.autograd.grad(e0.sum(), vectors)
    # Extra edges at exactly rcut and beyond, in the middle and at the end of the list.
    far = torch.tensor([[CUTOFF, 0.0, 0.0], [0.0, 3.0, 4.0 + 1e-15], [4.0, 4.0, 4.0]], dtype=torch.float64)
    extra_index = torch.tensor([[0, 3, 5], [1, 2, 0]])
    edge_index_x = torch.cat([edge_index[:, :5], extra_index, edge_index[:, 5:]], dim=1)
    vectors_x = torch.cat([vectors.detach()[:5], far, vectors.detach()[5:]]).requires_grad_(True)
    e1 = model(species, edge_index_x, vectors_x, len(atoms))
    (g1,) = torch.autograd.grad(e1.sum(), vectors_x)
    # The extra edges shift the others to other vector lanes: equal to rounding, not bitwise.
    torch.testing.assert_close(e1, e0, rtol=FLOAT64_ROUNDING, atol=FLOAT64_ROUNDING * e0.abs().max().item())
    # Their own gradient is zero by construction (f_c and its derivative vanish for r >= rcut).
    assert torch.equal(g1[5:8], torch.zeros(3, 3, dtype=torch.float64))
    torch.testing.assert_close(
        torch.cat([g1[:5], g1[8:]]), g0, rtol=FLOAT64_ROUNDING, atol=FLOAT64_ROUNDING * g0.abs().max().item()
    )


@pytest.mark.parametrize("stays_near_atom_1", [False, True])
def test_continuity_as_an_atom_crosses_the_cutoff(stays_near_atom_1):
    """Atom 3 moves out of the cutoff sphere of atom 0 (both directions of the 0-3 pair).

    Away from atoms 1 and 2, everything that changes is a function of f_c(r_03): E and F on both
    sides must agree. Inside the sphere of atom 1, E and F also vary smoothly with the position
    of atom 3, so there the check is that the 0-3 edges contribute nothing in the limit.
    """
    model = _model(("Cu", "Au"))
    species = torch.tensor([0, 1, 0, 1])
    angle = math.pi / 3 if stays_near_atom_1 else 0.9 * math.pi
    direction = torch.tensor([math.cos(angle), math.sin(angle), 0.0], dtype=torch.float64)
    fixed = torch.tensor([[0.0, 0.0, 0.0], [2.5, 0.0, 0.0], [1.0, -2.2, 0.3]], dtype=torch.float64)
    pairs = [(a, b) for a in range(4) for b in range(4) if a != b]
    edge_index = torch.tensor(pairs).T
    offsets = torch.zeros(len(pairs), 3, dtype=torch.float64)
    without_03 = torch.tensor([{a, b} != {0, 3} for a, b in pairs])

    def energy_forces(distance, drop_03=False):
        positions = torch.cat([fixed, (distance * direction).unsqueeze(0)])
        keep = without_03 if drop_03 else torch.ones(len(pairs), dtype=torch.bool)
        e, f = _energy_forces(model, positions, species, edge_index[:, keep], offsets[keep])
        return e.sum(), f

    e_in, _ = energy_forces(CUTOFF - 0.5)
    e_in_alone, _ = energy_forces(CUTOFF - 0.5, drop_03=True)
    assert abs(e_in - e_in_alone) > 1e-4  # atoms 0 and 3 do interact inside the cutoff
    # Beyond the cutoff the 0-3 edges contribute nothing; the two graphs have different shapes,
    # so the energies agree to rounding (not bitwise).
    e_with, e_without = energy_forces(CUTOFF + 1e-6)[0], energy_forces(CUTOFF + 1e-6, True)[0]
    assert abs(e_with - e_without) <= FLOAT64_ROUNDING * abs(e_without)
    gaps = []
    for delta in (1e-3, 1e-4, 1e-5, 1e-6):
        e_minus, f_minus = energy_forces(CUTOFF - delta)
        if stays_near_atom_1:
            e_other, f_other = energy_forces(CUTOFF - delta, drop_03=True)
        else:
            e_other, f_other = energy_forces(CUTOFF + delta)
        gaps.append(float(abs(e_minus - e_other)))
        if delta == 1e-6:
            assert gaps[-1] <= TOL_CROSSING
            assert (f_minus - f_other).abs().max() <= TOL_CROSSING
    # C2 cutoff: the energy gap closes like delta^3 (1e-3 per decade).
    assert 0.0 < gaps[1] <= 1e-2 * gaps[0]  # (below 1e-14 the gap is rounding)


def test_collinear_neighbours_have_finite_second_derivatives():
    """cos theta = -1 and +1 exactly (base of (1 + lambda cos)^zeta is 0): forces, the force
    derivatives wrt the weights (force training) and the Hessian stay finite."""
    model = _model(("Cu", "Au"), angular_zeta=[1, 2, 3])
    species = torch.tensor([0, 1, 0, 1])
    vectors = torch.tensor(
        [[2.5, 0.0, 0.0], [-2.4, 0.0, 0.0], [4.0, 0.0, 0.0], [-2.5, 0.0, 0.0], [2.4, 0.0, 0.0]],
        dtype=torch.float64,
        requires_grad=True,
    )
    edge_index = torch.tensor([[0, 0, 0, 1, 2], [1, 2, 3, 0, 0]])
    energy = model(species, edge_index, vectors, 3).sum()
    (g,) = torch.autograd.grad(energy, vectors, create_graph=True)
    assert torch.isfinite(g).all()
    params = [p for p in model.parameters() if p.requires_grad]
    weight_grads = torch.autograd.grad((g * g).sum(), params, retain_graph=True)
    assert all(torch.isfinite(w).all() for w in weight_grads)
    (hessian_row,) = torch.autograd.grad(g[0, 0], vectors)
    assert torch.isfinite(hessian_row).all()


def test_empty_inputs():
    model = _model(("Cu", "Au"))
    scripted = _script(model)
    no_edges = torch.zeros(2, 0, dtype=torch.long)
    no_vectors = torch.zeros(0, 3, dtype=torch.float64)
    for m in (model, scripted):
        out = m(torch.zeros(0, dtype=torch.long), no_edges, no_vectors, 0)
        assert out.shape == (0,) and out.dtype == torch.float64
        out = m(torch.tensor([0, 1, 1]), no_edges, no_vectors, 3)
        assert out.shape == (3,)
        # Isolated atoms of one species have the same energy; they sit in different rows of one
        # matrix product, which MKL rounds differently on AVX2: equal to rounding, not bitwise.
        assert abs(out[1] - out[2]) <= FLOAT64_ROUNDING * abs(out[2])
        assert abs(out[1] - out[0]) > 1e-6  # the other species differs (the check can fail)
    features = model.descriptor(torch.tensor([0]), no_edges, no_vectors, 1)
    assert features.shape == (1, model.n_features)


def test_radial_only_model():
    model = _model(angular_zeta=[])
    assert model.n_features == BEHLER_DEFAULTS["n_radial"]
    atoms, _ = _cluster(n_types=1)
    edge_index, offsets = _graph(atoms)
    species = torch.zeros(len(atoms), dtype=torch.long)
    positions = torch.tensor(atoms.positions)
    e, _ = _energy_forces(_script(model), positions, species, edge_index, offsets)
    assert torch.isfinite(e).all()


def test_species_out_of_range():
    model = _model(("Cu", "Au"))
    edge_index = torch.tensor([[0, 1], [1, 0]])
    vectors = torch.tensor([[2.5, 0.0, 0.0], [-2.5, 0.0, 0.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"species index out of range.*2 types"):
        model(torch.tensor([0, 2]), edge_index, vectors, 2)
    with pytest.raises(ValueError, match="species index out of range"):
        model.descriptor(torch.tensor([-1, 0]), edge_index, vectors, 2)
    with pytest.raises(Exception, match="species index out of range"):
        _script(model)(torch.tensor([0, 2]), edge_index, vectors, 2)
