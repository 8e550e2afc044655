"""Serving models: export/load of model files (ABI v1), the ASE calculator, the LAMMPS plugin.

Inference code: nothing here imports mdval.train.
"""

from mdval.deploy.model_file import ModelFile, ModelFileError, export, load, read_metadata

__all__ = ["ModelFile", "ModelFileError", "export", "load", "read_metadata"]
