"""Read labelled frames from any supported file into :class:`~mdval.data.frames.Frame` objects.

=================  ==========================================  ==============================
format             files                                       through
=================  ==========================================  ==============================
``extxyz``         ``*.xyz``, ``*.extxyz``                      ase.io (energy/forces/stress)
any ASE format     ``*.traj``, ``vasprun.xml``, ...            ase.io.read(index=":")
``deepmd/npy``     a directory with ``type.raw`` + ``set.*/``  dpdata
``deepmd/raw``     a directory with ``type.raw`` + ``*.raw``   dpdata
``vasp/outcar``    ``OUTCAR``                                  dpdata
``cp2k/output``    CP2K output                                 dpdata (+ CP2K >= 8.1 stress)
``qe/pw/scf``      Quantum ESPRESSO pw.x output + its input    dpdata
``mlearn``         mlearn JSON (``data/mlearn/*/*.json``)      :mod:`mdval.data.mlearn`
=================  ==========================================  ==============================

Frames read through dpdata keep the file's axes (dpdata's rotation to a lower-triangular cell
is not applied). ``qe/pw/scf`` takes the cell and positions from the pw.x input next to the
output (the output's name with ``out`` replaced by ``in``); without a format, a pw.x output is
left to ASE (``espresso-out``, from the output alone), and a CP2K output needs
``format="cp2k/output"``.

Every frame is validated (:func:`~mdval.data.frames.validate_frame`): NaN or inf labels, a
frame without forces and an empty file raise ValueError naming the file and frame index.
"""

from __future__ import annotations

import re
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


#: dpdata formats whose virials dpdata builds as (printed stress) × det(cell): the sign of det
#: must be removed for a left-handed cell (W = σ_printed · |V|).
_DPDATA_STRESS_TIMES_DET = ("vasp/outcar", "cp2k/output", "qe/pw/scf")


def _read_dpdata(path: Path, fmt: str) -> list[Frame]:
    """Frames through dpdata's format reader; dpdata's ``virials`` are W = -σV in eV.

    Frames are kept as written in the file: dpdata's ``LabeledSystem(file, fmt)`` rotates VASP
    and QE frames into a lower-triangular cell (its ``rot_lower_triangular`` post-step), which
    turns positions, forces and the virial away from the file's axes, so the format's reader is
    called without that step. A left-handed cell gets its virial sign corrected, and a CP2K
    >= 8.1 stress block (``STRESS| Analytical stress tensor``), which dpdata 1.1 does not read,
    is read here."""
    import dpdata
    from dpdata.system import load_format

    source = str(path)
    try:
        data = load_format(fmt).from_labeled_system(source)
        # What LabeledSystem.from_fmt_obj does, minus the format's post-processing functions.
        system = dpdata.LabeledSystem()
        system.data = {**system.data, **data}
        system.check_data()
    except Exception as error:  # dpdata raises many kinds; report them in our words
        raise ValueError(f"{source}: dpdata could not read this as {fmt}: {error}") from error
    data = system.data
    names = list(data["atom_names"])
    symbols = [names[t] for t in data["atom_types"]]
    nopbc = bool(data.get("nopbc", False))
    n_frames = len(data.get("coords", []))
    virials = data.get("virials")
    if virials is None and fmt == "cp2k/output" and n_frames == 1:
        virials = _cp2k_analytical_stress_virial(path, data["cells"][0])
    if virials is not None and fmt in _DPDATA_STRESS_TIMES_DET:
        signs = np.sign(np.linalg.det(np.asarray(data["cells"], dtype=np.float64).reshape(-1, 3, 3)))
        virials = np.asarray(virials, dtype=np.float64).reshape(-1, 3, 3) * signs[:, None, None]
    frames = []
    for index in range(n_frames):
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


#: Units of CP2K's printed stress tensor, in GPa.
_CP2K_STRESS_UNITS_GPA = {"GPa": 1.0, "bar": 1e-4}
_CP2K_STRESS_HEADER = re.compile(r"^\s*STRESS\|\s+(?:Analytical|Numerical) stress tensor \[(\S+)\]")


def _cp2k_analytical_stress_virial(path: Path, cell) -> np.ndarray | None:
    """W [1, 3, 3] (eV) from the last ``STRESS| Analytical (or Numerical) stress tensor [unit]``
    block of a CP2K >= 8.1 output, or None if there is none. CP2K prints pv_virial / V
    (virial_methods.F), positive when compressed, so W = +σ_printed · V, as dpdata does for the
    older ``STRESS TENSOR [GPa]`` block."""
    from dpdata.unit import PressureConversion

    lines = path.read_text(errors="replace").splitlines()
    found = None
    for number, line in enumerate(lines):
        match = _CP2K_STRESS_HEADER.match(line)
        if match:
            found = (number, match.group(1))
    if found is None:
        return None
    number, unit = found
    if unit not in _CP2K_STRESS_UNITS_GPA:
        raise ValueError(
            f"{path}: CP2K stress tensor in [{unit}] at line {number + 1}; "
            f"only {sorted(_CP2K_STRESS_UNITS_GPA)} are read"
        )
    rows = []
    for offset, axis in zip((2, 3, 4), "xyz"):
        line = lines[number + offset] if number + offset < len(lines) else ""
        fields = line.split()
        row = None
        if fields[:2] == ["STRESS|", axis] and len(fields) >= 5:
            try:
                row = [float(x) for x in fields[2:5]]
            except ValueError:
                pass
        if row is None:
            raise ValueError(
                f"{path}: line {number + offset + 1} should be the {axis} row of the CP2K stress tensor "
                f"('STRESS| {axis}' and 3 numbers), got {line.strip()!r}"
            )
        rows.append(row)
    stress_gpa = np.array(rows) * _CP2K_STRESS_UNITS_GPA[unit]
    ev_per_a3_in_gpa = PressureConversion("eV/angstrom^3", "GPa").value()
    volume = float(np.linalg.det(np.asarray(cell, dtype=np.float64).reshape(3, 3)))  # signed, like dpdata's
    return (stress_gpa / ev_per_a3_in_gpa * volume)[None]


def read_many(paths, format: str | None = None, **kwargs) -> list[Frame]:
    """Frames of several files concatenated, each keeping its own source and index."""
    frames: list[Frame] = []
    for path in paths:
        frames.extend(read_frames(path, format, **kwargs))
    return frames
