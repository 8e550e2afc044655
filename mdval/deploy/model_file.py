"""Export and load mdval model files: TorchScript plus ``mdval.json`` metadata (ABI v1).

``export(model, path, metadata)`` scripts a model, fills in every metadata key of the contract
(mdval/abi.py) and writes the file atomically. ``load(path)`` checks the file and its metadata and
returns a :class:`ModelFile`; ``read_metadata(path)`` reads only the metadata, straight from the
zip archive, without deserialising or running the model.

Every problem with a file raises :class:`ModelFileError` (a ``ValueError``) whose message names
the file, what was expected, what was found, and what to do. That includes a network that does not
match its metadata (checked at load, see :func:`load`) and, at every call, a ``forward`` that fails
or returns energies of the wrong shape or dtype (:func:`mdval.abi.energies_contract_error`, worded
as ``pair_style taafs`` words it). NaN or inf energies or forces raise :class:`ModelOutputError`
(:func:`non_finite_atoms` finds them; the ASE calculator and ``mdval test`` check every result).
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import json
import math
import os
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

from mdval import __version__, fileio
from mdval.abi import (
    ABI_VERSION,
    ACTIVATIONS_METADATA_KEY,
    COMPUTE_DTYPES,
    METADATA_FILENAME,
    REQUIRED_METADATA_KEYS,
    energies_contract_error,
)
from mdval.nn.activations import set_first_derivative_only
from mdval.nn.introspect import activations_metadata


class ModelFileError(ValueError):
    """A model file that mdval cannot serve, with the reason and the fix in its message."""


class ModelOutputError(ValueError):
    """A model that returned NaN or inf energies or forces; the message names the atoms."""


def torch_reason(exc: BaseException) -> str:
    """The one line of a torch exception that says what went wrong.

    A TorchScript error ends with the Python exception the scripted code raised (``builtins.
    ValueError: ...``) after a long trace; a C++ error starts with its message, then a stack.
    """
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if "Traceback of TorchScript" in str(exc):
        return lines[-1].removeprefix("builtins.")
    return lines[0]


@contextlib.contextmanager
def quiet_torchscript():
    """Silence torch 2.13's deprecation warnings for TorchScript, which we use on purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit")
        yield


class Float32Model(nn.Module):
    """Runs a model in float32 behind the float64 ABI interface."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.to(torch.float32)

    def forward(
        self, species: torch.Tensor, edge_index: torch.Tensor, edge_vectors: torch.Tensor, n_local: int
    ) -> torch.Tensor:
        energies = self.model(species, edge_index, edge_vectors.to(torch.float32), n_local)
        return energies.to(torch.float64)


def model_metadata(model: nn.Module, metadata: dict | None = None, compute_dtype: str = "float64") -> dict:
    """The metadata dict for ``model``: ABI keys from the model, overridden/extended by ``metadata``."""
    activations = activations_metadata(model)
    meta: dict = {
        "abi": ABI_VERSION,
        "cutoff": float(model.cutoff),
        "type_names": list(model.type_names),
        "compute_dtype": compute_dtype,
        "architecture": model.architecture,
        "activation": _activation_summary(activations["networks"]),
        ACTIVATIONS_METADATA_KEY: activations,
        "optimizer": "none",
        "training_data": {},
        "metrics": {},
        "mdval_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if hasattr(model, "config"):
        meta["config"] = model.config()
        meta["n_parameters"] = sum(p.numel() for p in model.parameters())
    meta.update(metadata or {})
    meta["abi"] = ABI_VERSION
    meta["compute_dtype"] = compute_dtype
    return meta


def _activation_summary(networks: dict) -> str | dict:
    """The ABI v1 key ``activation``, kept for readers older than ``activations``: the spec
    string when every sub-network has the same, else ``{network: spec}``."""
    specs = {network: spec["spec"] for network, spec in networks.items()}
    values = set(specs.values())
    if len(values) == 1:
        return values.pop()
    return specs


def export(
    model: nn.Module,
    path: str | os.PathLike,
    metadata: dict | None = None,
    *,
    compute_dtype: str = "float64",
) -> Path:
    """Script ``model`` and write it with its metadata to ``path`` (atomically). Returns the path.

    ``metadata`` adds or overrides keys (``optimizer``, ``training_data``, ``metrics``, ...);
    ``compute_dtype`` "float32" runs the network in float32 behind the float64 interface.
    """
    if compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype must be one of {COMPUTE_DTYPES}, got {compute_dtype!r}")
    meta = model_metadata(model, metadata, compute_dtype)
    module = copy.deepcopy(model).eval()
    for p in module.parameters():
        p.requires_grad_(False)
    # Served models need exact first derivatives only (energies, forces, virials).
    meta["first_derivative_only"] = set_first_derivative_only(module, True) > 0
    if compute_dtype == "float32":
        module = Float32Model(module)
    with quiet_torchscript():
        scripted = torch.jit.script(module)
    with fileio.atomic_path(path) as tmp, quiet_torchscript():
        torch.jit.save(scripted, str(tmp), _extra_files={METADATA_FILENAME: json.dumps(meta, indent=1)})
    return Path(path)


def read_metadata(path: str | os.PathLike) -> dict:
    """The checked metadata of a model file, read from the archive without loading the model."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file not found: {path}; check the path (exported models end in .pt)")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{path} is not a TorchScript model file (not a zip archive): the file is corrupt or "
            "of another kind; re-export it with `mdval export CHECKPOINT`"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("/extra/" + METADATA_FILENAME)]
            if not names:
                raise ModelFileError(
                    f"{path} has no {METADATA_FILENAME} metadata: it was not written by "
                    "mdval.deploy.export; re-export it with `mdval export CHECKPOINT`"
                )
            text = archive.read(names[0]).decode("utf-8")
    except zipfile.BadZipFile as exc:
        raise ModelFileError(f"{path} is a corrupt zip archive ({exc}); re-export the model") from None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: {METADATA_FILENAME} is not valid JSON ({exc})") from None
    check_metadata(meta, path)
    return meta


def check_metadata(meta: dict, path: str | os.PathLike = "<metadata>") -> None:
    """Refuse metadata that breaks ABI v1, naming the key, the expected and the given value."""
    if not isinstance(meta, dict):
        raise ModelFileError(f"{path}: {METADATA_FILENAME} must hold a JSON object, got {type(meta).__name__}")
    if "abi" in meta and meta["abi"] != ABI_VERSION:
        raise ModelFileError(
            f"{path} has abi={meta['abi']!r}, but this mdval serves abi {ABI_VERSION}; "
            "use the mdval version that wrote it or re-export the model"
        )
    missing = [k for k in REQUIRED_METADATA_KEYS if k not in meta]
    if missing:
        raise ModelFileError(
            f"{path}: metadata is missing required key(s) {', '.join(missing)} "
            f"(ABI v{ABI_VERSION} needs {', '.join(REQUIRED_METADATA_KEYS)}); re-export the model"
        )
    cutoff = meta["cutoff"]
    if isinstance(cutoff, bool) or not isinstance(cutoff, (int, float)) or not cutoff > 0:
        raise ModelFileError(f"{path}: metadata cutoff must be a positive number in Å, got {cutoff!r}")
    names = meta["type_names"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise ModelFileError(f"{path}: metadata type_names must be a non-empty list of element symbols, got {names!r}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ModelFileError(
            f"{path}: metadata type_names {names} name {', '.join(repeated)} more than once; each "
            "element must have one species index: re-export the model with `mdval export CHECKPOINT`"
        )
    if meta["compute_dtype"] not in COMPUTE_DTYPES:
        raise ModelFileError(
            f"{path}: metadata compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {meta['compute_dtype']!r}"
        )


class ModelFile:
    """A loaded model file: the TorchScript module, its metadata and where it came from.

    The one place that turns a file into something callable, so that another format (e.g.
    AOTInductor ``.pt2``) can be added here later.
    """

    def __init__(self, module: torch.jit.ScriptModule, metadata: dict, path: Path, device: torch.device):
        self.module = module
        self.metadata = metadata
        self.path = path
        self.device = device

    @property
    def cutoff(self) -> float:
        """Neighbour cutoff in Å."""
        return float(self.metadata["cutoff"])

    @property
    def type_names(self) -> list[str]:
        return list(self.metadata["type_names"])

    def __call__(self, species, edge_index, edge_vectors, n_local: int) -> torch.Tensor:
        """The per-atom energies [n_local] (eV); a failing ``forward`` or an output that breaks the
        contract raises :class:`ModelFileError` in one line, as ``pair_style taafs`` does."""
        try:
            energies = self.forward(species, edge_index, edge_vectors, n_local)
        except torch.OutOfMemoryError:  # not a problem of the file: let the caller see it as is
            raise
        except Exception as exc:  # TorchScript errors carry a long trace; keep its last line
            raise ModelFileError(
                f"{self.path}: model evaluation failed on {n_local} atoms and "
                f"{edge_index.shape[1]} edges: {torch_reason(exc)}"
            ) from None
        self.check_energies(energies, n_local)
        return energies

    def forward(self, species, edge_index, edge_vectors, n_local: int):
        """The module's raw output, unchecked."""
        # The plain TorchScript interpreter, as in the LAMMPS plugin: as fast as the profiling
        # executor here, never re-profiles on new shapes, and cannot lose the gradient path
        # (the profiling executor did, for a model first called without gradients).
        with torch.jit.optimized_execution(False):
            return self.module(species, edge_index, edge_vectors, n_local)

    def check_energies(self, energies, n_local: int) -> None:
        """Refuse a ``forward`` output that is not a float64 tensor [n_local]."""
        if isinstance(energies, torch.Tensor):
            dtype = str(energies.dtype).removeprefix("torch.")  # "float64", as the ABI names it
            problem = energies_contract_error(energies.shape, dtype, n_local)
        else:
            problem = energies_contract_error(None, type(energies).__name__, n_local)
        if problem:
            raise ModelFileError(f"{self.path}: {problem}")


def _declared_type_names(module) -> list[str] | None:
    """The element names the network was built with, where it says (mdval's own models keep
    ``type_names``, inside the float32 wrapper too); None for any other module keeping the ABI."""
    for candidate in (module, getattr(module, "model", None)):
        names = getattr(candidate, "type_names", None)
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            return names
    return None


def _probe_inputs(species_index: int, cutoff: float, device: torch.device) -> tuple:
    """ABI inputs of one atom of ``species_index`` in a chain periodic along x with period
    cutoff / 2: its two periodic images at ±cutoff / 2 are its only neighbours."""
    species = torch.tensor([species_index], dtype=torch.long, device=device)
    edge_index = torch.zeros(2, 2, dtype=torch.long, device=device)
    vectors = torch.tensor(
        [[0.5 * cutoff, 0.0, 0.0], [-0.5 * cutoff, 0.0, 0.0]], dtype=torch.float64, device=device
    ).requires_grad_(True)
    return species, edge_index, vectors, 1


def check_network_species(model_file: ModelFile) -> None:
    """Refuse metadata ``type_names`` that do not match the network, naming both.

    Species index k is served as ``type_names[k]``, so a mismatch would silently evaluate one
    element with another's weights. A network that declares its own ``type_names`` (mdval's
    models) must declare exactly the metadata's, in the same order: a shorter or reordered list
    is an edited or wrongly written file, never needed (ASE and LAMMPS already serve structures
    with a subset of the elements). Any network, declared or not, must then evaluate one atom of
    every species index 0..n-1: that catches metadata listing more elements than a network
    which does not declare its own has (one with fewer cannot be told from a subset, and is
    served as one).
    """
    path, names = model_file.path, model_file.type_names
    declared = _declared_type_names(model_file.module)
    if declared is not None and declared != names:
        raise ModelFileError(
            f"{path}: metadata type_names {names} do not match the type_names the network was "
            f"built with, {declared}; the metadata was edited or written wrongly: re-export the "
            "model with `mdval export CHECKPOINT`"
        )
    for index, name in enumerate(names):
        probe = _probe_inputs(index, model_file.cutoff, model_file.device)
        try:
            with torch.enable_grad():
                energies = model_file.forward(*probe)
        except Exception as exc:
            cause = (
                "the metadata lists more elements than the network was built for"
                if index
                else "the model file is broken"
            )
            raise ModelFileError(
                f"{path}: the network fails on species index {index} ({name}) of metadata "
                f"type_names {names}: {torch_reason(exc)}; {cause}: re-export the model with "
                "`mdval export CHECKPOINT`"
            ) from None
        model_file.check_energies(energies, 1)


def non_finite_atoms(atom_energy: torch.Tensor, forces: torch.Tensor) -> torch.Tensor | None:
    """Indices (CPU, int64) of the atoms whose energy or force is NaN or inf, or None if there are
    none.

    A sum is NaN or inf when any term is, so the MD hot path costs two sums (5 us for 864 atoms,
    0.14 ms for 108 000; isfinite masks took 20-30x that); the per-atom masks are built only when
    a sum is not finite (it may also have overflowed: then no atom is reported).
    """
    if math.isfinite(float(atom_energy.sum()) + float(forces.sum())):
        return None
    finite = torch.isfinite(atom_energy) & torch.isfinite(forces).all(dim=1)
    bad = torch.nonzero(~finite).flatten().cpu()
    return bad if bad.numel() else None


def non_finite_error(path, bad_atoms, n_atoms: int, where: str = "") -> ModelOutputError:
    """The error for the atoms ``bad_atoms`` (of ``n_atoms``) of :func:`non_finite_atoms`;
    ``where`` says where they are (" in frame 3 of the data")."""
    bad = [int(i) for i in bad_atoms]
    shown = ", ".join(str(i) for i in bad[:5]) + (", ..." if len(bad) > 5 else "")
    return ModelOutputError(
        f"{path} returned NaN or inf energies or forces{where} for {len(bad)} of {n_atoms} atoms "
        f"(atom {shown}): the model file is broken (export it again) or the structure is outside "
        "what the model can handle (atoms too close together, or far from its training data)"
    )


def load(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> ModelFile:
    """Load and check a model file; raise :class:`ModelFileError` with the reason if it is bad.

    Besides the metadata, the network is checked against its ``type_names`` by evaluating one
    atom of each species (:func:`check_network_species`; a few ms).
    """
    path = Path(path)
    meta = read_metadata(path)
    device = torch.device(device)
    try:
        with quiet_torchscript():
            module = torch.jit.load(str(path), map_location=device)
    except Exception as exc:  # torch raises RuntimeError with a long C++ trace
        raise ModelFileError(
            f"{path} could not be loaded by TorchScript ({torch_reason(exc)}); the file is corrupt "
            "or from an incompatible torch; re-export it with `mdval export CHECKPOINT`"
        ) from None
    module.eval()
    model_file = ModelFile(module, meta, path, device)
    check_network_species(model_file)
    return model_file
