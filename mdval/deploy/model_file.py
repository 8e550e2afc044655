"""Export and load mdval model files: TorchScript plus ``mdval.json`` metadata (ABI v1).

``export(model, path, metadata)`` scripts a model, fills in every metadata key of the contract
(mdval/abi.py) and writes the file atomically. ``load(path)`` checks the file and its metadata and
returns a :class:`ModelFile`; ``read_metadata(path)`` reads only the metadata, straight from the
zip archive, without deserialising or running the model.

Every problem with a file raises :class:`ModelFileError` (a ``ValueError``) whose message names
the file, what was expected, what was found, and what to do.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import json
import os
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

from mdval import fileio
from mdval import __version__
from mdval.abi import ABI_VERSION, COMPUTE_DTYPES, METADATA_FILENAME, REQUIRED_METADATA_KEYS
from mdval.nn.activations import set_first_derivative_only


class ModelFileError(ValueError):
    """A model file that mdval cannot serve, with the reason and the fix in its message."""


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
    meta: dict = {
        "abi": ABI_VERSION,
        "cutoff": float(model.cutoff),
        "type_names": list(model.type_names),
        "compute_dtype": compute_dtype,
        "architecture": model.architecture,
        "activation": _activation_label(model),
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


def _activation_label(model: nn.Module) -> str | dict:
    specs = model.activation_specs() if hasattr(model, "activation_specs") else {}
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
        raise ModelFileError(
            f"{path}: metadata type_names must be a non-empty list of element symbols, got {names!r}"
        )
    if meta["compute_dtype"] not in COMPUTE_DTYPES:
        raise ModelFileError(
            f"{path}: metadata compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}, "
            f"got {meta['compute_dtype']!r}"
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
        # The plain TorchScript interpreter, as in the LAMMPS plugin: as fast as the profiling
        # executor here, never re-profiles on new shapes, and cannot lose the gradient path
        # (the profiling executor did, for a model first called without gradients).
        with torch.jit.optimized_execution(False):
            return self.module(species, edge_index, edge_vectors, n_local)


def load(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> ModelFile:
    """Load and check a model file; raise :class:`ModelFileError` with the reason if it is bad."""
    path = Path(path)
    meta = read_metadata(path)
    device = torch.device(device)
    try:
        with quiet_torchscript():
            module = torch.jit.load(str(path), map_location=device)
    except Exception as exc:  # torch raises RuntimeError with a long C++ trace
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(
            f"{path} could not be loaded by TorchScript ({reason}); the file is corrupt or from an "
            "incompatible torch; re-export it with `mdval export CHECKPOINT`"
        ) from None
    module.eval()
    return ModelFile(module, meta, path, device)
