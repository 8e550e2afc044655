"""Atomic writes (mdval.fileio): the usual umask mode, never a half-written file, no temp left."""

from __future__ import annotations

import os
import stat

import pytest

from mdval import fileio


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_files_get_the_umask_mode_not_0600(tmp_path, umask_022):
    assert mode(fileio.write_text(tmp_path / "a" / "t.txt", "x")) == 0o644  # parent folder made
    assert mode(fileio.write_json(tmp_path / "j.json", {"a": 1})) == 0o644
    assert mode(fileio.write_bytes(tmp_path / "b.bin", b"\0")) == 0o644
    os.umask(0o077)  # a private umask is respected too
    assert mode(fileio.write_text(tmp_path / "private.txt", "x")) == 0o600


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "results.json"
    fileio.write_json(target, {"status": "old"})
    with pytest.raises(RuntimeError, match="disk full"):
        with fileio.atomic_path(target) as tmp:
            tmp.write_text('{"status": "ha')
            raise RuntimeError("disk full")
    assert target.read_text() == '{\n "status": "old"\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_exported_models_reports_and_checkpoints_are_group_readable(tmp_path, umask_022):
    """The writers that used to give 0600 files: model export, checkpoints, figures."""
    import torch

    from mdval.deploy.model_file import export
    from mdval.report.plots import ladder_plot
    from mdval.train.checkpoint import save_checkpoint

    from conftest import small_model

    model = small_model()
    assert mode(export(model, tmp_path / "m.pt", {"optimizer": "none"})) == 0o644
    assert mode(save_checkpoint(tmp_path / "ck" / "last.pt", {"step": torch.tensor(1)})) == 0o644
    assert mode(ladder_plot([0.5, 1.0], [0.1, 0.4], tmp_path / "ladder.png")) == 0o644
