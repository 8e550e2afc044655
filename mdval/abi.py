"""The model file contract, ABI v1 (DESIGN.md section 3), in one place.

Every exported model is a TorchScript module whose ``forward`` is::

    forward(species, edge_index, edge_vectors, n_local) -> atom_energies

=============  =======================  =====  ================================================
name           shape / dtype            unit   meaning
=============  =======================  =====  ================================================
species        [n_nodes] int64          -      model species index (0..n_types-1) of each node;
                                               local atoms first, then ghost/periodic images
edge_index     [2, n_edges] int64       -      row 0: centre i (< n_local); row 1: neighbour
                                               j (< n_nodes). Full list: both directions.
edge_vectors   [n_edges, 3] float64     Å      r_j - r_i, periodic images applied
n_local        int                      -      number of local (centre) atoms
(return)       [n_local] float64        eV     energy of each local atom
=============  =======================  =====  ================================================

Forces and virial come from autograd of the summed energy with respect to ``edge_vectors``:
``g = dE/d(edge_vectors)``, ``F_i += g``, ``F_j -= g``, virial ``W = -sum(edge_vector ⊗ g)``
(eV).  Per-atom virial: half of each edge's ``-r ⊗ g`` to i and half to j.  Edges at or beyond
the cutoff are allowed and must contribute exactly zero.

The metadata travels inside the file as the extra file ``mdval.json``.
"""

from __future__ import annotations

ABI_VERSION: int = 1
METADATA_FILENAME: str = "mdval.json"

#: Metadata keys every model file must carry, with their meaning.
REQUIRED_METADATA_KEYS: dict[str, str] = {
    "abi": "int, the model-file ABI version (1)",
    "cutoff": "float, neighbour cutoff radius in Å",
    "type_names": "list[str], element symbols in species-index order",
    "compute_dtype": '"float64" | "float32", the precision the network runs in',
    "architecture": 'str, e.g. "deeppot_se" or "behler_parrinello"',
    "activation": "str, the activation spec string (or a dict of them per sub-network)",
    "optimizer": 'str, e.g. "adam", "ekf", "rlekf", or "none"',
    "training_data": "dict, name, hash and sizes of the training data",
    "metrics": "dict, test RMSE/MAE (may be empty for an untrained model)",
    "mdval_version": "str, the mdval version that wrote the file",
    "created": "str, ISO-8601 UTC time of export",
}

COMPUTE_DTYPES: tuple[str, ...] = ("float64", "float32")

#: Voigt order of ASE stress: xx, yy, zz, yz, xz, xy.
ASE_VOIGT_ORDER: tuple[tuple[int, int], ...] = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
#: Order of the LAMMPS virial array: xx, yy, zz, xy, xz, yz.
LAMMPS_VIRIAL_ORDER: tuple[tuple[int, int], ...] = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
