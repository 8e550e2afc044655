"""A float32 copy of a float64 model file: the same network computing in float32 behind the
float64 ABI (:class:`mdval.deploy.model_file.Float32Model`), for float64/float32 A/B runs.

The copy's metadata is the source's with ``compute_dtype = "float32"``, ``derived_from`` (the
source's absolute path) and ``derived_from_sha256``. TorchScript does not save byte-identical
files twice, and MD run folders know their model by sha256 (mdval/md/run_folder.py), so an
existing copy of the same source is kept rather than written again: runs made with it stay
resumable.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mdval import fileio


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def float32_copy(model_path, out_path, *, replace: bool = False) -> Path:
    """Write (or keep) the float32 copy of the float64 model file ``model_path`` at ``out_path``.

    An existing ``out_path`` copied from this same source (by sha256) is kept. One copied from
    another model is refused (ValueError) unless ``replace``; so is a source that already computes
    in float32.
    """
    import torch

    from mdval.abi import METADATA_FILENAME
    from mdval.deploy.model_file import Float32Model, quiet_torchscript, read_metadata

    model_path, out_path = Path(model_path), Path(out_path)
    meta = read_metadata(model_path)
    if meta["compute_dtype"] == "float32":
        raise ValueError(f"{model_path} already computes in float32; the float32 copy needs a float64 model file")
    source_sha256 = _sha256(model_path)
    if out_path.exists() and not replace:
        earlier = read_metadata(out_path).get("derived_from_sha256")
        if earlier == source_sha256:
            return out_path
        raise ValueError(
            f"{out_path} is the float32 copy of another model file or of an earlier version of it "
            f"(sha256 {str(earlier)[:12]}, not {source_sha256[:12]} of {model_path}); use another "
            "--out folder, or --overwrite to replace it"
        )
    meta.update(compute_dtype="float32", derived_from=str(model_path.resolve()), derived_from_sha256=source_sha256)
    with quiet_torchscript():
        scripted = torch.jit.script(Float32Model(torch.jit.load(str(model_path), map_location="cpu")))
        with fileio.atomic_path(out_path) as tmp:
            torch.jit.save(scripted, str(tmp), _extra_files={METADATA_FILENAME: json.dumps(meta, indent=1)})
    return out_path
