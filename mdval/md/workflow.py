"""Workflow specs (TOML): system, protocols, engines, models and reference, run as one batch.

Example (workflows/cu_emt.toml)::

    name = "cu_emt"
    output_dir = "runs/md/cu_emt"          # relative to the current directory
    engines = ["ase"]                      # "ase" and/or "lammps"
    models = ["models/cu/*.pt"]            # paths or globs; none found = reference only
    np = 1                                 # MPI ranks for the LAMMPS engine

    [system]
    lattice = "fcc"                        # any ase.build.bulk crystal structure
    element = "Cu"
    a_A = 3.61
    supercell = [3, 3, 3]                  # repeats of the cubic cell

    [reference]
    ase = "emt:Cu"                         # reference potential per engine
    lammps = "lammps:Cu_u3.eam"

    [defaults]                             # settings shared by every protocol
    timestep_fs = 1.0

    [limits]                               # StabilityLimits
    temperature_limit_factor = 5.0

    [[protocol]]
    kind = "nve"                           # nve | nvt | npt, plus any setting of that protocol
    steps = 2000

For every engine and protocol the reference runs first, then every model; each run writes its
own directory ``<output_dir>/<engine>/<protocol>/<label>/`` and results JSON, and each model's
observables are compared with the reference of the same engine and with the first engine's
reference (RDF error, density relative error). ``summary.json`` collects everything.
"""

from __future__ import annotations

import glob
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from mdval.md import results as res
from mdval.md.protocols import PROTOCOLS, make_settings

ENGINES: tuple[str, ...] = ("ase", "lammps")
_TOP_KEYS = {"name", "output_dir", "engines", "models", "np", "system", "reference", "defaults", "limits", "protocol"}


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
    source: str = ""
    raw: dict = field(default_factory=dict)

    def build_atoms(self):
        return build_system(**self.system)


def build_system(lattice: str = "fcc", element: str = "Cu", a_A: float = 3.61, supercell=(3, 3, 3),
                 cubic: bool = True, c_A: float | None = None):
    """A bulk crystal from ``ase.build.bulk``, repeated ``supercell`` times."""
    from ase.build import bulk

    if len(supercell) != 3 or not all(isinstance(n, int) and n >= 1 for n in supercell):
        raise ValueError(f"[system] supercell must be three positive integers, got {supercell!r}")
    kwargs = {"a": a_A, "cubic": cubic}
    if c_A is not None:
        kwargs["c"] = c_A
    return bulk(element, lattice, **kwargs).repeat(tuple(supercell))


def load_workflow(path) -> Workflow:
    """Parse and check a workflow spec; errors name the key, what was expected and what was given."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"workflow spec not found: {path}; see workflows/cu_emt.toml for an example")
    with open(path, "rb") as handle:
        try:
            raw = tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML ({exc})") from None
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown top-level key(s) {', '.join(unknown)}; known: {', '.join(sorted(_TOP_KEYS))}")
    engines = raw.get("engines", ["ase"])
    bad = [e for e in engines if e not in ENGINES]
    if bad or not engines:
        raise ValueError(f"{path}: engines must be a non-empty subset of {list(ENGINES)}, got {engines!r}")
    reference = raw.get("reference", {})
    for engine in engines:
        if engine not in reference:
            raise ValueError(f"{path}: [reference] needs an entry for engine '{engine}', e.g. "
                             f"{engine} = \"{'emt:Cu' if engine == 'ase' else 'lammps:Cu_u3.eam'}\"")
    models: list[str] = []
    for pattern in raw.get("models", []):
        matches = sorted(glob.glob(pattern)) or sorted(glob.glob(str(path.parent / pattern)))
        models += [m for m in matches if m not in models]
    defaults, limits = raw.get("defaults", {}), raw.get("limits", {})
    protocols = []
    for k, entry in enumerate(raw.get("protocol", [])):
        entry = dict(entry)
        kind = entry.pop("kind", None)
        if kind not in PROTOCOLS:
            raise ValueError(f"{path}: [[protocol]] #{k + 1} needs kind = one of {list(PROTOCOLS)}, got {kind!r}")
        values = {**defaults, **entry}
        values["limits"] = {**limits, **values.get("limits", {})}
        if kind != "npt":
            values = {key: v for key, v in values.items() if key not in ("pressure_bar", "barostat_damping_fs")}
        protocols.append(make_settings(kind, **values))
    if not protocols:
        raise ValueError(f"{path}: no [[protocol]] entries; add at least one, e.g. [[protocol]] kind = \"nve\"")
    return Workflow(name=raw.get("name", path.stem), output_dir=Path(raw.get("output_dir", f"runs/md/{path.stem}")),
                    engines=list(engines), models=models, system=raw.get("system", {}), reference=reference,
                    protocols=protocols, np=int(raw.get("np", 1)), source=str(path), raw=raw)


def run_one(engine: str, atoms, potential: str, settings, output_dir, *, np: int = 1, resume: bool = True):
    """One protocol run on one engine; returns its RunResult."""
    if engine == "ase":
        from mdval.md.ase_engine import run_ase

        return run_ase(atoms, potential, settings, output_dir, resume=resume)
    from mdval.md.lammps_engine import run_lammps

    return run_lammps(atoms, potential, settings, output_dir, np=np, resume=resume)


def run_workflow(workflow: Workflow, *, resume: bool = True, log=print) -> dict:
    """Run every (engine, protocol, potential) of a workflow; returns and writes ``summary.json``."""
    atoms = workflow.build_atoms()
    summary = {"name": workflow.name, "source": workflow.source, "models": workflow.models,
               "reference": workflow.reference, "engines": workflow.engines, "runs": []}
    first_reference: dict = {}
    for engine in workflow.engines:
        for settings in workflow.protocols:
            base = workflow.output_dir / engine / settings.kind
            ref_spec = workflow.reference[engine]
            log(f"[{engine} {settings.kind}] reference {ref_spec}")
            ref = run_one(engine, atoms, ref_spec, settings, base / "reference", np=workflow.np, resume=resume)
            first_reference.setdefault(settings.kind, ref)
            summary["runs"].append(_entry(ref, ref_spec, "reference", None, first_reference[settings.kind]))
            for model in workflow.models:
                label = res.Potential(model).label
                log(f"[{engine} {settings.kind}] model {model}")
                result = run_one(engine, atoms, model, settings, base / label, np=workflow.np, resume=resume)
                summary["runs"].append(_entry(result, model, "model", ref, first_reference[settings.kind]))
    res.write_json_atomic(workflow.output_dir / "summary.json", summary)
    return summary


def _entry(result, spec: str, role: str, reference, first_reference) -> dict:
    entry = {"role": role, "potential": spec, "engine": result.engine, "protocol": result.protocol,
             "status": result.status, "reason": result.reason, "time_to_failure_ps": result.time_to_failure_ps,
             "output_dir": result.output_dir,
             "summary": {k: v for k, v in result.observables.items() if k not in ("rdf",)}}
    if reference is not None and result.ok and reference.ok:
        entry["vs_reference"] = res.compare_to_reference(result.observables, reference.observables)
    if first_reference is not None and first_reference is not reference and first_reference is not result \
            and result.ok and first_reference.ok:
        entry["vs_first_engine_reference"] = res.compare_to_reference(result.observables, first_reference.observables)
    return entry
