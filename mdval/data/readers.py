"""Read labelled frames from any supported file into :class:`~mdval.data.frames.Frame` objects.

=================  ==========================================  ==============================
format             files                                       through
=================  ==========================================  ==============================
``extxyz``         ``*.xyz``, ``*.extxyz``                      ase.io (energy/forces/stress)
any ASE format     ``*.traj``, ``vasprun.xml``, ...            ase.io.read(index=":")
``deepmd/npy``     a directory with ``type.raw`` + ``set.*/``  dpdata.LabeledSystem
``deepmd/raw``     a directory with ``type.raw`` + ``*.raw``   dpdata.LabeledSystem
``vasp/outcar``    ``OUTCAR``                                  dpdata.LabeledSystem
``cp2k/output``    CP2K output                                 dpdata.LabeledSystem
``qe/pw/scf``      Quantum ESPRESSO pw.x output                dpdata.LabeledSystem
``mlearn``         mlearn JSON (``data/mlearn/*/*.json``)      :mod:`mdval.data.mlearn`
=================  ==========================================  ==============================

Every frame is validated (:func:`~mdval.data.frames.validate_frame`): NaN or inf labels, a
frame without forces and an empty file raise ValueError naming the file and frame index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mdval.data.frames import Frame, validate_frames, virial_from_ase_stress
from mdval.data.mlearn import looks_like_mlearn, read_mlearn

#: Formats read through dpdata.LabeledSystem (their dpdata ``fmt`` name).
DPDATA_FORMATS: tuple[str, ...] = ("deepmd/npy", "deepmd/raw", "vasp/outcar", "cp2k/output", "qe/pw/scf")


def detect_format(path) -> str:
    """Guess the format from the path: a directory is DeePMD, ``OUTCAR`` is VASP, ``*.json`` is
    mlearn, ``*.xyz``/``*.extxyz`` is extxyz, anything else is left to ASE (``"ase"``)."""
    path = Path(path)
    if path.is_dir():
        if list(path.glob("set.*")):
            return "deepmd/npy"
        if (path / "coord.raw").exists():
            return "deepmd/raw"
        raise ValueError(
            f"{path}: a directory, but neither DeePMD npy (set.*/) nor raw (coord.raw); "
            f"give a file or a DeePMD system directory"
        )
    name = path.name.lower()
    if name.startswith("outcar"):
        return "vasp/outcar"
    if name.endswith(".json") and looks_like_mlearn(path):
        return "mlearn"
    if name.endswith((".xyz", ".extxyz")):
        return "extxyz"
    return "ase"


def read_frames(path, format: str | None = None, *, require_forces: bool = True, type_names=None) -> list[Frame]:
    """All frames of ``path``, validated. ``format`` is one of ``extxyz``, ``mlearn``, the
    dpdata names in :data:`DPDATA_FORMATS`, ``ase`` (ASE guesses) or any ASE format name;
    ``None`` guesses from the path (:func:`detect_format`). With ``type_names`` (element
    symbols), an element outside the type map is an error."""
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise FileNotFoundError(f"{source}: no such file or directory")
    fmt = format or detect_format(path)
    if fmt == "mlearn":
        frames = read_mlearn(path)
    elif fmt in DPDATA_FORMATS:
        frames = _read_dpdata(path, fmt)
    else:
        frames = _read_ase(path, None if fmt == "ase" else fmt)
    validate_frames(frames, source=source, require_forces=require_forces, type_names=type_names)
    return frames


def _read_ase(path: Path, fmt: str | None) -> list[Frame]:
    """Frames through ase.io.read(index=":"), labels from the attached calculator results
    (or, failing that, ``info["energy"]`` and the ``forces`` array)."""
    import ase.io

    source = str(path)
    try:
        images = ase.io.read(source, index=":", format=fmt)
    except StopIteration:  # some ASE readers signal an empty file this way
        images = []
    except Exception as error:  # ASE raises many kinds; report them in our words
        raise ValueError(f"{source}: ASE could not read this file as {fmt or 'any known format'}: {error}") from error
    if not isinstance(images, list):
        images = [images]
    frames = []
    for index, atoms in enumerate(images):
        results = dict(atoms.calc.results) if atoms.calc is not None else {}
        energy = results.get("energy", results.get("free_energy", atoms.info.get("energy")))
        forces = results.get("forces", atoms.arrays.get("forces"))
        stress = results.get("stress", atoms.info.get("stress"))
        virial = results.get("virial", atoms.info.get("virial"))
        volume = abs(float(np.linalg.det(atoms.cell.array)))
        if virial is not None:
            virial = np.asarray(virial, dtype=np.float64).reshape(3, 3)
        elif stress is not None and volume > 0.0:
            virial = virial_from_ase_stress(stress, volume)
        info = {k: v for k, v in atoms.info.items() if k not in ("energy", "stress", "virial")}
        frames.append(
            Frame(
                symbols=atoms.get_chemical_symbols(),
                positions=atoms.positions,
                cell=atoms.cell.array,
                pbc=atoms.pbc,
                energy=energy,
                forces=forces,
                virial=virial,
                source=source,
                index=index,
                info=info,
            )
        )
    return frames


def _read_dpdata(path: Path, fmt: str) -> list[Frame]:
    """Frames through dpdata.LabeledSystem; dpdata's ``virials`` are already W = -σV in eV."""
    import dpdata

    source = str(path)
    try:
        system = dpdata.LabeledSystem(source, fmt=fmt)
    except Exception as error:  # dpdata raises many kinds; report them in our words
        raise ValueError(f"{source}: dpdata could not read this as {fmt}: {error}") from error
    data = system.data
    names = list(data["atom_names"])
    symbols = [names[t] for t in data["atom_types"]]
    nopbc = bool(data.get("nopbc", False))
    n_frames = len(data.get("coords", []))
    frames = []
    for index in range(n_frames):
        virials = data.get("virials")
        frames.append(
            Frame(
                symbols=symbols,
                positions=data["coords"][index],
                cell=data["cells"][index],
                pbc=np.full(3, not nopbc),
                energy=data["energies"][index],
                forces=data["forces"][index] if "forces" in data else None,
                virial=virials[index] if virials is not None else None,
                source=source,
                index=index,
                info={"format": fmt},
            )
        )
    return frames


def read_many(paths, format: str | None = None, **kwargs) -> list[Frame]:
    """Frames of several files concatenated, each keeping its own source and index."""
    frames: list[Frame] = []
    for path in paths:
        frames.extend(read_frames(path, format, **kwargs))
    return frames
