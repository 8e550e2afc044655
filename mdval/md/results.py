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

``results.json`` (the contract; README "results.json: every observable with its error")::

    {"status": "completed" | "failed", "protocol", "engine", "output_dir", "steps_done", "reason",
     "detector", "time_to_failure_ps", "settings", "provenance", "files",
     "timing": {"startup_s", "ms_per_step_steady", "steady_steps", "method"},   # timing_record
     "observables": {                                   # analyse; {"analysis_error": str} if it fails
        "n_production_samples": int,
        "production_window": {"start_ps", "end_ps", "equilibration_ps", "searched_from_ps", "series",
                              "method", "n_samples", "statistical_inefficiency", "n_eff"},
        "temperature_K": E, "pressure_bar": E, "density_g_cm3": E (NPT only),
        "drift" (NVE): {"drift_meV_per_atom_ps": E, "rms_fluctuation_meV_per_atom": E,
                        "max_excursion_meV_per_atom", "sigma_ke_meV_per_atom", "drift_over_sigma_ke",
                        "start_ps", "duration_ps", "n_samples"},
        "rdf" (NVT, NPT): {"r_A", "total", "partial": {"A-B": [...]}, "n_frames", "r_max_A", "start_ps",
                           "blocks": {"n_blocks", "total": [[...]], "partial": {"A-B": [[...]]}}},
        "first_peak" (NVT, NPT): {"total" | "A-B": {"position_A": E, "height": E}}}}

E is an observable as ``{"value", "stderr", "n_eff", "unit"}`` (null: unknown), with
``"warning": "run longer; N_eff = 3"`` below ``observables.MIN_N_EFF`` effective samples
(:func:`mdval.md.observables.estimate_json`). Means use the statistical inefficiency
(:func:`mdval.md.uncertainty.mean_estimate`), the drift an autocorrelation-aware regression error
(:func:`~mdval.md.uncertainty.drift_estimate`), first peaks the all-frames value with the spread of
blocks of frames. :func:`compare_to_reference` gives a run's errors against a reference run as
estimates in the same form.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import json
import math
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from mdval import fileio
from mdval.md import observables as obs
from mdval.md import uncertainty as unc
from mdval.md.protocols import ProtocolSettings, RunResult
from mdval.md.stability import Failure
from mdval.md.uncertainty import Estimate

THERMO_COLUMNS: tuple[str, ...] = (
    "step",
    "time_ps",
    "phase",
    "epot_eV",
    "ekin_eV",
    "etot_eV",
    "temperature_K",
    "pressure_bar",
    "volume_A3",
    "density_g_cm3",
)
THERMO_FILE = "thermo.csv"
TRAJECTORY_FILE = "trajectory.extxyz"
RESULTS_FILE = "results.json"
#: the thermo column whose equilibration sets each protocol's production window: the potential
#: energy (the structure settling) in NVE and NVT, the density (the box settling, slower) in NPT
WINDOW_SERIES: dict[str, str] = {"nve": "epot_eV", "nvt": "epot_eV", "npt": "density_g_cm3"}
#: the accepted forms of a potential spec, for error messages
FORMS = (
    "a model file (models/cu/tanh-adam.pt), emt:ELEMENT (e.g. emt:Cu), lammps:PRESET (e.g. lammps:Cu_u3.eam) "
    "or eam:FILE (e.g. eam:Cu_u3.eam)"
)


@dataclass(frozen=True)
class Potential:
    """What the atoms interact with, decided once from its spec by :meth:`resolve`.

    ``kind`` is ``"model"`` (an mdval model file: ``path``, ``metadata``, ``sha256``),
    ``"emt"`` (ASE's EMT for ``element``, ASE engine only), ``"lammps"`` (``preset`` of
    mdval.data.teachers.lammps_preset, both engines; the ASE engine calls LAMMPS through
    LAMMPSlib, so both run the same code) or ``"eam"`` (the EAM file ``preset``: ASE's own EAM
    calculator in the ASE engine, ``pair_style eam`` in LAMMPS; two implementations of one
    potential, the ASE one about 0.25 s per step for 108 atoms). ``spec`` is the text it was
    given; a model's ``path`` is absolute with links resolved, its ``label`` the stem of the name
    it was given.
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

        ``emt`` / ``emt:El``, ``lammps:PRESET`` and ``eam:FILE`` are references; anything else is a
        model file path (so ``emt_fit.pt`` is a model). Raises ValueError (FileNotFoundError for a missing
        file) with one line naming the spec and the accepted forms.
        """
        if isinstance(spec, Potential):
            return spec
        text = str(spec)
        if text == "emt" or text.startswith("emt:"):
            from mdval.data.teachers import EMT_ELEMENTS

            element = text.split(":", 1)[1] if ":" in text else None
            if element is not None and element not in EMT_ELEMENTS:
                raise ValueError(
                    f"potential '{text}': EMT has no parameters for '{element}'; "
                    f"use emt:ELEMENT with one of {', '.join(EMT_ELEMENTS)}"
                )
            return cls("emt", text, element=element)
        if text.startswith("lammps:"):
            from mdval.data.teachers import lammps_preset

            try:
                lammps_preset(text.split(":", 1)[1])
            except ValueError as exc:
                raise ValueError(f"potential '{text}': {exc}") from None
            return cls("lammps", text, preset=text.split(":", 1)[1])
        if text.startswith("eam:"):
            from mdval.data.teachers import eam_potential

            try:
                eam_potential(text.split(":", 1)[1])
            except ValueError as exc:
                raise ValueError(f"potential '{text}': {exc}") from None
            return cls("eam", text, preset=text.split(":", 1)[1])
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
            return {
                "kind": "model",
                "path": str(self.path),
                "sha256": self.sha256,
                "activation": meta.get("activation"),
                "optimizer": meta.get("optimizer"),
                "architecture": meta.get("architecture"),
                "compute_dtype": meta.get("compute_dtype"),
                "cutoff_A": meta.get("cutoff"),
                "type_names": meta.get("type_names"),
            }
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
    return {
        "potential": potential.describe(),
        "engine": engine,
        "versions": versions(),
        "seed": settings.seed,
        "timestep_fs": settings.timestep_fs,
        "thermostat": settings.thermostat,
        "host": platform.node(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }


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
    """Observables of a run (the results.json contract of the module docstring) from its thermo
    columns and production trajectory frames.

    The production samples after ``settings.warmup_ps``, up to a first non-finite energy (the last
    row of a failed run), are searched for the production window: the series of
    :data:`WINDOW_SERIES` by :func:`mdval.md.observables.production_window` (MSER, White 1997).
    Temperature, pressure (and in NPT the density) are averaged over the window, and the RDF and
    first peaks use its frames. The NVE drift is fitted over all of those samples, not only the
    window: E_tot is conserved whether or not the structure has settled, and the longer span
    resolves the slope better. Raises ValueError with fewer than 3 such samples.
    """
    prod = np.flatnonzero(thermo["phase"] == "production")
    if prod.size == 0:
        return {}
    column = WINDOW_SERIES[settings.kind]
    t = thermo["time_ps"][prod]
    rows = prod[t >= t[0] + settings.warmup_ps - 1e-9]
    bad = ~np.isfinite(thermo["epot_eV"][rows] + thermo["etot_eV"][rows] + thermo[column][rows])
    rows = rows[: int(np.argmax(bad))] if bad.any() else rows
    if rows.size < 3:
        raise ValueError(
            f"{rows.size} finite production sample(s) after the warm-up of {settings.warmup_ps} ps; "
            "the analysis needs 3: run longer, sample more often or shorten warmup_ps"
        )
    window = obs.production_window(thermo["time_ps"][rows], thermo[column][rows], column)
    in_window = rows[window.start :]
    out: dict = {"n_production_samples": int(prod.size), "production_window": window.as_dict()}
    means = {
        "temperature_K": "K",
        "pressure_bar": "bar",
        **({"density_g_cm3": "g/cm³"} if settings.kind == "npt" else {}),
    }
    for name, unit in means.items():
        x = thermo[name][in_window]
        x = x[np.isfinite(x)]  # the pressure of a calculator without stress is NaN throughout
        if x.size >= 2:
            out[name] = obs.estimate_json(unc.mean_estimate(x, unit))
    if settings.kind == "nve":
        out["drift"] = obs.energy_drift(
            thermo["time_ps"][rows], thermo["etot_eV"][rows], n_atoms, kinetic_energy_eV=thermo["ekin_eV"][rows]
        ).as_dict()
    if settings.kind in ("nvt", "npt") and frames:
        out.update(_structure(settings, frames, window))
    return out


def _structure(settings, frames: list, window: obs.ProductionWindow) -> dict:
    """``rdf`` (over the window's frames, and per block of them) and ``first_peak`` estimates.

    A block spans at least two statistical inefficiencies of the window's series (in steps), so
    that blocks are nearly independent (:func:`mdval.md.observables.rdf_block_count`). A window
    without frames (a trajectory written more rarely than the window is long) falls back on the
    last frame, with no error estimate.
    """
    use = [f for f in frames if f.info.get("time_ps", window.start_ps) >= window.start_ps - 1e-9] or frames[-1:]
    r_max = min(settings.rdf_r_max_A, min(float(obs.cell_heights_A(f.cell.array).min()) / 2 for f in use))
    g = obs.rdf(use, r_max, settings.rdf_bins)
    steps_per_block = 2.0 * window.statistical_inefficiency * settings.sample_interval
    n_blocks = obs.rdf_block_count(len(use), math.ceil(steps_per_block / settings.trajectory_interval))
    blocks = obs.rdf_blocks(use, r_max, settings.rdf_bins, n_blocks)
    rdf = {
        **g.as_dict(),
        "r_max_A": r_max,
        "start_ps": float(use[0].info.get("time_ps", math.nan)),
        "blocks": {
            "n_blocks": len(blocks),
            "total": [b.total.tolist() for b in blocks],
            "partial": {k: [b.partial[k].tolist() for b in blocks] for k in g.partial},
        },
    }
    peaks = {
        "total": obs.first_peak_estimates(g.r_A, g.total, [b.total for b in blocks]),
        **{k: obs.first_peak_estimates(g.r_A, v, [b.partial[k] for b in blocks]) for k, v in g.partial.items()},
    }
    return {
        "rdf": rdf,
        "first_peak": {k: {name: obs.estimate_json(e) for name, e in p.items()} for k, p in peaks.items()},
    }


def timing_record(startup_s: float, steady_s: float, steady_steps: int, method: str) -> dict:
    """A run's cost, results.json's ``timing``: ``startup_s`` (s), ``ms_per_step_steady`` (ms per
    production step after the warm-up, ``steady_s`` over ``steady_steps``; None when no step was
    timed), ``steady_steps`` and how they were measured (``method``)."""
    return {
        "startup_s": startup_s,
        "ms_per_step_steady": 1000.0 * steady_s / steady_steps if steady_steps > 0 else None,
        "steady_steps": int(steady_steps),
        "method": method,
    }


def finish(
    out: Path,
    settings: ProtocolSettings,
    potential: Potential,
    engine: str,
    n_atoms: int,
    failure: Failure | None,
    step: int,
    extra: dict,
    timing: dict | None = None,
) -> RunResult:
    """Analyse the files in ``out`` and write ``results.json``; shared by both engines.

    ``timing`` (:func:`timing_record`) is that of the MD steps this call ran; None (it ran none: a
    finished run analysed again) keeps the timing of the results.json it replaces.
    """
    if timing is None and (out / RESULTS_FILE).exists():
        try:
            timing = json.loads((out / RESULTS_FILE).read_text()).get("timing")
        except (OSError, ValueError):
            timing = None
    thermo = read_thermo(out / THERMO_FILE)
    frames = read_trajectory(out / TRAJECTORY_FILE)
    try:
        observables = analyse(settings, thermo, frames, n_atoms)
    except Exception as exc:  # e.g. too few samples of a run that failed early
        observables = {"analysis_error": f"{type(exc).__name__}: {exc}"}
    result = RunResult(
        status="failed" if failure else "completed",
        protocol=settings.kind,
        engine=engine,
        output_dir=str(out),
        steps_done=int(step),
        reason=failure.reason if failure else None,
        detector=failure.detector if failure else None,
        time_to_failure_ps=failure.time_ps if failure else None,
        observables=observables,
        provenance=provenance(potential, engine, settings, extra),
        settings=settings.as_dict(),
        files={"thermo": THERMO_FILE, "trajectory": TRAJECTORY_FILE, "results": RESULTS_FILE},
        timing=timing or {},
    )
    write_json_atomic(out / RESULTS_FILE, result.as_dict())
    return result


def _rdf_curves(rdf: dict, key: str) -> tuple[list, list]:
    """g(r) of ``key`` ("total" or a pair "A-B") over all frames and per block, from results.json's ``rdf``."""
    blocks = rdf.get("blocks") or {}
    if key == "total":
        return rdf["total"], blocks.get("total", [])
    return rdf["partial"][key], (blocks.get("partial") or {}).get(key, [])


def compare_to_reference(observables: dict, reference: dict) -> dict:
    """A run against the reference run (both observables as in results.json), each comparison an
    estimate in the contract:

    - ``rdf_error_percent``: {"total", "A-B", ...}, 100·∫|g − g_ref|dr / ∫|g_ref − 1|dr over all
      frames, with the standard error from blocks of both runs
      (:func:`mdval.md.observables.rdf_error_estimate`);
    - NPT: ``density_difference_g_cm3`` = ρ − ρ_ref (:meth:`Estimate.minus`) and
      ``density_relative_error_percent`` = 100·(ρ − ρ_ref)/ρ_ref
      (:func:`mdval.md.observables.relative_difference_percent`).
    """
    out = {}
    g, g_ref = observables.get("rdf"), reference.get("rdf")
    if g and g_ref and len(g["r_A"]) == len(g_ref["r_A"]) and np.allclose(g["r_A"], g_ref["r_A"]):
        keys = ["total"] + [k for k in g["partial"] if k in g_ref["partial"]]
        out["rdf_error_percent"] = {}
        for key in keys:
            (mine, mine_blocks), (theirs, their_blocks) = _rdf_curves(g, key), _rdf_curves(g_ref, key)
            out["rdf_error_percent"][key] = obs.estimate_json(
                obs.rdf_error_estimate(g["r_A"], mine, theirs, mine_blocks, their_blocks)
            )
    d, d_ref = observables.get("density_g_cm3"), reference.get("density_g_cm3")
    if d and d_ref and d["value"] is not None and d_ref["value"] is not None:
        rho, rho_ref = Estimate.from_json(d), Estimate.from_json(d_ref)
        out["density_difference_g_cm3"] = obs.estimate_json(rho.minus(rho_ref))
        out["density_relative_error_percent"] = obs.estimate_json(obs.relative_difference_percent(rho, rho_ref))
    return out
