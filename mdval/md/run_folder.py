"""Who may write into an MD run folder, and which run it holds (DESIGN.md section 11: nothing is lost).

Both engines (mdval/md/ase_engine.py, lammps_engine.py) enter their output folder through
:func:`claim`:

- ``run.lock`` is locked (``flock``) for as long as the run goes on, so two mdval processes never
  write into one folder. The kernel drops the lock when its holder dies, even by SIGKILL, so it
  never goes stale; the file names the holder's PID for the error message.
- ``run.json`` holds the run's identity, written when the run starts: the engine, the potential
  (a model file's sha256, or the reference spec), the system (formula, cell and a digest of the
  positions) and every protocol setting except ``steps``, so that a resume with more steps
  extends the run. A resume into a folder that holds another run is refused with what differs,
  given against stored; a fresh start (``resume=False``, the CLI's ``--overwrite``) deletes the
  old run's files first.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mdval import fileio
from mdval.md import results as res

RUN_FILE = "run.json"
LOCK_FILE = "run.lock"
#: What a run writes (both engines, and `mdval compare`'s timing.json); a fresh start deletes it.
OUTPUT_PATTERNS: tuple[str, ...] = (
    res.THERMO_FILE,
    res.TRAJECTORY_FILE,
    res.RESULTS_FILE,
    "checkpoint.pkl",
    "lammps_state.json",
    "structure.data",
    "timing.json",
    "restart.*",
    "log.*.lammps",
    "traj.*.lammpstrj",
    "in.*.lammps",
)
#: The fix for the command line; callers with other options (workflows) give their own.
FIX = "use another --out folder, or --overwrite to delete that run and start afresh"


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked: in use by another process, or holding another run."""


def identity(atoms, potential: res.Potential, settings, engine: str) -> dict:
    """What makes a run this run (see the module docstring); plain JSON types."""
    if potential.is_model:
        who = {"model": str(potential.path), "sha256": potential.sha256}
    else:
        who = {"reference": potential.spec}
    positions = np.round(atoms.get_positions(), 6) + 0.0  # + 0.0 turns -0.0 into 0.0
    digest = hashlib.sha256(atoms.get_atomic_numbers().astype(np.int64).tobytes() + positions.tobytes())
    system = {
        "formula": atoms.get_chemical_formula(),
        "cell_A": np.round(atoms.cell.array, 6).tolist(),
        "pbc": [bool(p) for p in atoms.pbc],
        "positions_sha256": digest.hexdigest(),
    }
    protocol = {k: v for k, v in settings.as_dict().items() if k != "steps"}
    return json.loads(json.dumps({"engine": engine, "potential": who, "system": system, "settings": protocol}))


def _potential_text(who: dict) -> str:
    if "sha256" in who:
        return f"{Path(who['model']).name} (sha256 {who['sha256'][:12]})"
    return str(who.get("reference"))


def _system_text(system: dict) -> str:
    lengths = " x ".join(f"{np.linalg.norm(v):.4g}" for v in system.get("cell_A", []))
    return f"{system.get('formula')} in a {lengths} Å cell"


def _flat(settings: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in settings.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def differences(given: dict, stored: dict) -> list[str]:
    """What differs between two identities, as "name: given X, stored Y" (empty: the same run)."""
    found = []
    if given["engine"] != stored.get("engine"):
        found.append(f"engine: given {given['engine']}, stored {stored.get('engine')}")
    g, s = given["potential"], stored.get("potential", {})
    if (g.get("sha256"), g.get("reference")) != (s.get("sha256"), s.get("reference")):
        found.append(f"potential: given {_potential_text(g)}, stored {_potential_text(s)}")
    g, s = given["system"], stored.get("system", {})
    if g != s:
        g_text, s_text = _system_text(g), _system_text(s)
        found.append(
            f"system: given {g_text}, stored {s_text}"
            if g_text != s_text
            else f"system: {g_text} in both, with other atom positions"
        )
    g, s = _flat(given["settings"]), _flat(stored.get("settings", {}))
    found += [
        f"{key}: given {g.get(key)}, stored {s.get(key)}"
        for key in [*g, *(k for k in s if k not in g)]
        if g.get(key) != s.get(key)
    ]
    return found


def outputs(out: Path) -> list[Path]:
    """The run files in ``out`` (not run.json or run.lock)."""
    return sorted({p for pattern in OUTPUT_PATTERNS for p in Path(out).glob(pattern) if p.is_file()})


def problem(out, given: dict) -> str | None:
    """Why the folder ``out`` cannot go on with the run ``given``, or None: it holds no run files,
    or the files of this same run."""
    out = Path(out)
    if not outputs(out):
        return None  # nothing to lose (at most a run.json of a run that never wrote a step)
    try:
        stored = json.loads((out / RUN_FILE).read_text())
    except (OSError, ValueError):
        return (
            f"{out} holds MD run files but no readable {RUN_FILE} (written by an older mdval?), "
            "so they cannot be matched to this run"
        )
    found = differences(given, stored)
    return f"{out} holds another run ({'; '.join(found)})" if found else None


def reset(out) -> None:
    """Delete the run files in ``out`` (a fresh start); other files in it are left alone."""
    for path in outputs(Path(out)):
        path.unlink()


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            raise RunFolderError(
                f"{out} is in use by another mdval run (PID {holder}); wait for it to end or "
                "stop it, or use another --out folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # also releases the lock


@contextlib.contextmanager
def claim(out, given: dict, *, resume: bool, fix: str = FIX) -> Iterator[None]:
    """Hold the folder ``out`` for the run ``given`` while the block runs.

    ``resume``: the folder must hold no run or this same run (which the engine then continues),
    else :class:`RunFolderError` names the differences and ``fix``. Not ``resume``: the run files
    in it are deleted first. Either way ``run.json`` is (re)written before the block runs.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        if resume:
            why = problem(out, given)
            if why:
                raise RunFolderError(f"{why}; {fix}")
        else:
            reset(out)
        fileio.write_json(out / RUN_FILE, given)
        yield


def refuse_shorter(out, done_steps: int, settings) -> None:
    """A run already past the asked length cannot be cut back: say how many steps it has."""
    if done_steps > settings.total_steps:
        production = done_steps - settings.equilibration_steps
        raise RunFolderError(
            f"{out} already holds {done_steps} steps of this run ({production} production), more than the "
            f"{settings.total_steps} asked for (steps = {settings.steps}); give steps >= {production}, "
            "or --overwrite to start afresh"
        )
