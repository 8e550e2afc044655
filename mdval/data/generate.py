"""Generate labelled training data with a teacher: MD at several temperatures, plus strained
and compressed/expanded cells. Seeded, reproducible, cached, written atomically as extxyz.

Recipe (for ``n_frames`` frames, ``seed``):

1. ``round(strain_fraction * n_frames)`` *strained* frames: a perfect supercell deformed by
   F = I + ε, ε symmetric with |ε_aa| ≤ ``max_strain`` and shear |ε_ab| ≤ max_strain / 2,
   times an isotropic scale s ∈ [1 - 2·max_strain, 1 + max_strain] (compressed and
   expanded), then rattled by a Gaussian of standard deviation ∈ [0.01, 0.08] Å.
2. The rest from Langevin MD (ASE ``Langevin``, ``timestep_fs``, friction ``friction_per_fs``):
   trajectory t runs at ``temperatures_K[t % n_T]`` in supercell ``supercells[t // n_T % n_S]``
   with the lattice scaled isotropically by s ∈ [0.99, 1.02]; after ``equilibration_steps``
   steps, one frame every ``sample_every`` steps, ``frames_per_trajectory`` frames.

All random numbers come from one ``numpy.random.default_rng(seed)``, so the same settings give
the same file. Every frame's ``info`` records ``reference``, ``seed``, ``settings_hash``,
``mdval_version``, ``kind`` (md | strain) and, for MD, ``temperature_K``; a sidecar
``<out>.provenance.json`` holds the full settings. If ``out`` exists with the same
``settings_hash``, nothing is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mdval import fileio

#: Bump when the recipe changes, so that caches written by an older recipe are not reused.
RECIPE_VERSION: int = 1

#: Default crystal per element: (structure, a in Å[, c in Å]); roughly the teachers' minima.
LATTICE_DEFAULTS: dict[str, tuple] = {
    "Cu": ("fcc", 3.61),
    "Al": ("fcc", 4.05),
    "Ni": ("fcc", 3.52),
    "Ag": ("fcc", 4.09),
    "Au": ("fcc", 4.08),
    "Pd": ("fcc", 3.89),
    "Pt": ("fcc", 3.92),
    "Si": ("diamond", 5.43),
    "Ge": ("diamond", 5.66),
    "Li": ("bcc", 3.44),
    "Mo": ("bcc", 3.15),
    "Mg": ("hcp", 3.21, 5.21),
}

#: Supercell repeats of the conventional cell giving 32-108 atoms.
SUPERCELLS: dict[str, list[tuple[int, int, int]]] = {
    "fcc": [(2, 2, 2), (2, 2, 3), (2, 3, 3), (3, 3, 3)],  # 32, 48, 72, 108 atoms
    "bcc": [(2, 2, 4), (3, 3, 3), (3, 3, 4), (3, 4, 4)],  # 32, 54, 72, 96
    "diamond": [(1, 2, 2), (2, 2, 2), (2, 2, 3)],  # 32, 64, 96
    "hcp": [(2, 2, 2), (3, 2, 2), (3, 3, 2)],  # 32, 48, 72 (orthorhombic, 4 atoms)
}


@dataclass
class GenerateSettings:
    """Everything that determines the generated file (its hash is the cache key)."""

    reference: str = "emt"  # emt | lammps | lammps:<preset>
    element: str | None = None  # default: Cu for emt, the preset's element
    pair_style: str | None = None  # only for reference "lammps"
    pair_coeff: list[str] = field(default_factory=list)
    n_frames: int = 600
    seed: int = 0
    temperatures_K: list[float] = field(default_factory=lambda: [300.0, 600.0, 900.0, 1200.0])
    timestep_fs: float = 2.0
    friction_per_fs: float = 0.02
    equilibration_steps: int = 100
    sample_every: int = 10
    frames_per_trajectory: int = 24
    strain_fraction: float = 0.2
    max_strain: float = 0.03
    lattice: list | None = None  # (structure, a[, c]); default LATTICE_DEFAULTS
    supercells: list | None = None  # default SUPERCELLS[structure]

    def resolved(self, elements: list[str]) -> GenerateSettings:
        """A copy with element, lattice and supercells filled in from the defaults."""
        element = self.element or elements[0]
        lattice = list(self.lattice or LATTICE_DEFAULTS.get(element, ()))
        if not lattice:
            raise ValueError(f"no default lattice for '{element}'; give lattice=(structure, a_A)")
        supercells = [list(s) for s in (self.supercells or SUPERCELLS[lattice[0]])]
        data = asdict(self)
        data.update(element=element, lattice=lattice, supercells=supercells)
        return GenerateSettings(**data)

    def hash(self) -> str:
        payload = json.dumps({"recipe": RECIPE_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _crystal(element: str, lattice: list, repeat):
    from ase.build import bulk

    structure, a = lattice[0], float(lattice[1])
    if structure == "hcp":
        c = float(lattice[2]) if len(lattice) > 2 else a * math.sqrt(8.0 / 3.0)
        unit = bulk(element, "hcp", a=a, c=c, orthorhombic=True)
    else:
        unit = bulk(element, structure, a=a, cubic=True)
    return unit.repeat(tuple(int(r) for r in repeat))


def _labelled(atoms, calculator, info: dict):
    """A copy of ``atoms`` with the teacher's energy/forces/stress in a SinglePointCalculator."""
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = atoms.copy()
    atoms.calc = calculator
    results = {
        "energy": float(atoms.get_potential_energy()),
        "forces": atoms.get_forces().copy(),
        "stress": atoms.get_stress(voigt=True).copy(),
    }
    atoms.calc = None
    if not all(np.all(np.isfinite(v)) for v in results.values()):
        raise RuntimeError(f"the teacher returned NaN or inf for a {info.get('kind')} frame {info}")
    atoms.info.update(info)
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def _strained_frames(settings, calculator, rng, n: int, base_info: dict, progress):
    frames = []
    for _ in range(n):
        repeat = settings.supercells[int(rng.integers(len(settings.supercells)))]
        atoms = _crystal(settings.element, settings.lattice, repeat)
        eps = rng.uniform(-settings.max_strain, settings.max_strain, size=(3, 3))
        eps = np.triu(eps) * np.where(np.eye(3, dtype=bool), 1.0, 0.5)
        eps = eps + np.triu(eps, 1).T
        scale = rng.uniform(1.0 - 2.0 * settings.max_strain, 1.0 + settings.max_strain)
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + eps) * scale, scale_atoms=True)
        atoms.positions += rng.normal(0.0, rng.uniform(0.01, 0.08), size=atoms.positions.shape)
        atoms.wrap()
        frames.append(_labelled(atoms, calculator, {**base_info, "kind": "strain", "temperature_K": 0.0}))
        progress.update(1)
    return frames


def _md_frames(settings, calculator, rng, n: int, base_info: dict, progress):
    from ase import units
    from ase.md import velocitydistribution as velocities
    from ase.md.langevin import Langevin

    frames = []
    temps = settings.temperatures_K
    n_traj = math.ceil(n / settings.frames_per_trajectory) if n > 0 else 0
    for t in range(n_traj):
        temperature_K = float(temps[t % len(temps)])
        repeat = settings.supercells[(t // len(temps)) % len(settings.supercells)]
        atoms = _crystal(settings.element, settings.lattice, repeat)
        atoms.set_cell(atoms.cell.array * rng.uniform(0.99, 1.02), scale_atoms=True)
        atoms.calc = calculator
        # Maxwell-Boltzmann momenta (thermalize_momenta is its name from ASE 3.28 on).
        thermalize = getattr(velocities, "thermalize_momenta", velocities.MaxwellBoltzmannDistribution)
        thermalize(atoms, temperature_K=temperature_K, rng=rng)
        velocities.Stationary(atoms)
        dyn = Langevin(
            atoms,
            timestep=settings.timestep_fs * units.fs,
            temperature_K=temperature_K,
            friction=settings.friction_per_fs / units.fs,
            rng=rng,
            fixcm=False,
        )
        dyn.run(settings.equilibration_steps)
        n_here = min(settings.frames_per_trajectory, n - len(frames))
        for sample in range(n_here):
            dyn.run(settings.sample_every)
            info = {
                **base_info,
                "kind": "md",
                "temperature_K": temperature_K,
                "trajectory": t,
                "step": settings.equilibration_steps + (sample + 1) * settings.sample_every,
            }
            frames.append(_labelled(atoms, calculator, info))
            progress.update(1)
        atoms.calc = None
    return frames


def read_settings_hash(path) -> str | None:
    """The ``settings_hash`` in the first frame's header of an extxyz file, or None."""
    try:
        with open(path) as handle:
            handle.readline()
            header = handle.readline()
    except OSError:
        return None
    for token in header.split():
        if token.startswith("settings_hash="):
            return token.split("=", 1)[1].strip('"')
    return None


def generate(settings: GenerateSettings, out, *, force: bool = False, progress: bool = True) -> Path:
    """Generate (or reuse, if cached) the data set described by ``settings`` at ``out``
    (extxyz). Returns the path."""
    import io

    import ase.io
    from tqdm import tqdm

    from mdval import __version__
    from mdval.data.teachers import make_teacher

    out = Path(out)
    if settings.n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {settings.n_frames}")
    if not settings.temperatures_K or not all(np.isfinite(T) and T > 0 for T in settings.temperatures_K):
        raise ValueError(f"temperatures_K must be one or more temperatures > 0 K, got {settings.temperatures_K}")
    if not 0.0 <= settings.strain_fraction <= 1.0:
        raise ValueError(
            f"strain_fraction must be in [0, 1] (the share of strained frames), got {settings.strain_fraction}"
        )
    calculator, description = make_teacher(
        settings.reference, element=settings.element, pair_style=settings.pair_style, pair_coeff=settings.pair_coeff
    )
    settings = settings.resolved(description["elements"])
    settings_hash = settings.hash()
    if not force and out.exists() and read_settings_hash(out) == settings_hash:
        return out
    rng = np.random.default_rng(settings.seed)
    base_info = {
        "reference": settings.reference,
        "element": settings.element,
        "seed": settings.seed,
        "settings_hash": settings_hash,
        "mdval_version": __version__,
    }
    n_strain = int(round(settings.strain_fraction * settings.n_frames))
    with tqdm(
        total=settings.n_frames, desc=f"{settings.reference} {settings.element}", unit="frame", disable=not progress
    ) as bar:
        frames = _strained_frames(settings, calculator, rng, n_strain, base_info, bar)
        frames += _md_frames(settings, calculator, rng, settings.n_frames - n_strain, base_info, bar)
    buffer = io.StringIO()
    ase.io.write(buffer, frames, format="extxyz")
    provenance = {
        "settings": asdict(settings),
        "settings_hash": settings_hash,
        "teacher": description,
        "recipe_version": RECIPE_VERSION,
        "mdval_version": __version__,
        "n_frames": len(frames),
        "units": {"energy": "eV", "forces": "eV/Å", "stress": "eV/Å³ (ASE sign)"},
    }
    fileio.write_json(out.with_name(out.name + ".provenance.json"), provenance)
    fileio.write_text(out, buffer.getvalue())
    return out
