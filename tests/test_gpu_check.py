"""The GPU check script (benchmarks/gpu_check.py, issue 21): its comparisons, its LAMMPS log
parsing, and that a failing section is recorded while the next one still runs. The GPU itself is
not needed: the check's own CPU rehearsal is run by hand (see benchmarks/README.md)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_check  # noqa: E402
import gpu_lammps  # noqa: E402
import gpu_parity  # noqa: E402


def test_relative_error_is_max_difference_over_max_reference():
    reference = np.array([[1.0, -4.0], [2.0, 0.5]])
    value = reference + np.array([[0.0, 0.0], [2e-12, -1e-12]])
    assert gpu_parity.relative_error(value, reference) == pytest.approx(2e-12 / 4.0, rel=1e-3)
    # a zero reference (e.g. the stress of an unstrained crystal): the absolute difference
    assert gpu_parity.relative_error([3e-15, 0.0], [0.0, 0.0]) == pytest.approx(3e-15)
    assert gpu_parity.relative_error(-2.0, -2.0) == 0.0


LOG = """LAMMPS (22 Jul 2025 - Update 4)
pair_style taafs: model m.pt (abi 1, deeppot_se, activation "tanh", cutoff 4.5 Å, elements Cu) on cuda:0
Step PotEng Pxx Pyy Pzz Pxy Pxz Pyz
         0  -897.25000000000011   10.5   11   12   -0.25   0.5   1
Loop time of 0.01 on 1 procs for 0 steps with 256 atoms
WARNING: a warning line with eight words in it here (src/x.cpp:1)
Step PotEng KinEng TotEng
         0  -897.25   9.9   -887.35
        20  -890.5    3.2   -887.30000000000001
Loop time of 0.2 on 1 procs for 20 steps with 256 atoms
"""


def test_thermo_rows_take_the_last_row_of_each_run():
    rows = gpu_lammps.thermo_rows(LOG)
    assert len(rows) == 2
    assert rows[0]["PotEng"] == -897.25000000000011 and rows[0]["Pyz"] == 1.0
    assert rows[1]["Step"] == 20 and rows[1]["TotEng"] == -887.30000000000001


def test_sizes_that_are_not_a_cubic_fcc_box_are_refused(tmp_path):
    with pytest.raises(ValueError, match=re.escape("--sizes: 1000 atoms is not a cubic fcc box")):
        gpu_check.main(["--cpu-rehearsal", "--sizes", "1000", "--out", str(tmp_path)])


def test_a_failing_section_is_recorded_and_the_next_one_runs(tmp_path, monkeypatch):
    def broken(ctx):
        raise RuntimeError("no CUDA driver in this test")

    def fine(ctx):
        return {
            "ok": True,
            "columns": ["what", "value"],
            "rows": [{"what": "device", "value": ctx.device}],
            "summary": "ran after the broken section",
        }

    for name in ("PATH", "PYTHONPATH", "LAMMPS_PLUGIN_PATH"):  # main() sets these for its subprocesses
        monkeypatch.setenv(name, os.environ.get(name, ""))
    monkeypatch.delenv("LAMMPS_PLUGIN_PATH")
    monkeypatch.setitem(gpu_check.SECTIONS, "parity", ("broken section", broken))
    monkeypatch.setitem(gpu_check.SECTIONS, "train", ("fine section", fine))
    status = gpu_check.main(
        ["--cpu-rehearsal", "--sections", "parity", "train", "--out", str(tmp_path), "--work", str(tmp_path / "work")]
    )
    assert status == 1
    report = json.loads((tmp_path / "gpu_check_rehearsal.json").read_text())
    assert report["rehearsal"] is True and report["device"] == "cpu"
    assert report["sections"]["parity"]["status"] == "error"
    assert report["sections"]["parity"]["error"] == "RuntimeError: no CUDA driver in this test"
    assert report["sections"]["train"]["status"] == "passed"
    text = (tmp_path / "gpu_check_rehearsal.md").read_text()
    assert "## broken section (parity): error" in text and "RuntimeError: no CUDA driver in this test" in text
    assert "| device | cpu |" in text
