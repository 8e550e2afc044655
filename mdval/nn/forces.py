"""Energy, forces and virial from any ABI v1 model, by autograd on the edge vectors.

With g_e = dE/d(r_e) for edge e = (i, j), r_e = r_j - r_i (Å):

    F_i += g_e,  F_j -= g_e                      (eV/Å)
    W   = -sum_e r_e ⊗ g_e  = sum_i r_i ⊗ F_i    (eV; stress sigma = -W / V)
    W_i = -1/2 r_e ⊗ g_e to i and to j           (per-atom virial, eV)

This is the calculation the ASE calculator and the LAMMPS plugin both do (DESIGN.md section 3).
"""

from __future__ import annotations

from typing import Dict, Optional

import torch


def energy_forces_virial(
    model,
    species: torch.Tensor,
    edge_index: torch.Tensor,
    edge_vectors: torch.Tensor,
    n_local: int,
    *,
    frame_index: Optional[torch.Tensor] = None,
    n_frames: int = 1,
    forces: bool = True,
    virial: bool = True,
    atom_virial: bool = False,
    create_graph: bool = False,
) -> Dict[str, torch.Tensor]:
    """Evaluate ``model`` and differentiate it.

    ``frame_index`` [n_local] (int64) assigns atoms to frames for batched training; without it all
    atoms are one frame. Returns a dict with ``atom_energy`` [n_local] (eV), ``energy``
    [n_frames] (eV) and, as asked, ``forces`` [n_local, 3] (eV/Å), ``virial`` [n_frames, 3, 3]
    (eV) and ``atom_virial`` [n_local, 3, 3] (eV). All nodes must be local (no ghost nodes): in
    Python, periodic images live in the edge vectors.
    """
    if frame_index is None:
        frame_index = torch.zeros(n_local, dtype=torch.long, device=edge_vectors.device)
    need_grad = forces or virial or atom_virial
    if need_grad and not edge_vectors.requires_grad:
        edge_vectors = edge_vectors.detach().requires_grad_(True)
    atom_energy = model(species, edge_index, edge_vectors, n_local)
    energy = torch.zeros(n_frames, dtype=atom_energy.dtype, device=atom_energy.device)
    energy = energy.index_add(0, frame_index, atom_energy)
    out: Dict[str, torch.Tensor] = {"atom_energy": atom_energy, "energy": energy}
    if not need_grad:
        return out
    if edge_vectors.shape[0] == 0:
        grad = torch.zeros_like(edge_vectors)
    else:
        (grad,) = torch.autograd.grad(atom_energy.sum(), edge_vectors, create_graph=create_graph, allow_unused=True)
        if grad is None:
            grad = torch.zeros_like(edge_vectors)
    centers, neighbors = edge_index[0], edge_index[1]
    if forces:
        f = torch.zeros(n_local, 3, dtype=grad.dtype, device=grad.device)
        f = f.index_add(0, centers, grad).index_add(0, neighbors, -grad)
        out["forces"] = f
    if virial or atom_virial:
        edge_virial = -edge_vectors.unsqueeze(2) * grad.unsqueeze(1)  # [E, 3, 3]
        if virial:
            w = torch.zeros(n_frames, 3, 3, dtype=grad.dtype, device=grad.device)
            out["virial"] = w.index_add(0, frame_index[centers], edge_virial)
        if atom_virial:
            half = 0.5 * edge_virial
            wa = torch.zeros(n_local, 3, 3, dtype=grad.dtype, device=grad.device)
            out["atom_virial"] = wa.index_add(0, centers, half).index_add(0, neighbors, half)
    return out
