"""What both MD engines share: the resolved potential, the thermo table, provenance, atomic writes,
and the analysis of a finished (or failed) run into observables and ``results.json`` (:func:`finish`).

Thermo table columns (CSV ``thermo.csv``, one row per ``sample_interval`` steps):

=============  =======  ===================================================
column         unit     meaning
=============  =======  ===================================================
step           -        global step (equilibration + production)
time_ps        ps       step × timestep
phase          -        "equilibration" | "production"
epot_eV        eV       potential energy
ekin_eV        eV       kinetic energy
etot_eV        eV       epot + ekin
temperature_K  K        instantaneous kinetic temperature
pressure_bar   bar      instantaneous pressure (virial + kinetic)
volume_A3      Å³       box volume
density_g_cm3  g/cm³    mass density
=============  =======  ===================================================
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from mdval import fileio
from mdval.md import observables as obs
from mdval.md.protocols import ProtocolSettings, RunResult
from mdval.md.stability import Failure

THERMO_COLUMNS: tuple[str, ...] = ("step", "time_ps", "phase", "epot_eV", "ekin_eV", "etot_eV", "temperature_K",
                                   "pressure_bar", "volume_A3", "density_g_cm3")
THERMO_FILE = "thermo.csv"
TRAJECTORY_FILE = "trajectory.extxyz"
RESULTS_FILE = "results.json"
#: the accepted forms of a potential spec, for error messages
FORMS = "a model file (models/cu/tanh-adam.pt), emt:ELEMENT (e.g. emt:Cu) or lammps:PRESET (e.g. lammps:Cu_u3.eam)"


@dataclass(frozen=True)
class Potential:
    """What the atoms interact with, decided once from its spec by :meth:`resolve`.

    ``kind`` is ``"model"`` (an mdval model file: ``path``, ``metadata``, ``sha256``),
    ``"emt"`` (ASE's EMT for ``element``, ASE engine only) or ``"lammps"`` (``preset`` of
    mdval.data.teachers.lammps_preset, both engines). ``spec`` is the text it was given; a model's
    ``path`` is absolute with links resolved, its ``label`` the stem of the name it was given.
    """

    kind: str
    spec: str
    path: Path | None = None
    metadata: dict | None = None
    sha256: str | None = None
    element: str | None = None
    preset: str | None = None

    @classmethod
    def resolve(cls, spec) -> Potential:
        """The potential ``spec`` names; a :class:`Potential` is returned as it is.

        ``emt`` / ``emt:El`` and ``lammps:PRESET`` are references; anything else is a model file
        path (so ``emt_fit.pt`` is a model). Raises ValueError (FileNotFoundError for a missing
        file) with one line naming the spec and the accepted forms.
        """
        if isinstance(spec, Potential):
            return spec
        text = str(spec)
        if text == "emt" or text.startswith("emt:"):
            from mdval.data.teachers import EMT_ELEMENTS

            element = text.split(":", 1)[1] if ":" in text else None
            if element is not None and element not in EMT_ELEMENTS:
                raise ValueError(f"potential '{text}': EMT has no parameters for '{element}'; "
                                 f"use emt:ELEMENT with one of {', '.join(EMT_ELEMENTS)}")
            return cls("emt", text, element=element)
        if text.startswith("lammps:"):
            from mdval.data.teachers import lammps_preset

            try:
                lammps_preset(text.split(":", 1)[1])
            except ValueError as exc:
                raise ValueError(f"potential '{text}': {exc}") from None
            return cls("lammps", text, preset=text.split(":", 1)[1])
        path = Path(text)
        if not path.is_file() and path.suffix != ".pt":
            raise ValueError(f"unknown potential '{text}': no such file; give {FORMS}")
        from mdval.deploy.model_file import read_metadata

        return cls("model", text, path=path.resolve(), metadata=read_metadata(path), sha256=sha256_file(path))

    @property
    def is_model(self) -> bool:
        return self.kind == "model"

    @property
    def label(self) -> str:
        """The run folder name: the model file's stem, or the reference spec."""
        return Path(self.spec).stem if self.is_model else self.spec

    @property
    def type_names(self) -> list[str] | None:
        """The model's element map (LAMMPS type order); None for a reference."""
        return list(self.metadata["type_names"]) if self.is_model else None

    def describe(self) -> dict:
        if self.is_model:
            meta = self.metadata
            return {"kind": "model", "path": str(self.path), "sha256": self.sha256,
                    "activation": meta.get("activation"), "optimizer": meta.get("optimizer"),
                    "architecture": meta.get("architecture"), "compute_dtype": meta.get("compute_dtype"),
                    "cutoff_A": meta.get("cutoff"), "type_names": meta.get("type_names")}
        return {"kind": "reference", "spec": self.spec}


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def versions() -> dict:
    out = {}
    for name in ("mdval", "ase", "lammps", "torch", "numpy", "vesin", "mpich"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["python"] = platform.python_version()
    return out


def provenance(potential: Potential, engine: str, settings, extra: dict | None = None) -> dict:
    return {"potential": potential.describe(), "engine": engine, "versions": versions(),
            "seed": settings.seed, "timestep_fs": settings.timestep_fs, "thermostat": settings.thermostat,
            "host": platform.node(), "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **(extra or {})}


def jsonable(value):
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if np.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_json_atomic(path, data: dict) -> None:
    """Write ``data`` as JSON atomically, numpy values as plain numbers and non-finite floats as null."""
    fileio.write_json(path, jsonable(data))


def thermo_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=THERMO_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k) for k in THERMO_COLUMNS})
    return buffer.getvalue()


def read_thermo(path) -> dict:
    """The thermo CSV as columns: numeric columns as float arrays, ``phase`` as a string array."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    out = {}
    for column in THERMO_COLUMNS:
        values = [r.get(column) for r in rows]
        if column == "phase":
            out[column] = np.array(values, dtype=object)
        else:
            out[column] = np.array([float(v) if v not in (None, "") else np.nan for v in values])
    return out


def whole_frames(text: str, frame_lines) -> str:
    """``text`` up to the end of its last whole frame; a frame cut short (a kill in the middle of
    its write) and anything after it are left out.

    ``frame_lines(lines, k)`` is the number of lines of the frame that starts at line ``k``; it
    raises ValueError or IndexError where no frame starts.
    """
    lines = text.split("\n")[:-1]  # what follows the last newline is empty or a cut line
    k = 0
    while k < len(lines):
        try:
            n = frame_lines(lines, k)
        except (ValueError, IndexError):
            break
        if n < 1 or k + n > len(lines):
            break
        k += n
    return "".join(line + "\n" for line in lines[:k])


def read_trajectory(path) -> list:
    """The frames of an extxyz trajectory, ``[]`` if there is none. Only whole frames are read: a
    last frame cut short by a kill is dropped, the frames before it are kept."""
    from ase.io import read

    path = Path(path)
    text = whole_frames(path.read_text(), lambda lines, k: int(lines[k]) + 2) if path.exists() else ""
    return read(io.StringIO(text), ":", format="extxyz") if text else []


def analyse(settings, thermo: dict, frames: list, n_atoms: int) -> dict:
    """Observables of a run from its thermo columns and production trajectory frames.

    Production samples only; the estimators skip ``settings.warmup_ps`` of production time.
    nve: energy drift; nvt/npt: total and partial RDFs with first peaks; npt: density over the
    production half (block average). Every protocol: temperature, pressure and density statistics.
    """
    prod = thermo["phase"] == "production"
    if not np.any(prod):
        return {}
    t = thermo["time_ps"][prod]
    t_rel = t - t[0]
    keep = t_rel >= settings.warmup_ps - 1e-9
    out: dict = {"n_production_samples": int(prod.sum())}
    for column, name in (("temperature_K", "temperature_K"), ("pressure_bar", "pressure_bar"),
                         ("density_g_cm3", "density_g_cm3")):
        out[name] = obs.series_stats(thermo[column][prod][keep])
    if settings.kind == "nve" and keep.sum() >= 3:
        out["drift"] = obs.energy_drift(t, thermo["etot_eV"][prod], n_atoms, kinetic_energy_eV=thermo["ekin_eV"][prod],
                                        warmup_ps=settings.warmup_ps).as_dict()
    if settings.kind == "npt":
        rho = thermo["density_g_cm3"][prod]
        half = rho[rho.size // 2:]
        half = half[np.isfinite(half)]
        if half.size >= 2:
            block = obs.block_average(half)
            out["density"] = {"mean_g_cm3": block.mean, "standard_error_g_cm3": block.standard_error,
                              "n_samples": block.n_samples, "series_g_cm3": rho.tolist()}
    if settings.kind in ("nvt", "npt") and frames:
        t0 = float(thermo["time_ps"][prod][0]) + settings.warmup_ps
        use = [f for f in frames if f.info.get("time_ps", t0) >= t0 - 1e-9] or frames
        r_max = min(settings.rdf_r_max_A, min(float(obs.cell_heights_A(f.cell.array).min()) / 2 for f in use))
        g = obs.rdf(use, r_max, settings.rdf_bins)
        out["rdf"] = g.as_dict()
        out["rdf"]["r_max_A"] = r_max
        out["first_peak"] = {"total": obs.first_peak(g.r_A, g.total),
                             **{k: obs.first_peak(g.r_A, v) for k, v in g.partial.items()}}
    return out


def finish(out: Path, settings: ProtocolSettings, potential: Potential, engine: str, n_atoms: int,
           failure: Failure | None, step: int, extra: dict) -> RunResult:
    """Analyse the files in ``out`` and write ``results.json``; shared by both engines."""
    thermo = read_thermo(out / THERMO_FILE)
    frames = read_trajectory(out / TRAJECTORY_FILE)
    try:
        observables = analyse(settings, thermo, frames, n_atoms)
    except Exception as exc:  # e.g. too few samples of a run that failed early
        observables = {"analysis_error": f"{type(exc).__name__}: {exc}"}
    result = RunResult(
        status="failed" if failure else "completed", protocol=settings.kind, engine=engine, output_dir=str(out),
        steps_done=int(step), reason=failure.reason if failure else None,
        detector=failure.detector if failure else None,
        time_to_failure_ps=failure.time_ps if failure else None, observables=observables,
        provenance=provenance(potential, engine, settings, extra), settings=settings.as_dict(),
        files={"thermo": THERMO_FILE, "trajectory": TRAJECTORY_FILE, "results": RESULTS_FILE})
    write_json_atomic(out / RESULTS_FILE, result.as_dict())
    return result


def compare_to_reference(observables: dict, reference: dict) -> dict:
    """RDF error (%) and density relative error (%) of a run against the reference run."""
    out = {}
    g, g_ref = observables.get("rdf"), reference.get("rdf")
    if g and g_ref and len(g["r_A"]) == len(g_ref["r_A"]) and np.allclose(g["r_A"], g_ref["r_A"]):
        out["rdf_error_percent"] = {"total": obs.rdf_error_percent(g["r_A"], g["total"], g_ref["total"])}
        for key in g["partial"]:
            if key in g_ref["partial"]:
                out["rdf_error_percent"][key] = obs.rdf_error_percent(g["r_A"], g["partial"][key], g_ref["partial"][key])
    d, d_ref = observables.get("density"), reference.get("density")
    if d and d_ref:
        out["density_relative_error_percent"] = obs.relative_error_percent(d["mean_g_cm3"], d_ref["mean_g_cm3"])
        out["density_difference_sigma"] = float(abs(d["mean_g_cm3"] - d_ref["mean_g_cm3"]) / np.hypot(
            d["standard_error_g_cm3"], d_ref["standard_error_g_cm3"])) if (d["standard_error_g_cm3"] or d_ref["standard_error_g_cm3"]) else None
    return out
