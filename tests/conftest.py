"""Shared fixtures and tolerances for the mdval test suite."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

# Named, dtype-aware tolerances (STYLE.md item 9).
FLOAT64_EXACT = 1e-12  # same computation, different code path (eager vs TorchScript)
FLOAT64_FD = 1e-6  # central finite differences against autograd, relative
FLOAT32_EXACT = 5e-5
# Same float64 math through other BLAS/MKL rows, matrix shapes or vector-loop tails (an atom in
# another row, extra edges in the batch): MKL and the vectorised elementwise kernels round these
# differently on AVX2 and AVX-512, so they agree to rounding, not bit for bit. Relative.
FLOAT64_ROUNDING = 1e-13

warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit")

# The test systems are tiny: one intra-op thread avoids thread-pool overhead on the 2-core CI
# machine (measured up to 30x slower with 2 threads under load). Test-suite setting only.
torch.set_num_threads(1)


def mlearn_dir() -> Path:
    """The mlearn DFT data (Zuo et al. 2020): MDVAL_MLEARN_DIR, else ../shared/data/mlearn next
    to the repository (as benchmarks/common.py), else this workplace's /work/shared copy."""
    for candidate in (
        os.environ.get("MDVAL_MLEARN_DIR"),
        Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mlearn",
        "/work/shared/data/mlearn",
    ):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise FileNotFoundError("mlearn data not found: set MDVAL_MLEARN_DIR to the folder with <element>/test.json")


#: Small but real model configs, covering both architectures and several activations.
SMALL_DEEPPOT = {
    "architecture": "deeppot_se",
    "cutoff": 4.0,
    "cutoff_smooth": 2.5,
    "embedding": [8, 16],
    "fitting": [16, 16],
    "axis_neuron": 4,
    "neighbor_norm": 20.0,
}
SMALL_BEHLER = {
    "architecture": "behler_parrinello",
    "cutoff": 4.0,
    "fitting": [16, 16],
}


def small_model(architecture: str = "deeppot_se", type_names=("Cu",), activation="tanh", seed=0):
    """A small float64 model with random weights (randomised energy shift and stats off).

    ``architecture`` "deeppot_se_centered": DeepPot-SE with descriptor_centering and non-trivial
    descriptor statistics (with zero s_mean the centring would change nothing)."""
    from mdval.nn import build_model

    centered = architecture == "deeppot_se_centered"
    base = SMALL_DEEPPOT if architecture in ("deeppot_se", "deeppot_se_centered") else SMALL_BEHLER
    cfg = {**base, "type_names": list(type_names), "activation": activation, "seed": seed}
    if centered:
        cfg["descriptor_centering"] = True
    model = build_model(cfg)
    if centered:  # statistics of the size a real Cu/O sample gives, so the centring matters
        with torch.no_grad():
            model.s_mean.copy_(torch.linspace(0.30, 0.36, len(type_names), dtype=torch.float64))
            model.s_std.fill_(0.09)
            model.row_std[:, 0] = 0.09
            model.row_std[:, 1:] = 0.2
    # Perturb TAAFS/LAAF parameters away from their tanh start so tests exercise the bases.
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "coeffs" in name or "slope" in name:
                p.add_(0.05 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model


def fcc_cu(size=(2, 2, 2), a=3.61, rattle=0.05, seed=0):
    """A rattled FCC Cu supercell (ase.Atoms)."""
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat(size)
    rng = np.random.default_rng(seed)
    atoms.positions += rng.normal(0.0, rattle, atoms.positions.shape)
    return atoms


def emt_cu_frames(n, seed=0):
    """n labelled frames (EMT energies and forces) of rattled 4-atom fcc Cu cells."""
    from ase.calculators.emt import EMT

    from mdval.data.frames import Frame

    out = []
    for k in range(n):
        atoms = fcc_cu((1, 1, 1), seed=seed + k)
        atoms.calc = EMT()
        out.append(
            Frame(
                symbols=atoms.get_chemical_symbols(),
                positions=atoms.positions,
                cell=atoms.cell.array,
                pbc=atoms.pbc,
                energy=atoms.get_potential_energy(),
                forces=atoms.get_forces(),
            )
        )
    return out


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def ase_edges(atoms, cutoff):
    """ABI inputs from ``ase.neighborlist`` (independent of mdval's vesin lists).

    Returns (species placeholder, edge_index, shifts S, cell) so that
    edge_vectors = pos[j] - pos[i] + S @ cell can be rebuilt from moved positions.
    """
    from ase.neighborlist import neighbor_list

    i, j, S = neighbor_list("ijS", atoms, cutoff)
    edge_index = torch.tensor(np.stack([i, j]), dtype=torch.long)
    return edge_index, torch.tensor(S, dtype=torch.float64), torch.tensor(atoms.cell.array)


def edge_vectors_from(positions, edge_index, shifts, cell):
    return positions[edge_index[1]] - positions[edge_index[0]] + shifts @ cell


def numeric_forces(energy, positions: torch.Tensor, h: float = 1e-5) -> torch.Tensor:
    """-dE/dx by central differences of ``energy(positions) -> float`` (eV, Å), atom by atom."""
    numeric = torch.zeros_like(positions)
    for a in range(positions.shape[0]):
        for c in range(3):
            plus, minus = positions.clone(), positions.clone()
            plus[a, c] += h
            minus[a, c] -= h
            numeric[a, c] = -(energy(plus) - energy(minus)) / (2 * h)
    return numeric


def species_of(atoms, type_names):
    return torch.tensor([list(type_names).index(s) for s in atoms.get_chemical_symbols()])


@pytest.fixture(scope="session")
def plugin():
    """The built pair_style taafs plugin (built once if its sources changed)."""
    from mdval.deploy import lammps_plugin

    try:
        return lammps_plugin.build()
    except (FileNotFoundError, RuntimeError) as exc:
        pytest.fail(f"could not build the plugin: {exc}")
