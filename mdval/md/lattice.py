"""The 0 K equilibrium lattice constant of a cubic crystal, from an equation-of-state fit.

    fit = equilibrium_lattice("lammps:Cu_u3.eam")          # fcc Cu: a0 = 3.6150 Å, B = 138.5 GPa
    fit = equilibrium_lattice("models/cu/tanh-adam.pt")    # any resolved Potential
    print(fit.a0.text(), fit.density.text())

The static energy E(a) of the perfect crystal (the conventional cubic cell of
:func:`mdval.md.workflow.build_system`: sc, fcc, bcc or diamond, atoms at their lattice sites)
is computed on a grid of lattice constants a·(1 + s), s uniform in ±``strain``, through the
potential's ASE calculator (:func:`mdval.md.ase_engine.ase_calculator`: mdval.Calculator for a
model file, ASE's EMT or EAM, LAMMPSlib for ``lammps:PRESET``), and E(V) is fitted with the
third-order Birch–Murnaghan equation of state (Birch, Phys. Rev. 71, 809 (1947); ASE's
:class:`ase.eos.EquationOfState`, ``"birchmurnaghan"``),

    E(V) = E0 + 9 V0 B0 / 16 · {[(V0/V)^(2/3) − 1]³ B0' + [(V0/V)^(2/3) − 1]² [6 − 4 (V0/V)^(2/3)]},

whose minimum gives a0 = V0^(1/3) (Å), E0 per atom (eV), the bulk modulus B0 (GPa) and the 0 K
density ρ0 = M / a0³ (g/cm³), with ASE's masses (Cu: 63.546 amu; LAMMPS' ``pair_style eam`` takes
a funcfl file's own mass, 63.55 amu in Cu_u3.eam, so its thermo density reads 0.006 % higher).
The grid is centred on the minimum first (a coarse fit from a guess).

Everything is deterministic: the only error is the fit's. It is measured, not assumed: the fit
is repeated with every other grid point (twice the spacing) and with the central half of the
range (half the strain), and each quantity's ``stderr`` is the largest change of it among the
three fits (``n_eff`` is null: no sampling is involved). With the defaults (±1 % strain, 21
points) a0 moves by less than 1e-4 Å for the reference EAM, EMT and the zoo models
(tests/test_lattice.py): a density error below 0.01 %, negligible beside MD's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mdval.md import results as res
from mdval.md.ase_engine import ase_calculator
from mdval.md.observables import density_g_cm3
from mdval.md.uncertainty import Estimate
from mdval.md.workflow import build_system

CUBIC_LATTICES: tuple[str, ...] = ("sc", "fcc", "bcc", "diamond")
#: half-width of the final grid, as a linear strain (±1 % in a, ±3 % in volume)
DEFAULT_STRAIN: float = 0.01
#: points of the final grid (odd: the centre is on it); the fit with twice the spacing uses 11
DEFAULT_POINTS: int = 21
#: the coarse search spans this many times ``strain``, and is recentred at most this many times
_COARSE_SPAN, _COARSE_TRIES = 4.0, 6


@dataclass(frozen=True)
class EquilibriumLattice:
    """The 0 K equilibrium of a cubic crystal (:func:`equilibrium_lattice`); each quantity is an
    :class:`Estimate` whose ``stderr`` is the fit's grid sensitivity (module docstring)."""

    potential: str  # the spec it was given
    lattice: str
    element: str
    a0: Estimate  # Å
    density: Estimate  # g/cm³
    bulk_modulus: Estimate  # GPa
    energy_per_atom: Estimate  # eV/atom
    strain: float  # half-width of the grid, linear strain
    n_points: int

    def as_json(self) -> dict:
        return {
            "potential": self.potential,
            "lattice": self.lattice,
            "element": self.element,
            "a0_A": self.a0.as_json(),
            "density_g_cm3": self.density.as_json(),
            "bulk_modulus_GPa": self.bulk_modulus.as_json(),
            "energy_eV_per_atom": self.energy_per_atom.as_json(),
            "method": f"Birch-Murnaghan fit of E(V) (ase.eos), {self.n_points} points over ±{100 * self.strain:g} % "
            "linear strain; stderr: largest change with twice the spacing or half the range",
            "strain": self.strain,
            "n_points": self.n_points,
        }


def _element(potential: res.Potential, element: str | None) -> str:
    """The element of the crystal: ``element``, else the potential's only one."""
    if potential.kind == "model":
        known = potential.type_names
    elif potential.kind == "emt":
        known = [potential.element or "Cu"]  # as the engines run it: emt alone is EMT's Cu
    else:
        from mdval.data.teachers import eam_potential, lammps_preset

        known = list((lammps_preset if potential.kind == "lammps" else eam_potential)(potential.preset).elements)
    if element is None:
        if len(known) != 1:
            raise ValueError(
                f"{potential.spec} describes {known}; give the element of the crystal, e.g. element={known[0]!r}"
            )
        return known[0]
    if element not in known:
        raise ValueError(f"{potential.spec} describes {known}, not {element!r}; give one of them")
    return element


def _guess_A(element: str, lattice: str, a_guess_A: float | None) -> float:
    """A starting lattice constant: ``a_guess_A``, else ASE's reference state of the element."""
    if a_guess_A is not None:
        if not (isinstance(a_guess_A, (int, float)) and math.isfinite(a_guess_A) and a_guess_A > 0):
            raise ValueError(f"a_guess_A must be a lattice constant > 0 in Å, got {a_guess_A!r}")
        return float(a_guess_A)
    from ase.data import atomic_numbers, reference_states

    state = reference_states[atomic_numbers[element]] or {}
    if state.get("symmetry") != lattice or "a" not in state:
        raise ValueError(
            f"no reference {lattice} lattice constant for {element} in ase.data; give a_guess_A (Å), e.g. a_guess_A=3.6"
        )
    return float(state["a"])


def _energies(cell, calculator, a_values) -> np.ndarray:
    """E (eV) of the cubic cell ``cell`` (built at a = 1 Å) scaled to each lattice constant."""
    energies = []
    for a in a_values:
        atoms = cell.copy()
        atoms.set_cell(cell.cell.array * a, scale_atoms=True)
        atoms.calc = calculator
        energies.append(float(atoms.get_potential_energy()))
    return np.array(energies)


def _birch_murnaghan(a_values, energies) -> tuple[float, float, float]:
    """(a0 in Å, E0 of the cell in eV, B0 in GPa) of a Birch–Murnaghan fit of E(a³)."""
    from ase.eos import EquationOfState
    from ase.units import GPa

    try:
        v0, e0, b0 = EquationOfState(np.asarray(a_values) ** 3, energies, eos="birchmurnaghan").fit(warn=False)
    except (RuntimeError, ValueError, TypeError) as exc:  # scipy's curve_fit did not converge
        raise ValueError(
            f"the Birch-Murnaghan fit of E(a) for a in [{min(a_values):.4f}, {max(a_values):.4f}] Å "
            f"failed ({exc}); give a better a_guess_A"
        ) from None
    if not (v0 > 0 and b0 > 0):
        raise ValueError(
            f"E(a) for a in [{min(a_values):.4f}, {max(a_values):.4f}] Å has no minimum (fitted "
            f"B0 = {b0 / GPa:.3g} GPa); the crystal is unstable with this potential, or a_guess_A is far off"
        )
    return float(v0 ** (1.0 / 3.0)), float(e0), float(b0 / GPa)


def _centre(cell, calculator, a_guess: float, strain: float, n_points: int) -> float:
    """The minimum of E(a) from coarse fits over ±``_COARSE_SPAN``·strain, recentred until inside."""
    a = a_guess
    for _ in range(_COARSE_TRIES):
        grid = a * (1.0 + np.linspace(-_COARSE_SPAN * strain, _COARSE_SPAN * strain, n_points))
        a0 = _birch_murnaghan(grid, _energies(cell, calculator, grid))[0]
        if grid[0] < a0 < grid[-1]:
            return a0
        a = float(np.clip(a0, grid[0], grid[-1]))
    raise ValueError(
        f"no minimum of E(a) within ±{100 * _COARSE_TRIES * _COARSE_SPAN * strain:.0f} % of "
        f"a_guess_A = {a_guess} Å; give a better a_guess_A"
    )


def equilibrium_lattice(
    potential,
    lattice: str = "fcc",
    element: str | None = None,
    *,
    a_guess_A: float | None = None,
    strain: float = DEFAULT_STRAIN,
    n_points: int = DEFAULT_POINTS,
    calculator=None,
) -> EquilibriumLattice:
    """The 0 K equilibrium lattice constant, density, bulk modulus and energy of a cubic crystal.

    ``potential``: a :class:`~mdval.md.results.Potential` or a spec it resolves (model file,
    ``emt:Cu``, ``lammps:Cu_u3.eam``, ``eam:Cu_u3.eam``); ``calculator`` overrides its ASE
    calculator. ``lattice``: sc, fcc, bcc or diamond; ``element``: by default the potential's
    only element. ``a_guess_A`` starts the search (default: ASE's reference lattice constant).
    The final grid has ``n_points`` (odd, ≥ 9) lattice constants over ±``strain`` about the
    minimum. Raises ValueError with one line for a bad argument or an E(a) with no minimum.
    """
    potential = res.Potential.resolve(potential)
    if lattice not in CUBIC_LATTICES:
        raise ValueError(f"lattice must be a cubic one of {', '.join(CUBIC_LATTICES)}, got {lattice!r}")
    if not (isinstance(n_points, int) and n_points >= 9 and n_points % 2 == 1):
        raise ValueError(
            f"n_points must be an odd integer >= 9 (the fit with twice the spacing needs 5), got {n_points!r}"
        )
    if not (isinstance(strain, (int, float)) and 0 < strain <= 0.05):
        raise ValueError(f"strain must be a linear strain in (0, 0.05], e.g. 0.01 for ±1 %, got {strain!r}")
    element = _element(potential, element)
    a_guess = _guess_A(element, lattice, a_guess_A)
    cell = build_system(lattice, element, 1.0, (1, 1, 1))
    calculator = calculator if calculator is not None else ase_calculator(potential)
    a_centre = _centre(cell, calculator, a_guess, strain, (n_points + 1) // 2)
    grid = a_centre * (1.0 + np.linspace(-strain, strain, n_points))
    energies = _energies(cell, calculator, grid)
    quarter = (n_points - 1) // 4
    middle = slice((n_points - 1) // 2 - quarter, (n_points - 1) // 2 + quarter + 1)
    fits = np.array(
        [
            _birch_murnaghan(grid, energies),
            _birch_murnaghan(grid[::2], energies[::2]),
            _birch_murnaghan(grid[middle], energies[middle]),
        ]
    )
    spread = np.max(np.abs(fits[1:] - fits[0]), axis=0)
    (a0, e0, b0), (da0, de0, db0) = fits[0], spread
    n_atoms, mass = len(cell), float(cell.get_masses().sum())
    rho0 = density_g_cm3(mass, a0**3)
    return EquilibriumLattice(
        potential=potential.spec,
        lattice=lattice,
        element=element,
        a0=Estimate(a0, da0, math.nan, "Å"),
        density=Estimate(rho0, 3.0 * rho0 * da0 / a0, math.nan, "g/cm³"),
        bulk_modulus=Estimate(b0, db0, math.nan, "GPa"),
        energy_per_atom=Estimate(e0 / n_atoms, de0 / n_atoms, math.nan, "eV/atom"),
        strain=float(strain),
        n_points=n_points,
    )
