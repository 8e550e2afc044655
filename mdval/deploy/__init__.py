"""Serving models: export/load of model files (ABI v1), the ASE calculator, the LAMMPS plugin.

Inference code: nothing here imports mdval.train. Imports are lazy, because the LAMMPS plugin's
entry point (mdval.deploy.lammps_plugin) is imported by every ``lmp`` start and must not pull in
torch.
"""

from __future__ import annotations

_MODEL_FILE_NAMES = ("ModelFile", "ModelFileError", "ModelOutputError", "export", "load", "read_metadata")

__all__ = list(_MODEL_FILE_NAMES)


def __getattr__(name: str):
    if name in _MODEL_FILE_NAMES:
        from mdval.deploy import model_file

        return getattr(model_file, name)
    raise AttributeError(f"module 'mdval.deploy' has no attribute {name!r}")
