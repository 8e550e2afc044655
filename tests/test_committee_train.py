"""Committees in training (mdval train --committee) and trust-level selection (mdval select), issue 19."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from test_train import write_config, write_emt_data

import mdval
from mdval.cli import main as mdval_main
from mdval.deploy.model_file import export
from mdval.deploy.select import read_trajectory, select_frames, write_candidates
from mdval.train.committee import train_committee

from conftest import fcc_cu, small_model

TINY = {"training": {"epochs": 1, "batch_size": 4}, "learning_rate": {"stop_steps": 10}}


@pytest.fixture(scope="module")
def committee(tmp_path_factory):
    """A committee of 2 trained side by side (1 epoch on 12 EMT frames), run.seed 7."""
    folder = tmp_path_factory.mktemp("committee")
    write_emt_data(folder / "cu.xyz")
    config = write_config(folder, str(folder / "cu.xyz"), run={"name": "c", "seed": 7}, **TINY)
    lines = []
    record = train_committee(config, 2, jobs=2, log=lines.append)
    return config, Path(record["run_dir"]), record, lines


def test_members_differ_in_seed_and_weights_not_in_split(committee):
    _, run_dir, record, _ = committee
    assert record["seeds"] == [7, 8]
    assert [m["seed"] for m in record["members"]] == [7, 8]
    assert json.loads((run_dir / "committee.json").read_text())["seeds"] == [7, 8]
    splits = [json.loads((run_dir / f"member-{k}/splits.json").read_text()) for k in (1, 2)]
    for key in ("train", "validation", "test"):
        assert splits[0][key] == splits[1][key] and splits[0][key], key
    for k, seed in ((1, 7), (2, 8)):
        assert f"seed = {seed}" in (run_dir / f"member-{k}/config.toml").read_text()
        assert set(record["members"][k - 1]["test"]) >= {"energy_rmse_meV_per_atom", "force_rmse_eV_per_A"}
    weights = [torch.load(run_dir / f"member-{k}/checkpoints/best.pt", weights_only=True)["model"] for k in (1, 2)]
    differ = [key for key in weights[0] if weights[0][key].dtype.is_floating_point]
    assert any(not torch.equal(weights[0][key], weights[1][key]) for key in differ)


def test_exported_committee_serves_ase_with_nonzero_deviation(committee):
    _, run_dir, record, _ = committee
    paths = [str(run_dir / m["model"]) for m in record["members"]]
    assert paths == [str(run_dir / "committee/model-1.pt"), str(run_dir / "committee/model-2.pt")]
    assert (run_dir / "committee/model-1.pt").read_bytes() == (run_dir / "member-1/model.pt").read_bytes()
    atoms = fcc_cu((2, 2, 1), rattle=0.1, seed=3)
    atoms.calc = mdval.Calculator(paths)
    deviation = atoms.calc.get_property("max_force_deviation", atoms)
    assert deviation > 1e-6
    alone = atoms.copy()
    alone.calc = mdval.Calculator(paths[0])
    np.testing.assert_allclose(atoms.get_forces(), alone.get_forces(), rtol=0, atol=1e-12)  # the first drives


def test_rerun_skips_finished_resumes_started_and_adds_new_members(committee, tmp_path):
    config, run_dir, _, _ = committee
    copy = tmp_path / "runs"
    shutil.copytree(run_dir, copy / "c")
    for name in ("model.pt", "metrics.json"):  # member-2 "killed" after its checkpoints
        (copy / f"c/member-2/{name}").unlink()
    model_1 = (copy / "c/member-1/model.pt").read_bytes()
    lines = []
    record = train_committee(config, 3, jobs=2, overrides=[f'run.dir="{copy}"'], log=lines.append)
    assert "member-1 (seed 7): finished, skipped" in lines
    assert any(line.startswith("member-2 (seed 8): resuming") for line in lines)
    assert any(line.startswith("member-3 (seed 9): training") for line in lines)
    assert (copy / "c/member-1/model.pt").read_bytes() == model_1
    assert "resumed" in (copy / "c/member-2/train.log").read_text()
    assert record["seeds"] == [7, 8, 9]
    assert [m["model"] for m in record["members"]] == [f"committee/model-{k}.pt" for k in (1, 2, 3)]
    assert (copy / "c/committee/model-3.pt").exists()
    lines.clear()
    smaller = train_committee(config, 2, overrides=[f'run.dir="{copy}"'], log=lines.append)
    assert [line for line in lines if "finished, skipped" in line] == [
        "member-1 (seed 7): finished, skipped",
        "member-2 (seed 8): finished, skipped",
    ]
    assert smaller["seeds"] == [7, 8] and not (copy / "c/committee/model-3.pt").exists()


def test_committee_size_errors(tmp_path, capsys):
    with pytest.raises(
        ValueError,
        match=re.escape(
            "--committee must be at least 2 (the number of members), got 1; train a single model without --committee"
        ),
    ):
        train_committee(tmp_path / "missing.toml", 1)
    with pytest.raises(ValueError, match=re.escape("--jobs must be at least 1 (members trained at a time), got 0")):
        train_committee(tmp_path / "missing.toml", 3, jobs=0)
    assert mdval_main(["train", str(tmp_path / "missing.toml"), "--committee", "0"]) == 2
    assert "mdval: error: --committee must be at least 2" in capsys.readouterr().err


def test_failed_member_is_named_with_its_error(committee, tmp_path):
    """A member whose resume is refused (the model changed) is reported with mdval train's error."""
    config, run_dir, _, _ = committee
    shutil.copytree(run_dir, tmp_path / "c")
    for name in ("model.pt", "metrics.json"):
        (tmp_path / f"c/member-2/{name}").unlink()
    overrides = [f'run.dir="{tmp_path}"', "model.fitting=[8,4]"]
    with pytest.raises(ValueError, match=r"1 of 2 committee members did not finish \(member-2: cannot resume "):
        train_committee(config, 2, overrides=overrides, log=lambda m: None)


# --------------------------------------------------------------------------- mdval select


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("select_models")
    return [str(export(small_model(seed=seed), folder / f"m{seed}.pt")) for seed in (0, 1)]


def _rattled_frames(n: int = 8) -> list:
    """Frames of one fcc Cu cell rattled by 0, 0.02, 0.04, ... Å: increasing deviation."""
    return [fcc_cu((2, 2, 1), rattle=0.02 * k, seed=11) for k in range(n)]


def test_select_classifies_at_exact_trust_levels(two_models, tmp_path):
    frames = _rattled_frames()
    calc = mdval.Calculator(two_models)
    deviation = np.array([calc.get_property("max_force_deviation", a.copy()) for a in frames])
    order = np.argsort(deviation)
    assert len(set(deviation)) == len(frames)  # distinct, so the boundaries below are exact
    lo, hi = float(deviation[order[2]]), float(deviation[order[5]])  # the frames at lo and hi sit on the boundaries
    selection = select_frames(frames, two_models, lo, hi)
    np.testing.assert_allclose(selection.max_devi_f, deviation, rtol=0, atol=1e-12)
    assert sorted(selection.accurate) == sorted(order[:2].tolist())  # < lo
    assert sorted(selection.candidate) == sorted(order[2:5].tolist())  # lo <= d < hi: order[2] in, order[5] out
    assert sorted(selection.failed) == sorted(order[5:].tolist())  # >= hi
    assert selection.counts() == {"accurate": 2, "candidate": 3, "failed": 3}
    out = write_candidates(tmp_path / "cand.extxyz", frames, selection)
    written = ase.io.read(out, index=":")
    assert [a.info["source_frame"] for a in written] == selection.candidate
    for atoms in written:
        source = atoms.info["source_frame"]
        np.testing.assert_allclose(atoms.positions, frames[source].positions, rtol=0, atol=1e-8)
        assert atoms.info["max_devi_f"] == pytest.approx(selection.max_devi_f[source], rel=1e-12)
        assert atoms.calc is None  # no committee predictions posing as labels


def test_select_cli_counts_and_file(two_models, tmp_path, capsys):
    frames = _rattled_frames()
    traj = tmp_path / "md.extxyz"
    ase.io.write(traj, frames, format="extxyz")
    calc = mdval.Calculator(two_models)  # on the frames as read back: extxyz rounds positions to 1e-8 Å
    deviation = sorted(calc.get_property("max_force_deviation", a) for a in ase.io.read(traj, index=":"))
    lo, hi = repr(float(deviation[1])), repr(float(deviation[6]))
    assert mdval_main(["select", str(traj), "--committee", *two_models, "--trust-lo", lo, "--trust-hi", hi]) == 0
    out = capsys.readouterr().out
    assert f"8 frames: accurate 1 (max_devi_f < {lo} eV/Å), candidate 5, failed 2 (≥ {hi} eV/Å)" in out
    assert len(ase.io.read(tmp_path / "md.candidates.extxyz", index=":")) == 5
    assert mdval_main(["select", str(traj), "--committee", *two_models, "--trust-lo", hi, "--trust-hi", lo]) == 2
    assert f"mdval: error: --trust-lo must be below --trust-hi, got {hi} and {lo} eV/Å" in capsys.readouterr().err


def test_select_reads_a_lammps_dump_with_types(two_models, tmp_path):
    atoms = fcc_cu((2, 2, 1), rattle=0.1, seed=5)
    lines = ["ITEM: TIMESTEP", "0", "ITEM: NUMBER OF ATOMS", str(len(atoms)), "ITEM: BOX BOUNDS pp pp pp"]
    lines += [f"0.0 {float(atoms.cell[i, i])!r}" for i in range(3)]
    lines.append("ITEM: ATOMS id type x y z")
    lines += [f"{i + 1} 1 {float(x)!r} {float(y)!r} {float(z)!r}" for i, (x, y, z) in enumerate(atoms.positions)]
    dump = tmp_path / "md.dump"
    dump.write_text("\n".join(lines) + "\n")
    frames = read_trajectory(dump, "lammps-dump-text", ["Cu"])
    assert frames[0].get_chemical_symbols() == ["Cu"] * len(atoms)
    calc = mdval.Calculator(two_models)
    expected = calc.get_property("max_force_deviation", atoms.copy())
    got = select_frames(frames, two_models, 0.0, 1e9).max_devi_f[0]
    assert got == pytest.approx(expected, rel=1e-10)


def test_select_errors(two_models, tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(f"trajectory not found: {tmp_path / 'none.extxyz'}")):
        read_trajectory(tmp_path / "none.extxyz")
    (tmp_path / "md.unknown").write_text("hello\n")
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"cannot tell the format of the trajectory {tmp_path / 'md.unknown'}; give it with --format "
            "(extxyz, lammps-dump-text, ...)"
        ),
    ):
        read_trajectory(tmp_path / "md.unknown")
    with pytest.raises(ValueError, match=re.escape("--trust-lo must be a finite force deviation ≥ 0 eV/Å, got -0.1")):
        select_frames([], two_models, -0.1, 0.3)
