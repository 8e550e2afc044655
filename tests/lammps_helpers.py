"""Shared helpers for the LAMMPS plugin tests and benchmark.

* ``ToyManyBody``: a small, smooth, genuinely many-body TorchScript model keeping model ABI v1
  (mdval/abi.py), so the plugin can be tested before the real models exist.
* ``reference_results``: energy, forces, virial, per-atom energies and per-atom virials computed
  directly from a model file in Python (ASE neighbour list with periodic images + autograd).
  Swap this for ``mdval.Calculator`` once it exists; the maths is the same (DESIGN.md §3).
* ``write_lammps_data`` / ``run_lmp`` / ``read_dump`` / ``read_thermo``: drive the real ``lmp``.

Units: Å, eV, eV/Å; the virial W = -Σ r⊗g is in eV (ASE's stress is -W/V).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from mdval import abi

VENV_BIN = Path(sys.executable).parent
LMP = str(VENV_BIN / "lmp")
MPIRUN = str(VENV_BIN / "mpirun")
#: metal units: pressure (bar) = NKTV2P_METAL * energy (eV) / volume (Å³), LAMMPS update.cpp.
NKTV2P_METAL = 1.6021765e6


class ToyManyBody(torch.nn.Module):
    """E_i = e0[s_i] + B[s_i] (sqrt(1 + ρ_i) - 1) + ½ Σ_j V_ij(r) f_c(r), ρ_i = Σ_j A[s_i,s_j] exp(-a r²) f_c(r).

    f_c(x = r/r_c) = 1 - 10x³ + 15x⁴ - 6x⁵ for x < 1, else 0 (C2 at r_c), so edges beyond the
    cutoff contribute exactly zero.  V_ij(r) = C[s_i,s_j] exp(-b r).  The sqrt embedding makes it
    many-body: the force on a ghost j depends on the density of the centre i.
    """

    def __init__(self, cutoff: float, n_types: int):
        super().__init__()
        self.cutoff = cutoff
        g = torch.Generator().manual_seed(7)
        a = 1.0 + torch.rand(n_types, n_types, generator=g, dtype=torch.float64)
        c = 0.5 + torch.rand(n_types, n_types, generator=g, dtype=torch.float64)
        self.register_buffer("A", 3.0 * (a + a.T) / 2)
        self.register_buffer("C", 40.0 * (c + c.T) / 2)
        self.register_buffer("B", -1.5 - torch.rand(n_types, generator=g, dtype=torch.float64))
        self.register_buffer("e0", -0.1 * torch.arange(1, n_types + 1, dtype=torch.float64))

    def forward(
        self, species: torch.Tensor, edge_index: torch.Tensor, edge_vectors: torch.Tensor, n_local: int
    ) -> torch.Tensor:
        r = torch.linalg.norm(edge_vectors, dim=1)
        x = torch.clamp(r / self.cutoff, max=1.0)
        fc = torch.where(r < self.cutoff, 1.0 - 10.0 * x**3 + 15.0 * x**4 - 6.0 * x**5, torch.zeros_like(r))
        si = species[edge_index[0]]
        sj = species[edge_index[1]]
        phi = self.A[si, sj] * torch.exp(-0.3 * r * r) * fc
        pair = 0.5 * self.C[si, sj] * torch.exp(-2.0 * r) * fc
        rho = torch.zeros(n_local, dtype=edge_vectors.dtype, device=edge_vectors.device)
        rho = rho.index_add(0, edge_index[0], phi)
        epair = torch.zeros_like(rho).index_add(0, edge_index[0], pair)
        s_local = species[:n_local]
        return self.e0[s_local] + self.B[s_local] * (torch.sqrt(1.0 + rho) - 1.0) + epair


def save_toy_model(
    path: Path, type_names: list[str], cutoff: float = 4.5, *, abi_version: int = abi.ABI_VERSION
) -> Path:
    """Script and save a ToyManyBody with the ``mdval.json`` metadata; return the path."""
    meta = {
        "abi": abi_version,
        "cutoff": cutoff,
        "type_names": list(type_names),
        "compute_dtype": "float64",
        "architecture": "toy_many_body",
        "activation": "sqrt",
        "optimizer": "none",
        "training_data": {},
        "metrics": {},
        "mdval_version": "test",
        "created": "1970-01-01T00:00:00Z",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript on purpose
        module = torch.jit.script(ToyManyBody(cutoff, len(type_names)))
        torch.jit.save(module, str(path), _extra_files={abi.METADATA_FILENAME: json.dumps(meta)})
    return Path(path)


def reference_results(model_path: Path, atoms, species: np.ndarray) -> dict:
    """Energy (eV), forces (eV/Å), virial W (3x3, eV), per-atom energies and per-atom virials
    (N x 3 x 3, eV) of ``atoms`` from the model file, by the ABI recipe with no ghost atoms:
    nodes are the atoms themselves, edges carry the periodic image shift."""
    from ase.neighborlist import neighbor_list

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        extra = {abi.METADATA_FILENAME: ""}
        model = torch.jit.load(str(model_path), _extra_files=extra)
    cutoff = json.loads(extra[abi.METADATA_FILENAME])["cutoff"]
    n = len(atoms)
    i, j, shift = neighbor_list("ijS", atoms, cutoff)
    vec = atoms.positions[j] + shift @ atoms.cell.array - atoms.positions[i]
    edge_vectors = torch.tensor(vec, dtype=torch.float64, requires_grad=True)
    edge_index = torch.tensor(np.stack([i, j]), dtype=torch.int64)
    energies = model(torch.tensor(species, dtype=torch.int64), edge_index, edge_vectors, n)
    (g,) = torch.autograd.grad(energies.sum(), edge_vectors)
    g = g.numpy()
    forces = np.zeros((n, 3))
    np.add.at(forces, i, g)
    np.add.at(forces, j, -g)
    rg = -vec[:, :, None] * g[:, None, :]  # -r ⊗ g per edge
    atom_virial = np.zeros((n, 3, 3))
    np.add.at(atom_virial, i, 0.5 * rg)
    np.add.at(atom_virial, j, 0.5 * rg)
    e = energies.detach().numpy()
    return {
        "energy": float(e.sum()),
        "energies": e,
        "forces": forces,
        "virial": rg.sum(axis=0),
        "atom_virials": atom_virial,
    }


def write_lammps_data(path: Path, atoms, types: np.ndarray, ids: np.ndarray, n_types: int) -> None:
    """Write a LAMMPS atomic data file; the cell must be lower triangular (restricted triclinic)."""
    cell = atoms.cell.array.tolist()  # plain floats: repr() is round-trip exact
    if abs(cell[0][1]) + abs(cell[0][2]) + abs(cell[1][2]) > 1e-12:
        raise ValueError(f"expected a lower-triangular cell, got {cell}")
    lines = [
        "mdval test data",
        "",
        f"{len(atoms)} atoms",
        f"{n_types} atom types",
        "",
        f"0 {cell[0][0]!r} xlo xhi",
        f"0 {cell[1][1]!r} ylo yhi",
        f"0 {cell[2][2]!r} zlo zhi",
        f"{cell[1][0]!r} {cell[2][0]!r} {cell[2][1]!r} xy xz yz",
        "",
        "Masses",
        "",
    ]
    lines += [f"{t} 63.546" for t in range(1, n_types + 1)]
    lines += ["", "Atoms # atomic", ""]
    for k, (x, y, z) in enumerate(atoms.positions.tolist()):
        lines.append(f"{ids[k]} {types[k]} {x!r} {y!r} {z!r}")
    Path(path).write_text("\n".join(lines) + "\n")


def run_lmp(
    script: str, workdir: Path, *, nprocs: int = 1, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run ``lmp -in`` (under ``mpirun -np nprocs`` when nprocs > 1) in ``workdir``."""
    workdir = Path(workdir)
    (workdir / "in.lmp").write_text(script)
    cmd = [LMP, "-in", "in.lmp", "-log", "log.lammps", "-screen", "none"]
    if nprocs > 1:
        cmd = [MPIRUN, "-np", str(nprocs)] + cmd
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
    log = workdir / "log.lammps"
    proc.log = log.read_text() if log.exists() else ""  # type: ignore[attr-defined]
    if check and proc.returncode != 0:
        raise RuntimeError(f"lmp failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n{proc.log[-3000:]}")
    return proc


def read_dump(path: Path) -> tuple[list[str], np.ndarray]:
    """Columns and rows of a one-frame ``dump custom`` file, rows sorted by atom id."""
    lines = Path(path).read_text().splitlines()
    k = next(n for n, line in enumerate(lines) if line.startswith("ITEM: ATOMS"))
    columns = lines[k].split()[2:]
    data = np.array([[float(v) for v in line.split()] for line in lines[k + 1 :] if line.strip()])
    return columns, data[np.argsort(data[:, 0])]


def read_thermo(log: str) -> dict[str, float]:
    """The last thermo row of a log, keyed by the header names."""
    lines = log.splitlines()
    k = max(n for n, line in enumerate(lines) if line.split()[:1] == ["Step"])
    return dict(zip(lines[k].split(), (float(v) for v in lines[k + 1].split())))
