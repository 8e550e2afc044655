"""MD validation protocols (DESIGN.md section 6): their settings and their result.

Every protocol has two phases, run by either engine (mdval/md/ase_engine.py, lammps_engine.py):

======  ==================================  ===============================================
kind    equilibration (equilibration_steps)  production (steps)
======  ==================================  ===============================================
nve     NVT with the chosen thermostat      NVE, velocity Verlet  -> energy drift
nvt     NVT                                 NVT                   -> RDFs, T statistics
npt     NVT                                 NPT, isotropic MTK (ASE) / ``fix npt iso``
                                            (LAMMPS)              -> density, P statistics
======  ==================================  ===============================================

Thermostats: "langevin" (friction 1/thermostat_damping_fs; ASE ``Langevin``, LAMMPS
``fix langevin``), "bussi" (stochastic velocity rescaling, Bussi, Donadio, Parrinello,
J. Chem. Phys. 126, 014101 (2007); ASE ``Bussi``, LAMMPS ``fix temp/csvr``) and
"nose-hoover-chain" (Martyna, Klein, Tuckerman, J. Chem. Phys. 97, 2635 (1992); ASE
``NoseHooverChainNVT``, LAMMPS ``fix nvt``). NPT uses a Nosé-Hoover chain thermostat with the
MTK barostat (Martyna, Tobias, Klein, J. Chem. Phys. 101, 4177 (1994)) in both engines.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from typing import ClassVar

from mdval.md.stability import StabilityLimits

THERMOSTATS: tuple[str, ...] = ("langevin", "bussi", "nose-hoover-chain")
PROTOCOLS: tuple[str, ...] = ("nve", "nvt", "npt")


def is_number(value) -> bool:
    """A finite int or float (not a bool, a string from a TOML typo, NaN or inf)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_integer(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


@dataclass
class ProtocolSettings:
    """Settings shared by every protocol (units in the names).

    ======================  =====  ===============================================================
    field                   unit   meaning
    ======================  =====  ===============================================================
    timestep_fs             fs     integration time step
    temperature_K           K      target (and initial Maxwell-Boltzmann) temperature
    steps                   -      production steps
    equilibration_steps     -      NVT equilibration steps before production
    warmup_ps               ps     production time skipped by the estimators
    sample_interval         steps  thermo row (CSV) every this many steps
    trajectory_interval     steps  trajectory frame every this many steps (production only)
    checkpoint_interval     steps  restart state every this many steps
    seed                    -      velocities and stochastic thermostats
    thermostat              -      "langevin" | "bussi" | "nose-hoover-chain"
    thermostat_damping_fs   fs     thermostat time constant (Langevin: 1/friction)
    rdf_r_max_A             Å      RDF range (≤ half the shortest cell height)
    rdf_bins                -      RDF bins
    limits                  -      :class:`StabilityLimits`
    ======================  =====  ===============================================================
    """

    kind: ClassVar[str] = ""

    timestep_fs: float = 1.0
    temperature_K: float = 300.0
    steps: int = 1000
    equilibration_steps: int = 500
    warmup_ps: float = 0.0
    sample_interval: int = 10
    trajectory_interval: int = 100
    checkpoint_interval: int = 200
    seed: int = 0
    thermostat: str = "langevin"
    thermostat_damping_fs: float = 100.0
    rdf_r_max_A: float = 5.0
    rdf_bins: int = 100
    limits: StabilityLimits = field(default_factory=StabilityLimits)

    def __post_init__(self):
        if isinstance(self.limits, dict):
            self.limits = StabilityLimits(**self.limits)
        if self.thermostat not in THERMOSTATS:
            raise ValueError(f"thermostat must be one of {', '.join(THERMOSTATS)}, got {self.thermostat!r}")
        for name in ("timestep_fs", "temperature_K", "thermostat_damping_fs", "rdf_r_max_A"):
            self._check(name, is_number(getattr(self, name)) and getattr(self, name) > 0, "a number > 0")
        for name in ("steps", "sample_interval", "trajectory_interval", "checkpoint_interval", "rdf_bins"):
            self._check(name, is_integer(getattr(self, name), 1), "an integer >= 1")
        for name in ("equilibration_steps", "seed"):
            self._check(name, is_integer(getattr(self, name), 0), "an integer >= 0")
        self._check("warmup_ps", is_number(self.warmup_ps), "a number >= 0")
        if self.warmup_ps < 0 or self.warmup_ps * 1000.0 >= self.steps * self.timestep_fs:
            raise ValueError(
                f"warmup_ps = {self.warmup_ps} must be >= 0 and shorter than the production "
                f"({self.steps} steps × {self.timestep_fs} fs = {self.steps * self.timestep_fs / 1000} ps)"
            )

    def _check(self, name: str, ok: bool, what: str) -> None:
        if not ok:
            raise ValueError(f"{type(self).__name__}.{name} must be {what}, got {getattr(self, name)!r}")

    @property
    def total_steps(self) -> int:
        return self.equilibration_steps + self.steps

    def as_dict(self) -> dict:
        d = asdict(self)
        d["protocol"] = self.kind
        return d


@dataclass
class NVESettings(ProtocolSettings):
    """NVE energy conservation after NVT equilibration (velocity Verlet)."""

    kind: ClassVar[str] = "nve"


@dataclass
class NVTSettings(ProtocolSettings):
    """NVT structure: RDFs and temperature statistics."""

    kind: ClassVar[str] = "nvt"


@dataclass
class NPTSettings(ProtocolSettings):
    """NPT density: isotropic MTK at ``pressure_bar`` with barostat time constant
    ``barostat_damping_fs`` (fs)."""

    kind: ClassVar[str] = "npt"
    thermostat: str = "nose-hoover-chain"
    pressure_bar: float = 1.0
    barostat_damping_fs: float = 1000.0

    def __post_init__(self):
        super().__post_init__()
        self._check("pressure_bar", is_number(self.pressure_bar), "a number")
        self._check(
            "barostat_damping_fs", is_number(self.barostat_damping_fs) and self.barostat_damping_fs > 0, "a number > 0"
        )


SETTINGS_CLASSES = {"nve": NVESettings, "nvt": NVTSettings, "npt": NPTSettings}


def make_settings(protocol: str, **values) -> ProtocolSettings:
    """Settings of ``protocol`` ("nve" | "nvt" | "npt") from keyword values; unknown keys are an
    error naming the known ones."""
    if protocol not in SETTINGS_CLASSES:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    cls = SETTINGS_CLASSES[protocol]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {protocol} setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**values)


@dataclass
class RunResult:
    """The outcome of one protocol run: a failed run is a result too (status "failed")."""

    status: str  # "completed" | "failed"
    protocol: str
    engine: str
    output_dir: str
    steps_done: int
    reason: str | None = None
    detector: str | None = None
    time_to_failure_ps: float | None = None
    observables: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    timing: dict = field(default_factory=dict)  # cost: mdval.md.results.timing_record

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    def as_dict(self) -> dict:
        return asdict(self)
