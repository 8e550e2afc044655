"""The trainer and the train / test / export commands (issue 3)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mdval.cli import main as mdval_main
from mdval.data.frames import Frame

from conftest import FLOAT64_EXACT, SMALL_DEEPPOT, fcc_cu

REPO = Path(__file__).resolve().parents[1]


def write_emt_data(path: Path, n_frames: int = 12, seed: int = 0, nan_frame: int | None = None) -> Path:
    """Small EMT-Cu frames (16 atoms, rattled and strained) as extxyz."""
    import ase.io
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(seed)
    images = []
    for k in range(n_frames):
        atoms = fcc_cu((2, 2, 1), rattle=0.1, seed=seed * 1000 + k)
        atoms.set_cell(atoms.cell.array * rng.uniform(0.98, 1.03), scale_atoms=True)
        atoms.calc = EMT()
        e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
        if nan_frame == k:
            f[0, 0] = np.nan
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f, stress=s)
        images.append(atoms)
    ase.io.write(path, images, format="extxyz")
    return path


def write_config(folder: Path, data: str = "cu.xyz", **sections) -> Path:
    model = {k: v for k, v in SMALL_DEEPPOT.items()}
    model.update(type_names=["Cu"], embedding=[4, 8], fitting=[8, 8], axis_neuron=2)
    tables = {
        "run": {"name": "t", "dir": str(folder / "runs"), "seed": 0},
        "data": {"train": data, "fractions": [0.6, 0.2, 0.2], "stat_frames": 5},
        "model": model,
        "learning_rate": {"start_lr": 3e-3, "stop_lr": 1e-4, "stop_steps": 40},
        "optimizer": {"name": "adam", "clip_grad_norm": 10.0},
        "training": {"epochs": 3, "batch_size": 2, "progress": False},
    }
    for name, table in sections.items():
        if name == "optimizer":  # each optimizer has its own options: replace, don't merge
            tables[name] = dict(table)
        else:
            tables.setdefault(name, {}).update(table)
    from mdval.train.config import to_toml

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "train.toml"
    path.write_text(to_toml(tables))
    return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train_data")
    write_emt_data(folder / "cu.xyz")
    return folder


def _cfg(folder: Path, data_dir: Path, overrides=(), **sections):
    from mdval.train.config import load_config

    path = write_config(folder, str(data_dir / "cu.xyz"), **sections)
    return load_config(path, list(overrides))


def _train(cfg, resume=False):
    from mdval.train.trainer import Trainer

    trainer = Trainer(cfg, resume=resume, log=lambda m: None)
    return trainer, trainer.train()


# --------------------------------------------------------------------------- units


def test_lr_and_prefactor_schedules():
    from mdval.train.loss import LRSchedule, loss_weights, prefactor

    s = LRSchedule(1e-3, 1e-5, stop_steps=100)
    assert s(0) == pytest.approx(1e-3, rel=1e-12)
    assert s(50) == pytest.approx(1e-4, rel=1e-12)
    assert s(100) == pytest.approx(1e-5, rel=1e-12)
    assert s(1000) == pytest.approx(1e-5, rel=1e-12)  # never below stop_lr
    stair = LRSchedule(1e-3, 1e-5, stop_steps=100, decay_steps=10)
    assert stair(9) == stair(0) and stair(10) < stair(9)
    assert prefactor(1000.0, 1.0, 1e-3, 1e-3) == 1000.0
    assert prefactor(1000.0, 1.0, 0.0, 1e-3) == 1.0
    loss_cfg = {
        "start_pref_e": 0.02,
        "limit_pref_e": 1.0,
        "start_pref_f": 1000.0,
        "limit_pref_f": 1.0,
        "start_pref_v": 0.0,
        "limit_pref_v": 0.0,
        "label_scale": 10.0,
        "slope_recovery": 0.5,
    }
    w0, w100 = loss_weights(loss_cfg, s, 0), loss_weights(loss_cfg, s, 100)
    assert (w0.energy, w0.forces) == pytest.approx((0.02, 1000.0))
    assert w100.forces == pytest.approx(1.0 + 999.0 * 1e-2)
    assert w0.label_scale == 10.0 and w0.slope_recovery == 0.5


def test_loss_energy_and_virial_terms_are_deepmd_normalised():
    """L_e = mean_f ΔE_f² / N_f and L_v = mean ΔW² / N_f (DeePMD-kit's atom_norm · mean ΔE²),
    not the per-atom square (ΔE/N)²: with the per-atom square DeePMD's prefactors weigh the
    energy N times less against the forces (found on mlearn Si: crystal and melt energies left
    ~100 meV/atom apart). Frames of 4 and 8 atoms, known offsets on energy and virial labels."""
    from mdval.data.batch import make_batch
    from mdval.train.loss import compute_loss, predict
    from mdval.train.strategy import LossWeights

    from conftest import small_model

    model = small_model()
    frames = []
    for k, size in enumerate([(1, 1, 1), (2, 1, 1)]):
        atoms = fcc_cu(size, rattle=0.1, seed=k)
        n = len(atoms)
        frames.append(
            Frame(
                atoms.get_chemical_symbols(),
                atoms.positions,
                atoms.cell.array,
                [True] * 3,
                energy=0.0,
                forces=np.zeros((n, 3)),
                virial=np.zeros((3, 3)),
            )
        )
    pred = predict(model, make_batch(frames, ["Cu"], model.cutoff), create_graph=False)
    de, dw = np.array([0.3, -0.5]), np.array([0.2, 0.7])  # prediction - label (eV)
    for k, frame in enumerate(frames):
        frame.energy = float(pred["energy"][k].detach()) - de[k]
        frame.forces = pred["forces"].detach().numpy()[4 * k : 4 * k + len(frame.symbols)].copy()
        frame.virial = pred["virial"][k].detach().numpy() - dw[k]
    batch = make_batch(frames, ["Cu"], model.cutoff)
    n = np.array([4.0, 8.0])
    for c in (1.0, 10.0):
        loss, out = compute_loss(
            model, batch, LossWeights(energy=1.0, forces=0.0, virial=0.0, label_scale=c), create_graph=False
        )
        assert float(loss.detach()) == pytest.approx(np.mean(de**2 / n) / c**2, rel=1e-9)
        assert out["rmse_e"] == pytest.approx(np.sqrt(np.mean((de / n) ** 2)), rel=1e-9)  # per atom
        loss, out = compute_loss(
            model, batch, LossWeights(energy=0.0, forces=1.0, virial=1.0, label_scale=c), create_graph=False
        )
        assert float(loss.detach()) == pytest.approx(np.mean(dw**2 / n) / c**2, rel=1e-9)  # forces exact
        assert out["rmse_v"] == pytest.approx(np.sqrt(np.mean((dw / n) ** 2)), rel=1e-9)


def test_energy_shift_least_squares_recovers_per_element_energies():
    from mdval.train.statistics import fit_energy_shift

    rng = np.random.default_rng(0)
    e_true = {"Cu": -3.5, "Ni": -4.25}
    frames = []
    for _ in range(20):
        n_cu, n_ni = rng.integers(1, 20, size=2)
        symbols = ["Cu"] * n_cu + ["Ni"] * n_ni
        n = len(symbols)
        frames.append(
            Frame(
                symbols,
                rng.normal(size=(n, 3)),
                np.eye(3) * 10,
                [True] * 3,
                energy=n_cu * e_true["Cu"] + n_ni * e_true["Ni"],
                forces=np.zeros((n, 3)),
            )
        )
    shift = fit_energy_shift(frames, ["Cu", "Ni"])
    np.testing.assert_allclose(shift, [-3.5, -4.25], atol=FLOAT64_EXACT)


def test_checkpoint_is_atomic_and_loads_weights_only(tmp_path):
    from mdval.train.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint

    from conftest import small_model

    model = small_model(activation="taafs:basis=chebyshev1")
    path = save_checkpoint(
        tmp_path / "c" / "last.pt",
        {
            "model_config": model.config(),
            "model": model.state_dict(),
            "step": 7,
            "rng_torch": torch.get_rng_state(),
            "config": {"a": {"b": [1, 2.5, None]}},
        },
    )
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]  # no temp file left
    raw = torch.load(path, weights_only=True)  # plain types and tensors only
    assert raw["step"] == 7
    rebuilt = model_from_checkpoint(load_checkpoint(path))
    for (k, a), (_, b) in zip(model.state_dict().items(), rebuilt.state_dict().items()):
        assert torch.equal(a, b), k
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"{tmp_path / 'bad.pt'} is not a readable mdval checkpoint (not a "
            "file written by torch.save: cut short, or a file of another kind)"
        ),
    ):
        load_checkpoint(tmp_path / "bad.pt")
    from mdval.deploy.model_file import export

    export(model, tmp_path / "model.pt", {"optimizer": "none"})
    with pytest.raises(
        ValueError,
        match=re.escape(
            "model.pt is not a readable mdval checkpoint (it is an exported "
            "TorchScript model; give a checkpoint, runs/NAME/checkpoints/best.pt)"
        ),
    ):
        load_checkpoint(tmp_path / "model.pt")


def test_config_overrides_and_unknown_keys(tmp_path, data_dir):
    from mdval.train.config import load_config, parse_override

    assert parse_override("training.epochs=5") == ("training", "epochs", 5)
    assert parse_override('model.activation="silu"') == ("model", "activation", "silu")
    assert parse_override("optimizer.name=adam") == ("optimizer", "name", "adam")
    path = write_config(tmp_path, str(data_dir / "cu.xyz"))
    cfg = load_config(path, ["training.epochs=9", "loss.label_scale=10.0"])
    assert cfg["training"]["epochs"] == 9 and cfg["loss"]["label_scale"] == 10.0
    with pytest.raises(ValueError, match=r"unknown key 'training.epoch'; valid keys in \[training\]: epochs"):
        load_config(path, ["training.epoch=9"])


# --------------------------------------------------------------------------- training


def test_short_training_run_loss_falls(tmp_path, data_dir):
    from mdval.deploy.evaluate import error_metrics, predict_frames

    cfg = _cfg(tmp_path, data_dir, training={"epochs": 4}, learning_rate={"stop_steps": 40})
    from mdval.train.trainer import Trainer

    trainer = Trainer(cfg, log=lambda m: None)
    trainer.progress = False
    trainer._setup()
    model = trainer.model

    def train_error():
        m = error_metrics(predict_frames(model, trainer.train_frames, model.type_names, model.cutoff))
        return m["force_rmse_eV_per_A"], m["energy_rmse_meV_per_atom"]

    f0, e0 = train_error()
    summary = trainer.train()
    run = tmp_path / "runs" / "t"
    model.load_state_dict(torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"])
    f1, e1 = train_error()
    assert f1 < 0.9 * f0, (f0, f1)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(1, 5))
    assert log[-1]["train"]["loss"] < log[0]["train"]["loss"]
    assert {"lr", "time_s", "val", "activation_coefficients"} <= set(log[0])
    for name in ("config.toml", "splits.json", "model.pt", "metrics.json", "checkpoints/best.pt"):
        assert (run / name).exists(), name
    assert summary["test"]["force_rmse_eV_per_A"] > 0


def test_energy_shift_is_refit_each_epoch(tmp_path, data_dir):
    """After training, the least-squares normal equations hold on the training frames:
    sum_f n_f (E_f - E_hat_f) = 0 for one element (they fail without the per-epoch refit,
    because force-dominated training moves the energy baseline)."""
    from mdval.deploy.evaluate import predict_frames

    for refit in (True, False):
        folder = tmp_path / str(refit)
        folder.mkdir()
        cfg = _cfg(folder, data_dir, ["data.stat_frames=1000"], training={"epochs": 2, "refit_energy_shift": refit})
        trainer, _ = _train(cfg)
        frames = trainer.train_frames
        pred = predict_frames(trainer.model, frames, trainer.model.type_names, trainer.model.cutoff)
        n_atoms = np.array([f.n_atoms for f in frames], dtype=float)
        residual = n_atoms * (np.asarray(pred.energy_label) - np.asarray(pred.energy_pred))  # eV
        normal = abs(float(n_atoms @ residual)) / float(n_atoms @ n_atoms)  # eV/atom
        if refit:
            assert normal < 1e-9, normal
        else:
            assert normal > 1e-6, normal


def test_taafs_coefficients_are_logged(tmp_path, data_dir):
    cfg = _cfg(
        tmp_path, data_dir, training={"epochs": 1}, model={"activation": "taafs:basis=chebyshev1,degree=3,scope=layer"}
    )
    _train(cfg)
    rec = json.loads((tmp_path / "runs" / "t" / "log.jsonl").read_text().splitlines()[0])
    coeffs = rec["activation_coefficients"]  # {layer name: {"coeffs": values}}, mdval.nn.introspect
    assert len(coeffs) == 4 and all(len(v["coeffs"]) == 4 for v in coeffs.values())  # 4 layers, degree 3
    assert any(abs(v["coeffs"][1] - 1.0) > 0 for v in coeffs.values())  # moved away from tanh's theta_1 = 1


def test_resume_is_exact(tmp_path, data_dir):
    """2 epochs straight vs 1 epoch + resume: bitwise-equal parameters and Adam state."""
    straight = _cfg(tmp_path / "a", data_dir, training={"epochs": 2})
    trainer_a, _ = _train(straight)
    split = _cfg(tmp_path / "b", data_dir, training={"epochs": 1})
    _train(split)
    resumed = _cfg(tmp_path / "b", data_dir, training={"epochs": 2})
    trainer_b, _ = _train(resumed, resume=True)
    last_a = torch.load(tmp_path / "a/runs/t/checkpoints/last.pt", weights_only=True)
    last_b = torch.load(tmp_path / "b/runs/t/checkpoints/last.pt", weights_only=True)
    assert last_a["step"] == last_b["step"] == 2 * trainer_a.steps_per_epoch
    for key, value in last_a["model"].items():
        assert torch.equal(value, last_b["model"][key]), key
    state_a, state_b = last_a["strategy"]["optimizer"]["state"], last_b["strategy"]["optimizer"]["state"]
    for k in state_a:
        assert torch.equal(state_a[k]["exp_avg"], state_b[k]["exp_avg"])
        assert float(state_a[k]["step"]) == float(state_b[k]["step"]) == last_a["step"]


def _tensors_equal(a, b, where=""):
    """Recursively compare two checkpoint trees of tensors and plain values, bitwise."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _tensors_equal(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _tensors_equal(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


@pytest.mark.parametrize("optimizer", ["rlekf", "ekf"])
def test_kalman_resume_is_exact(tmp_path, data_dir, optimizer):
    """Kalman filters: 2 epochs straight vs 1 + resume give bitwise-equal weights, P and lambda."""
    opts = {"name": optimizer, "verbose": False}
    model = {
        "embedding": [4, 8],
        "fitting": [8],
        "axis_neuron": 2,
        "activation": "taafs:basis=chebyshev1,degree=3,scope=layer",
    }
    _train(_cfg(tmp_path / "a", data_dir, training={"epochs": 2}, optimizer=opts, model=model))
    _train(_cfg(tmp_path / "b", data_dir, training={"epochs": 1}, optimizer=opts, model=model))
    _train(_cfg(tmp_path / "b", data_dir, training={"epochs": 2}, optimizer=opts, model=model), resume=True)
    last_a = torch.load(tmp_path / "a/runs/t/checkpoints/last.pt", weights_only=True)
    last_b = torch.load(tmp_path / "b/runs/t/checkpoints/last.pt", weights_only=True)
    assert last_a["step"] == last_b["step"] > 0
    _tensors_equal(last_a["model"], last_b["model"], "model")
    _tensors_equal(last_a["strategy"], last_b["strategy"], "strategy")


def test_kill_and_resume_continues_from_checkpoint(tmp_path, data_dir):
    config = write_config(
        tmp_path,
        str(data_dir / "cu.xyz"),
        training={"epochs": 40, "checkpoint_every": 3},
        learning_rate={"stop_steps": 400},
    )
    cmd = [sys.executable, "-m", "mdval", "train", str(config), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    last = tmp_path / "runs" / "t" / "checkpoints" / "last.pt"
    deadline = time.time() + 60
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert last.exists(), proc.stdout.read().decode()
    step_k = torch.load(last, weights_only=True)["step"]
    assert 0 < step_k < 40 * 4
    done = subprocess.run(
        cmd + ["--resume", "--set", "training.epochs=" + str(step_k // 4 + 1)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"step {step_k}" in done.stdout.split("\n", 3)[-1] or f"step {step_k}" in done.stdout
    final = torch.load(last, weights_only=True)
    assert final["step"] == (step_k // 4 + 1) * 4
    adam_steps = {float(s["step"]) for s in final["strategy"]["optimizer"]["state"].values()}
    assert adam_steps == {float(final["step"])}  # optimizer state continued, not restarted


# --------------------------------------------------------------------------- commands


def _run_cli(argv, capsys):
    code = mdval_main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_bad_inputs(tmp_path, data_dir, capsys):
    cases = []
    cases.append(
        (["train", str(tmp_path / "nope.toml")], f"mdval: error: config file not found: {tmp_path / 'nope.toml'}")
    )
    cfg = write_config(tmp_path, str(data_dir / "cu.xyz"))
    cases.append(
        (
            ["train", str(cfg), "--set", "training.batchsize=2"],
            "mdval: error: " + f"{cfg}: unknown key 'training.batchsize'; valid keys in [training]: epochs",
        )
    )
    cases.append(
        (
            ["train", str(cfg), "--set", "model.activation='tahn'"],
            "mdval: error: unknown activation 'tahn' in spec 'tahn'; valid: tanh, silu",
        )
    )
    cases.append(
        (
            ["train", str(cfg), "--set", f"data.train='{tmp_path / 'missing.xyz'}'"],
            f"mdval: error: data file not found: {tmp_path / 'missing.xyz'}",
        )
    )
    (tmp_path / "empty.xyz").write_text("")
    cases.append(
        (
            ["train", str(cfg), "--set", f"data.train='{tmp_path / 'empty.xyz'}'"],
            f"mdval: error: {tmp_path / 'empty.xyz'}: no frames; the data set is empty",
        )
    )
    write_emt_data(tmp_path / "nan.xyz", n_frames=3, nan_frame=1)
    cases.append(
        (
            ["train", str(cfg), "--set", f"data.train='{tmp_path / 'nan.xyz'}'"],
            f"mdval: error: {tmp_path / 'nan.xyz'} frame 1: forces contain NaN or inf",
        )
    )
    cases.append((["export", str(tmp_path / "none.pt")], f"mdval: error: checkpoint not found: {tmp_path / 'none.pt'}"))
    cases.append(
        (
            ["test", str(tmp_path / "none.pt"), str(data_dir / "cu.xyz")],
            f"mdval: error: model file not found: {tmp_path / 'none.pt'}",
        )
    )
    for argv, message in cases:
        code, out, err = _run_cli(argv, capsys)
        assert code == 2, (argv, out, err)
        assert err.startswith(message), (argv, err)
        assert "Traceback" not in err


def test_mdval_test_and_export(tmp_path, data_dir, capsys):
    cfg = write_config(tmp_path, str(data_dir / "cu.xyz"), training={"epochs": 2})
    code, out, err = _run_cli(["train", str(cfg), "--quiet"], capsys)
    assert code == 0, err
    run = tmp_path / "runs" / "t"
    meta = json.loads(
        __import__("zipfile")
        .ZipFile(run / "model.pt")
        .read(next(n for n in __import__("zipfile").ZipFile(run / "model.pt").namelist() if n.endswith("mdval.json")))
    )
    assert meta["optimizer"] == "adam" and meta["activation"] == "tanh"
    assert len(meta["training_data"]["sha256"]) == 64 and meta["training_data"]["n_train"] == 7
    assert meta["metrics"]["force_rmse_eV_per_A"] > 0

    prefix = tmp_path / "eval" / "cu"
    code, out, err = _run_cli(["test", str(run / "model.pt"), str(data_dir / "cu.xyz"), "--out", str(prefix)], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "eval" / "cu.json").read_text())
    assert report["n_frames"] == 12 and report["n_atoms"] == 12 * 16
    assert 0 < report["force_mae_eV_per_A"] <= report["force_rmse_eV_per_A"] < 5.0
    assert 0 <= report["energy_mae_meV_per_atom"] <= report["energy_rmse_meV_per_atom"] < 2000
    assert "virial_rmse_meV_per_atom" in report
    png = tmp_path / "eval" / "cu_parity.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10000

    code, out, err = _run_cli(["export", str(run / "checkpoints" / "best.pt"), "-o", str(tmp_path / "re.pt")], capsys)
    assert code == 0, err
    from mdval.data.batch import make_batch
    from mdval.data.readers import read_frames
    from mdval.deploy.model_file import load

    a, b = load(run / "model.pt"), load(tmp_path / "re.pt")
    batch = make_batch(read_frames(data_dir / "cu.xyz")[:3], ["Cu"], a.cutoff)
    ea = a(batch.species, batch.edge_index, batch.edge_vectors, batch.n_local)
    eb = b(batch.species, batch.edge_index, batch.edge_vectors, batch.n_local)
    assert torch.equal(ea, eb)
    assert b.metadata["optimizer"] == "adam" and b.metadata["training_data"]["n_train"] == 7
