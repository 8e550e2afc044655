"""Run-time files of mdval, shipped as package data (pyproject.toml) and found with
importlib.resources, so that a non-editable install (``pip install .``) has them too:

- ``md.in``: the LAMMPS input template of the LAMMPS engine (mdval.md.lammps_engine);
- ``workflows/cu_demo.toml``: the workflow spec of ``mdval demo``;
- ``models/cu/``: the model zoo that spec runs (model files, model cards, training logs);
- ``pair_style/``: the C++ sources of the LAMMPS plugin, built by ``mdval lammps build``.

In a clone, ``workflows``, ``models`` and ``pair_style`` here are symbolic links to the clone's
folders of those names, so git holds one copy; building a wheel copies the files they point to.
This module imports only the standard library: the LAMMPS plugin's entry point uses it on every
``lmp`` start.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def path(*parts: str) -> Path:
    """The real file-system path of the packaged resource ``parts`` (e.g. ``path("md.in")``).

    Symbolic links are resolved, so in a clone the path is the clone's own file. Raises
    ``FileNotFoundError`` naming the fix when the resource is missing (a partial install).
    """
    found = resources.files(__name__).joinpath("/".join(parts))
    # mdval is installed unpacked (a wheel), so its resources are plain files: CMake, glob and
    # LAMMPS need real paths, which a zipped import could not give.
    if not isinstance(found, Path) or not found.exists():
        raise FileNotFoundError(
            f"mdval's resource {'/'.join(parts)} is missing from {found}: reinstall mdval "
            "(`pip install .` from a clone, or `make install` inside it)"
        )
    return found.resolve()
