"""Workflow specs (TOML): system, protocols, engines, models and reference, run as one batch.

Example (workflows/cu_eam.toml)::

    name = "cu_eam"
    output_dir = "runs/md/cu_eam"          # relative to the current directory
    engines = ["ase"]                      # "ase" and/or "lammps"
    models = ["models/cu/*.pt"]            # paths or globs (from here, else from this file's folder)
    np = 1                                 # MPI ranks for the LAMMPS engine
    replicas = 1                           # independent runs (seeds) of each; or in [defaults]
    baseline = "tanh-adam"                 # the model the report compares every other with (default: the first)

    [system]
    lattice = "fcc"                        # any ase.build.bulk crystal structure
    element = "Cu"
    a_A = 3.615
    supercell = [3, 3, 3]                  # repeats of the cubic cell

    [reference]
    ase = "lammps:Cu_u3.eam"               # reference potential per engine (here one in both)
    lammps = "lammps:Cu_u3.eam"

    [defaults]                             # settings shared by every protocol
    timestep_fs = 1.0

    [limits]                               # StabilityLimits
    temperature_limit_factor = 5.0

    [[protocol]]
    kind = "nve"                           # nve | nvt | npt, plus any setting of that protocol
    steps = 2000

The runs of a workflow (mdval/md/matrix.py): for every engine and protocol the reference runs
first, then every model; each run writes its own directory
``<output_dir>/<engine>/<protocol>/<label>/`` and results JSON, and each model's observables are
compared with the reference of the same engine and with the first engine's reference (RDF error,
density relative error). ``summary.json`` collects everything. With ``replicas = N`` (N > 1) every
run is N runs that differ only in their seed, in ``<label>/replica-1`` … ``replica-N``, combined
into one entry (mdval/md/replicas.py); the command line's ``--replicas`` overrides it.

Every mistake in a spec is one line naming the file, the table and the key: an unknown key (with
the valid ones), a bad value, or a model pattern that matches no file. Every potential is resolved
(:meth:`mdval.md.results.Potential.resolve`) when the spec is loaded.
"""

from __future__ import annotations

import dataclasses
import glob
import inspect
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from mdval.argtypes import element_problem
from mdval.md import replicas as rep
from mdval.md import results as res
from mdval.md.protocols import PROTOCOLS, SETTINGS_CLASSES, is_integer, is_number, make_settings
from mdval.md.stability import StabilityLimits

ENGINES: tuple[str, ...] = ("ase", "lammps")
_TOP_KEYS = (
    "name",
    "output_dir",
    "engines",
    "models",
    "np",
    "replicas",
    "baseline",
    "system",
    "reference",
    "defaults",
    "limits",
    "protocol",
)
_LIMIT_KEYS = tuple(f.name for f in dataclasses.fields(StabilityLimits))
_SETTING_KEYS = tuple(f.name for f in dataclasses.fields(SETTINGS_CLASSES["npt"]))  # npt's are a superset


@dataclass
class Workflow:
    name: str
    output_dir: Path
    engines: list
    models: list
    system: dict
    reference: dict
    protocols: list  # list of ProtocolSettings
    np: int = 1
    #: independent runs (seeds) of every (engine, protocol, potential), combined (mdval/md/replicas.py)
    replicas: int = 1
    #: the label of the model that the report compares every other model with (default: the first)
    baseline: str = ""
    source: str = ""
    raw: dict = field(default_factory=dict)
    #: every spec of ``models`` and ``reference``, resolved once (by :func:`load_workflow`)
    potentials: dict = field(default_factory=dict)

    def build_atoms(self):
        return build_system(**self.system)

    def potential(self, spec: str) -> res.Potential:
        """The resolved potential of a spec of this workflow (a model file or a reference)."""
        return self.potentials[spec]

    def with_replicas(self, replicas: int | None) -> Workflow:
        """This workflow with ``replicas`` runs of each (the command line's ``--replicas``); None keeps the spec's."""
        if replicas is None:
            return self
        return dataclasses.replace(self, replicas=rep.check_count(replicas))


def build_system(
    lattice: str = "fcc",
    element: str = "Cu",
    a_A: float = 3.61,
    supercell=(3, 3, 3),
    cubic: bool = True,
    c_A: float | None = None,
):
    """A bulk crystal from ``ase.build.bulk``, repeated ``supercell`` times."""
    from ase.build import bulk

    problem = element_problem(element)
    if problem:
        raise ValueError(f"element {problem}")
    for name, value in (("a_A", a_A), ("c_A", c_A)):
        if value is not None and not (is_number(value) and value > 0):
            raise ValueError(f"{name} must be a lattice constant > 0 in Å, got {value!r}")
    if not (isinstance(supercell, (list, tuple)) and len(supercell) == 3 and all(is_integer(n, 1) for n in supercell)):
        raise ValueError(f"supercell must be three integers >= 1, got {supercell!r}")
    if not isinstance(cubic, bool):
        raise ValueError(f"cubic must be true or false, got {cubic!r}")
    kwargs = {"a": a_A, "cubic": cubic}
    if c_A is not None:
        kwargs["c"] = c_A
    try:
        crystal = bulk(element, lattice, **kwargs)
    except (ValueError, RuntimeError) as exc:  # an unknown lattice, or one with no cubic cell (hcp)
        raise ValueError(
            f"ase.build.bulk cannot build {lattice!r} {element} with a = {a_A} Å"
            f"{' as a cubic cell' if cubic else ''} ({exc}); lattices of one element: sc, fcc, bcc, "
            "diamond, and hcp with cubic = false"
        ) from None
    return crystal.repeat(tuple(supercell))


def _check_keys(table, valid, where: str, path: Path) -> None:
    """``table`` is a TOML table whose keys are all in ``valid``, else one line naming the first stray key."""
    if not isinstance(table, dict):
        raise ValueError(f"{where} of {path} must be a table, got {table!r}")
    unknown = [key for key in table if key not in valid]
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} in {where} of {path}; valid: {', '.join(sorted(valid))}")


def load_workflow(path) -> Workflow:
    """Parse and check a workflow spec; errors name the key, what was expected and what was given."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"workflow spec not found: {path}; see workflows/cu_eam.toml for an example")
    with open(path, "rb") as handle:
        try:
            raw = tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML ({exc})") from None
    _check_keys(raw, _TOP_KEYS, "the top level", path)
    for key in ("name", "output_dir"):
        if not isinstance(raw.get(key, ""), str):
            raise ValueError(f"{key} in {path} must be a string, got {raw[key]!r}")
    engines = raw.get("engines", ["ase"])
    if not (isinstance(engines, list) and engines and all(e in ENGINES for e in engines)):
        raise ValueError(f"{path}: engines must be a non-empty subset of {list(ENGINES)}, got {engines!r}")
    if not is_integer(raw.get("np", 1), 1):
        raise ValueError(f"np in {path} must be an integer >= 1 (MPI ranks per LAMMPS run), got {raw['np']!r}")
    reference = raw.get("reference", {})
    _check_keys(reference, ENGINES, "[reference]", path)
    for engine in engines:
        if not isinstance(reference.get(engine), str):
            raise ValueError(
                f"{path}: [reference] needs an entry for engine '{engine}', e.g. "
                f'{engine} = "{"emt:Cu" if engine == "ase" else "lammps:Cu_u3.eam"}"'
            )
    potentials = {}
    for engine in engines:
        try:
            potentials[reference[engine]] = res.Potential.resolve(reference[engine])
        except ValueError as exc:
            raise ValueError(f"[reference] {engine} of {path}: {exc}") from None
    system = raw.get("system", {})
    _check_keys(system, tuple(inspect.signature(build_system).parameters), "[system]", path)
    try:
        build_system(**system)
    except ValueError as exc:
        raise ValueError(f"[system] of {path}: {exc}") from None
    models = _models(raw.get("models", []), path)
    return Workflow(
        name=raw.get("name", path.stem),
        output_dir=Path(raw.get("output_dir", f"runs/md/{path.stem}")),
        engines=list(engines),
        models=list(models),
        system=system,
        reference=reference,
        protocols=_protocols(raw, path),
        np=raw.get("np", 1),
        replicas=_replicas(raw, path),
        baseline=_baseline(raw.get("baseline"), models, path),
        source=str(path),
        raw=raw,
        potentials={**potentials, **models},
    )


def _baseline(baseline, models: dict, path: Path) -> str:
    """The label of the ``baseline`` model (mdval compare's verdicts against it), the first model's by default."""
    labels = [potential.label for potential in models.values()]
    if baseline is None:
        return labels[0] if labels else ""
    if baseline not in labels:
        raise ValueError(
            f"baseline in {path} must name one of the models by its label ({', '.join(labels)}), got {baseline!r}"
        )
    return baseline


def _replicas(raw: dict, path: Path) -> int:
    """``replicas`` of the top level or of [defaults] (not both), 1 if neither gives it."""
    defaults = raw.get("defaults", {})
    given = [
        where
        for where, table in (("the top level", raw), ("[defaults]", defaults))
        if isinstance(table, dict) and "replicas" in table
    ]
    if len(given) > 1:
        raise ValueError(f"replicas is given both at the top level and in [defaults] of {path}; keep one")
    if not given:
        return 1
    table = raw if given[0] == "the top level" else defaults
    return rep.check_count(table["replicas"], f"replicas in {given[0]} of {path}")


def _models(patterns, path: Path) -> dict[str, res.Potential]:
    """Model files matched by ``patterns`` (each tried from the current folder, then from the
    spec's), resolved, by path as matched."""
    if not (isinstance(patterns, list) and all(isinstance(p, str) for p in patterns)):
        raise ValueError(
            f'models in {path} must be a list of paths or globs, e.g. models = ["models/cu/*.pt"], got {patterns!r}'
        )
    models: list[str] = []
    for pattern in patterns:
        matches = [
            m for m in sorted(glob.glob(pattern)) or sorted(glob.glob(str(path.parent / pattern))) if Path(m).is_file()
        ]
        if not matches:
            raise FileNotFoundError(
                f"models entry {pattern!r} in {path} matches no file, neither in {Path.cwd()} "
                f"nor in {path.parent.resolve()}; fix the path or remove it from models"
            )
        models += [m for m in matches if m not in models]
    resolved = {model: res.Potential.resolve(model) for model in models}
    labels: dict[str, str] = {}
    for model, potential in resolved.items():
        other = labels.setdefault(potential.label, model)
        if other != model:
            raise ValueError(
                f"models {other} and {model} in {path} would share the run folder "
                f"{potential.label}; give the files different names"
            )
    return resolved


def _protocols(raw: dict, path: Path) -> list:
    defaults, limits = raw.get("defaults", {}), raw.get("limits", {})
    _check_keys(defaults, _SETTING_KEYS + ("replicas",), "[defaults]", path)
    defaults = {key: value for key, value in defaults.items() if key != "replicas"}
    _check_keys(limits, _LIMIT_KEYS, "[limits]", path)
    protocols = []
    for k, entry in enumerate(raw.get("protocol", [])):
        where = f"[[protocol]] #{k + 1}"
        _check_keys(entry, ("kind",) + _SETTING_KEYS, where, path)
        entry = dict(entry)
        kind = entry.pop("kind", None)
        if kind not in PROTOCOLS:
            raise ValueError(f"{path}: {where} needs kind = one of {list(PROTOCOLS)}, got {kind!r}")
        where = f'{where} (kind = "{kind}")'
        _check_keys(entry, [f.name for f in dataclasses.fields(SETTINGS_CLASSES[kind])], where, path)
        values = {**defaults, **entry}
        _check_keys(values.get("limits", {}), _LIMIT_KEYS, f"the limits of {where}", path)
        values["limits"] = {**limits, **values.get("limits", {})}
        if kind != "npt":
            values = {key: v for key, v in values.items() if key not in ("pressure_bar", "barostat_damping_fs")}
        try:
            protocols.append(make_settings(kind, **values))
        except ValueError as exc:
            raise ValueError(f"{where} of {path}: {exc}") from None
    if not protocols:
        raise ValueError(f'{path}: no [[protocol]] entries; add at least one, e.g. [[protocol]] kind = "nve"')
    return protocols
