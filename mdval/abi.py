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

Callers refuse any other output with the one-line message of :func:`energies_contract_error`
(the ASE calculator, ``mdval test`` and ``pair_style taafs`` word it the same).

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
    "activation": (
        "str | dict, ABI v1 summary for older readers: the spec string when every sub-network has "
        'the same, else {network: spec}; mdval reads the structured "activations" (see below)'
    ),
    "optimizer": 'str, e.g. "adam", "ekf", "rlekf", or "none"',
    "training_data": "dict, name, hash and sizes of the training data",
    "metrics": "dict, test RMSE/MAE (may be empty for an untrained model)",
    "mdval_version": "str, the mdval version that wrote the file",
    "created": "str, ISO-8601 UTC time of export",
}

COMPUTE_DTYPES: tuple[str, ...] = ("float64", "float32")

#: The structured activations of a model (written by mdval.nn.introspect.activations_metadata;
#: files written before it have only ``activation``, which activations_from_metadata reads too)::
#:
#:     "activations": {
#:       "networks": {NETWORK: {"spec": str,         # canonical spec, "taafs:basis=bspline,grid=5,scope=layer"
#:                              "family": str,       # "tanh", ..., "irelu", "laaf", "taafs"
#:                              "options": {...},    # every option with its default filled in
#:                              "trainable": bool}}, # True for laaf and taafs
#:       "layers": [{"name": str,       # qualified module name, "embedding_nets.0.layers.1.activation"
#:                   "network": str,    # NETWORK: "embedding" | "fitting"
#:                   "species": str,    # element symbol of the sub-network
#:                   "depth": int,      # 0 for the first hidden layer of the sub-network
#:                   "spec": str, "width": int, "trainable": bool}]
#:     }
ACTIVATIONS_METADATA_KEY: str = "activations"

#: Order of the LAMMPS virial array: xx, yy, zz, xy, xz, yz.
LAMMPS_VIRIAL_ORDER: tuple[tuple[int, int], ...] = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))

#: dtype of the per-atom energies ``forward`` returns.
ENERGIES_DTYPE: str = "float64"
#: The fix named by every message of :func:`energies_contract_error`.
ENERGIES_FIX: str = "forward() must return one float64 energy (eV) per local atom: fix the model and export it again"


def energies_contract_error(shape, dtype: str, n_local: int) -> str | None:
    """The one-line message for a ``forward`` output that breaks the contract, or None if it keeps it.

    ``shape``: the output tensor's shape (a sequence of ints), or None when the output is not a
    tensor, in which case ``dtype`` is the name of its type; ``dtype``: the tensor's dtype name
    ("float64", "float32", "int64", ...). ``TaafsModel::atom_energies``
    (pair_style/src/taafs_model.cpp) words it the same, so that ``lmp``, the ASE calculator and
    ``mdval test`` name the problem the same way.
    """
    expected = f"expected [{n_local}] (one per local atom, ABI {ABI_VERSION})"
    if shape is None:
        problem = f"model returned a {dtype} instead of a tensor of energies: {expected}"
    elif tuple(shape) != (n_local,):
        shown = ", ".join(str(int(n)) for n in shape)
        problem = f"model returned energies of shape [{shown}]: {expected}"
    elif dtype != ENERGIES_DTYPE:
        problem = (
            f"model returned energies of dtype {dtype}: expected {ENERGIES_DTYPE} "
            f"(one per local atom, ABI {ABI_VERSION})"
        )
    else:
        return None
    return f"{problem}; {ENERGIES_FIX}"
