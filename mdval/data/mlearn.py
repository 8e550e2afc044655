"""Reader for the mlearn DFT data (Zuo et al., J. Phys. Chem. A 124, 731 (2020)), no pymatgen.

Each entry is ``{"structure": pymatgen Structure dict, "outputs": {"energy", "forces",
"virial_stress"}, "group", "description", ...}``.

Virial sign and unit
--------------------
``virial_stress`` is VASP's stress as VASP prints it in OUTCAR ("in kB" line), in kbar, in the
order xx, yy, zz, xy, yz, zx. VASP prints the *pressure-sign* stress: positive when the cell
is compressed and pushes outward (its ``external pressure`` is the trace / 3). That is the sign
of our virial W = Σ r ⊗ F = -σ_ASE V, so

    W [eV] = virial_stress [kbar] × (1 kbar in eV/Å³) × V [Å³],   1 kbar = 0.1 GPa.

Checked two ways in tests/test_data_mlearn.py: the compressed and expanded frames of the
Cu "Elastic" group give W of the sign the energy–volume curve demands (dE/dV = -P), and the
Zuo SNAP potential for Cu (fitted to these data) in LAMMPS gives a stress of the same sign.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ase import units

from mdval.data.frames import Frame

#: 1 kbar in eV/Å³ (= 1e8 Pa).
KBAR_IN_EV_PER_A3: float = 0.1 * units.GPa

#: Voigt order of mlearn's ``virial_stress``: xx, yy, zz, xy, yz, zx.
MLEARN_VOIGT_ORDER: tuple[tuple[int, int], ...] = ((0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (2, 0))


def mlearn_virial(virial_stress_kbar, volume_A3: float) -> np.ndarray:
    """W (eV, 3x3, symmetric) from mlearn/VASP ``virial_stress`` (kbar, pressure sign)."""
    values = np.asarray(virial_stress_kbar, dtype=np.float64).reshape(6)
    w = np.zeros((3, 3))
    for value, (a, b) in zip(values, MLEARN_VOIGT_ORDER):
        w[a, b] = w[b, a] = value
    return w * KBAR_IN_EV_PER_A3 * float(volume_A3)


def looks_like_mlearn(path: Path) -> bool:
    """True if the file starts like an mlearn JSON list (cheap: reads the first 4 kB)."""
    with open(path, "rb") as handle:
        head = handle.read(4096).decode("utf-8", errors="replace").lstrip()
    return head.startswith("[") and '"structure"' in head or head.startswith("[") and '"outputs"' in head


def read_mlearn(path) -> list[Frame]:
    """All entries of an mlearn JSON file as frames (periodic in all three directions)."""
    path = Path(path)
    source = str(path)
    try:
        entries = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{source}: not valid JSON ({error}); expected an mlearn data file") from error
    if not isinstance(entries, list):
        raise ValueError(f"{source}: expected a JSON list of mlearn entries, got {type(entries).__name__}")
    frames = []
    for index, entry in enumerate(entries):
        where = f"{source} frame {index}"
        try:
            structure = entry["structure"]
            outputs = entry["outputs"]
            cell = np.asarray(structure["lattice"]["matrix"], dtype=np.float64)
            sites = structure["sites"]
            positions = np.array([site["xyz"] for site in sites], dtype=np.float64).reshape(-1, 3)
            symbols = [site["species"][0]["element"] for site in sites]
            energy = outputs["energy"]
        except (KeyError, IndexError, TypeError) as error:
            raise ValueError(f"{where}: missing mlearn field {error}; expected structure and outputs") from error
        forces = outputs.get("forces")
        volume = abs(float(np.linalg.det(cell)))
        stress = outputs.get("virial_stress")
        virial = mlearn_virial(stress, volume) if stress is not None else None
        info = {key: entry[key] for key in ("group", "description", "tag") if key in entry}
        frames.append(
            Frame(
                symbols=symbols,
                positions=positions,
                cell=cell,
                pbc=np.ones(3, dtype=bool),
                energy=float("nan") if energy is None else energy,
                forces=None if forces is None else np.asarray(forces, dtype=np.float64),
                virial=virial,
                source=source,
                index=index,
                info=info,
            )
        )
    return frames
