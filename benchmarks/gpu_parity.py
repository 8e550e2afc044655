"""GPU check, in-process parts (issue 21): the ASE calculator and one training epoch on the
device against the same on the CPU.

- ``calculator_parity``: energy (eV), forces (eV/Å), stress (eV/Å³), per-atom energies and
  per-atom virials (``energies``, ``stresses``) of ``mdval.Calculator(device=...)`` against
  ``device="cpu"`` on a rattled, sheared 108-atom fcc Cu cell, for DeepPot-SE (exact and
  compressed), Behler-Parrinello (every architecture mdval.nn builds), a DeepPot-SE of each
  TAAFS family (coefficients moved off their tanh start), LAAF, IReLU, the zoo models in
  models/cu/, and one float32 model. Relative error = max |device - cpu| / max |cpu| per
  property; float64 must agree to 1e-10, float32 to 1e-5.
- ``training_parity``: one epoch (4 batches of 2 EMT-labelled 32-atom Cu frames) of Adam and of
  RLEKF, the same strategy objects the trainer drives (mdval.train.optimizers.make_strategy), on
  a model copy on the device and one on the CPU, batch by batch. The first loss (same weights)
  must agree to 1e-10, the loss after one update to 1e-8.

On the CPU rehearsal the "device" is the CPU too: the numbers are then 0 and only the plumbing
is tested.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import torch

import common

#: float64 and float32 parity tolerances (relative, see the module docstring).
TOL_FLOAT64 = 1e-10
TOL_FLOAT32 = 1e-5
#: the loss after one optimizer update: the update amplifies rounding a little.
TOL_AFTER_UPDATE = 1e-8

PROPERTIES = ("energy", "forces", "stress", "energies", "stresses")

#: Small models (sizes of tests/conftest.py) with a 4.5 Å cutoff, per architecture.
SMALL = {
    "deeppot_se": {
        "cutoff": 4.5,
        "cutoff_smooth": 2.5,
        "embedding": [8, 16],
        "fitting": [16, 16],
        "axis_neuron": 4,
        "neighbor_norm": 30.0,
    },
    "behler_parrinello": {"cutoff": 4.5, "fitting": [16, 16]},
}


def small_model(architecture: str = "deeppot_se", activation: str = "tanh", seed: int = 0):
    """A small float64 Cu model whose TAAFS coefficients and LAAF slopes are moved off their
    tanh start (so the device evaluates the bases, not tanh in disguise)."""
    from mdval.nn import build_model

    config = {
        **SMALL.get(architecture, {"cutoff": 4.5}),
        "architecture": architecture,
        "type_names": ["Cu"],
        "activation": activation,
        "seed": seed,
    }
    model = build_model(config)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("coeffs") or name.endswith("slope"):
                p.add_(0.05 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model


def export_small(
    folder: Path, name: str, architecture: str = "deeppot_se", activation: str = "tanh", compute_dtype: str = "float64"
) -> Path:
    from mdval.deploy import export

    folder.mkdir(parents=True, exist_ok=True)
    return export(
        small_model(architecture, activation),
        folder / f"{name}.pt",
        {"optimizer": "none", "note": "untrained weights (GPU check)"},
        compute_dtype=compute_dtype,
    )


def parity_models(folder: Path) -> list[dict]:
    """[{model, path, dtype, tolerance}] of every model the calculator parity covers."""
    from mdval.deploy.compress import compress_file
    from mdval.nn import BASIS_NAMES
    from mdval.nn.build import ARCHITECTURES

    out = []

    def add(label, path, dtype="float64"):
        out.append(
            {
                "model": label,
                "path": path,
                "dtype": dtype,
                "tolerance": TOL_FLOAT64 if dtype == "float64" else TOL_FLOAT32,
            }
        )

    for arch in ARCHITECTURES:
        add(f"{arch} tanh", export_small(folder, f"{arch}_tanh", arch))
    exact = folder / "deeppot_se_tanh.pt"
    add("deeppot_se tanh compressed", compress_file(exact, folder / "deeppot_se_tanh_compressed.pt")[0])
    for family in BASIS_NAMES:
        add(
            f"deeppot_se taafs {family}",
            export_small(folder, f"taafs_{family}", activation=f"taafs:basis={family},scope=layer"),
        )
    add("deeppot_se laaf", export_small(folder, "laaf", activation="laaf:base=tanh,scope=neuron,n=10"))
    add("deeppot_se irelu", export_small(folder, "irelu", activation="irelu"))
    for path in sorted((common.ROOT / "models" / "cu").glob("*.pt")):
        add(f"zoo {path.stem}", path)
    add("deeppot_se tanh float32", export_small(folder, "deeppot_se_f32", compute_dtype="float32"), "float32")
    return out


def test_atoms():
    """108 fcc Cu atoms, cell sheared by ~2 % (triclinic), positions rattled by 0.05 Å."""
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    rng = np.random.default_rng(0)
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.02 * rng.standard_normal((3, 3))), scale_atoms=True)
    atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
    return atoms


def relative_error(value, reference) -> float:
    """max |value - reference| / max |reference| (the absolute difference if the reference is 0)."""
    a, b = np.asarray(value, dtype=float), np.asarray(reference, dtype=float)
    diff = float(np.max(np.abs(a - b))) if b.size else 0.0
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    return diff / scale if scale > 0 else diff


def calculator_results(path: Path, device: str, atoms) -> tuple[dict, float]:
    """(ASE results of PROPERTIES, seconds of the call) of a fresh calculator on ``device``."""
    from ase.calculators.calculator import all_changes

    from mdval.deploy.calculator import Calculator

    calc = Calculator(path, device=device)
    start = time.perf_counter()
    calc.calculate(atoms.copy(), list(PROPERTIES), all_changes)
    return {p: np.array(calc.results[p]) for p in PROPERTIES}, time.perf_counter() - start


def calculator_parity(ctx) -> dict:
    atoms = test_atoms()
    rows, failed = [], []
    for spec in parity_models(ctx.work / "parity_models"):
        row = {"model": spec["model"], "dtype": spec["dtype"], "tolerance": spec["tolerance"]}
        try:
            reference, _ = calculator_results(spec["path"], "cpu", atoms)
            result, seconds = calculator_results(spec["path"], ctx.device, atoms)
            row.update({p: relative_error(result[p], reference[p]) for p in PROPERTIES})
            row["worst"] = max(row[p] for p in PROPERTIES)
            row["device call s"] = seconds
            row["ok"] = row["worst"] <= spec["tolerance"]
        except Exception as exc:  # noqa: BLE001 - recorded per model; the others still run
            row.update({"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:500]}"})
        rows.append(row)
        if not row["ok"]:
            failed.append(spec["model"])
    return {
        "ok": not failed,
        "columns": ["model", "dtype", *PROPERTIES, "tolerance", "ok", "error"],
        "rows": rows,
        "summary": (
            f"{len(atoms)} atoms (sheared, rattled fcc Cu); relative error = max |{ctx.device} "
            f"- cpu| / max |cpu| per property; {len(rows) - len(failed)} of {len(rows)} "
            "models within tolerance" + (f"; failed: {', '.join(failed)}" if failed else "")
        ),
    }


# --- training -----------------------------------------------------------------------------------


def emt_frames(n: int, seed: int = 0) -> list:
    """``n`` EMT-labelled frames of rattled 32-atom fcc Cu cells (energies eV, forces eV/Å)."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from mdval.data.frames import Frame

    frames = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
        atoms.positions += np.random.default_rng(seed + k).normal(0.0, 0.1, atoms.positions.shape)
        atoms.calc = EMT()
        frames.append(
            Frame(
                symbols=atoms.get_chemical_symbols(),
                positions=atoms.positions,
                cell=atoms.cell.array,
                pbc=atoms.pbc,
                energy=atoms.get_potential_energy(),
                forces=atoms.get_forces(),
            )
        )
    return frames


def trainable_start(frames, cache):
    """A small TAAFS DeepPot-SE with descriptor statistics and energy shift set, as the trainer
    sets them before the first step."""
    from mdval.train.statistics import fit_energy_shift, network_energies, set_descriptor_statistics, set_energy_shift

    model = small_model(activation="taafs:basis=chebyshev1,scope=layer")
    set_descriptor_statistics(model, frames, neighbor_cache=cache, n_frames=len(frames), seed=0)
    baseline = network_energies(model, frames, neighbor_cache=cache)
    set_energy_shift(model, fit_energy_shift(frames, model.type_names, baseline))
    return model


def one_epoch(name: str, start, frames, cache, device: str, batch_size: int = 2) -> dict:
    """One epoch of optimizer ``name`` on a copy of ``start`` on the CPU and one on ``device``."""
    from mdval.data.batch import make_batch
    from mdval.train.loss import LRSchedule
    from mdval.train.optimizers import make_strategy
    from mdval.train.strategy import LossWeights

    schedule = LRSchedule(1e-3, 1e-5, 100)
    options = {"verbose": False} if name != "adam" else {}
    models = {"cpu": copy.deepcopy(start), "device": copy.deepcopy(start).to(device)}
    strategies = {k: make_strategy(name, m, options, schedule) for k, m in models.items()}
    losses = {"cpu": [], "device": []}
    seconds = {"cpu": 0.0, "device": 0.0}
    order = np.random.default_rng(0).permutation(len(frames))
    for step, first in enumerate(range(0, len(frames), batch_size)):
        batch = make_batch(
            [frames[i] for i in order[first : first + batch_size]], start.type_names, start.cutoff, cache
        )
        batches = {"device": batch.to(device), "cpu": batch}
        for key in ("cpu", "device"):
            t = time.perf_counter()
            out = strategies[key].step(models[key], batches[key], LossWeights(), step)
            seconds[key] += time.perf_counter() - t
            losses[key].append(out["loss"])
    rel = [abs(d - c) / abs(c) for c, d in zip(losses["cpu"], losses["device"])]
    params = max(
        relative_error(p.detach().cpu(), q.detach())
        for p, q in zip(models["device"].parameters(), models["cpu"].parameters())
    )
    return {
        "optimizer": name,
        "steps": len(rel),
        "loss cpu": losses["cpu"][0],
        "first loss": rel[0],
        "loss after 1 update": rel[1] if len(rel) > 1 else None,
        "last loss": rel[-1],
        "weights after epoch": params,
        "s/step cpu": seconds["cpu"] / len(rel),
        "s/step device": seconds["device"] / len(rel),
        "ok": rel[0] <= TOL_FLOAT64 and (len(rel) < 2 or rel[1] <= TOL_AFTER_UPDATE),
    }


def training_parity(ctx) -> dict:
    from mdval.data.neighbors import NeighborCache

    frames, cache = emt_frames(8), NeighborCache()
    start = trainable_start(frames, cache)
    rows = []
    for name in ("adam", "rlekf"):
        try:
            rows.append(one_epoch(name, start, frames, cache, ctx.device))
        except Exception as exc:  # noqa: BLE001 - recorded; the other optimizer still runs
            rows.append({"optimizer": name, "ok": False, "error": f"{type(exc).__name__}: {str(exc)[:500]}"})
    return {
        "ok": all(r["ok"] for r in rows),
        "columns": [
            "optimizer",
            "steps",
            "loss cpu",
            "first loss",
            "loss after 1 update",
            "last loss",
            "weights after epoch",
            "s/step cpu",
            "s/step device",
            "ok",
            "error",
        ],
        "rows": rows,
        "summary": (
            f"one epoch of 8 EMT Cu frames (32 atoms), batches of 2, TAAFS chebyshev1 DeepPot-SE; "
            f"columns are relative differences {ctx.device} vs cpu (loss; max |Δw| / max |w|); "
            f"tolerances: first loss {TOL_FLOAT64}, after 1 update {TOL_AFTER_UPDATE}"
        ),
    }
