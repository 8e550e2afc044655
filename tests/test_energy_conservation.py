"""``mdval report energy-conservation`` as a user meets it: the estimate printed first, one line per
finished run, resume that reuses finished runs, a refusal (exact message) instead of a silently
replaced report, ``--overwrite``, numbers with sensible precision; and the float32 copy of a model
file (mdval/deploy/float32.py) against its float64 source.

Small real runs: ASE + EMT on 32 Cu atoms, a few tens of steps each.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
import torch

from mdval.cli import main
from mdval.md import nve_ladder
from mdval.md import results as res

from conftest import FLOAT32_EXACT, fcc_cu, small_model

# 2 time steps: dt = 1 fs gives 10 + 50 steps, dt = 2 fs 5 + 25 (NVT equilibration + NVE)
LADDER = [
    "report",
    "energy-conservation",
    "--reference",
    "emt:Cu",
    "--supercell",
    "2",
    "2",
    "2",
    "--duration-ps",
    "0.05",
    "--equilibration-ps",
    "0.01",
    "--warmup-ps",
    "0.0",
    "--jobs",
    "2",
]


def run_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if re.match(r"run \d+/\d+: ", line)]


@pytest.fixture(scope="module")
def ladder_report(tmp_path_factory):
    """A two-rung ladder of EMT and what it printed (stdout, stderr)."""
    out = tmp_path_factory.mktemp("ec") / "report"
    err, stdout = io.StringIO(), io.StringIO()  # capsys is per test; this fixture is per module
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(stdout):
        rc = main([*LADDER, "--timesteps-fs", "1", "2", "--out", str(out)])
    assert rc == 0, err.getvalue()
    return out, stdout.getvalue(), err.getvalue()


def test_the_estimate_comes_first_then_one_line_per_run(ladder_report):
    out, stdout, err = ladder_report
    first = err.splitlines()[0]
    assert re.fullmatch(
        r"energy conservation: 2 NVE run\(s\); 2 to run in ase, 2 at a time: 90 steps \(NVT "
        r"equilibration \+ NVE\) at [0-9.e+-]+ ms/step -> about [0-9.]+ (s|min) of MD",
        first,
    ), first
    lines = run_lines(err)  # stderr is not a terminal here: no bar, one line per run
    assert len(lines) == 2 and "\r" not in err
    assert {re.sub(r" in [0-9.]+ s\)$", ")", line.split(": ", 1)[1]) for line in lines} == {
        "emt-Cu dt=1fs (completed, 60 steps)",
        "emt-Cu dt=2fs (completed, 30 steps)",
    }
    assert "report:" in stdout and "report:" not in err


def test_figures_are_printed_with_three_significant_digits(ladder_report):
    _, stdout, _ = ladder_report
    report = json.loads((ladder_report[0] / "report.json").read_text())
    slope = report["timestep_ladder"]["loglog_slope"]
    assert f"RMS fluctuation ∝ dt^{slope:.3g} (log-log slope" in stdout
    drift = report["runs"][0]["drift"]["drift_meV_per_atom_ps"]
    assert f"{drift:.3g}" in stdout
    numbers = re.findall(r"\d+\.?\d*(?=e[-+]\d+|\b)", stdout.split("\nreport: ")[0])
    assert numbers and all(len(n.replace(".", "").lstrip("0")) <= 3 for n in numbers), numbers  # not 17 digits


def test_a_second_call_reuses_the_finished_runs(ladder_report, capsys):
    out = ladder_report[0]
    thermo = out / "runs" / "emt-Cu_dt1fs" / res.THERMO_FILE
    before = thermo.read_bytes()
    assert main([*LADDER, "--timesteps-fs", "1", "2", "--out", str(out), "--max-drift", "1000"]) == 0
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "energy conservation: 2 NVE run(s), 2 finished earlier (reused); nothing to run"
    assert sorted(line.split(": ", 1)[1] for line in run_lines(err)) == [
        "emt-Cu dt=1fs (finished earlier, reused)",
        "emt-Cu dt=2fs (finished earlier, reused)",
    ]
    assert thermo.read_bytes() == before  # analysed again, not rerun
    assert json.loads((out / "report.json").read_text())["max_drift_meV_per_atom_ps"] == 1000


def test_a_report_of_other_runs_is_refused_then_overwritten(ladder_report, tmp_path, capsys):
    out = tmp_path / "report"
    for rung in ("emt-Cu_dt1fs", "emt-Cu_dt2fs"):  # a copy of the earlier report, with its runs
        src = ladder_report[0] / "runs" / rung
        for f in src.iterdir():
            if f.is_file():
                (out / "runs" / rung).mkdir(parents=True, exist_ok=True)
                (out / "runs" / rung / f.name).write_bytes(f.read_bytes())
    earlier = json.loads((ladder_report[0] / "report.json").read_text())
    for run in earlier["runs"]:
        run["output_dir"] = str(out / "runs" / Path(run["output_dir"]).name)
    (out / "report.json").write_text(json.dumps(earlier))
    before = (out / "report.json").read_bytes()

    assert main([*LADDER, "--timesteps-fs", "1", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"mdval: error: {out} holds an earlier report of other runs (emt-Cu dt=1fs, emt-Cu dt=2fs); use another "
        "--out folder, or --overwrite to replace it\n"
    )
    assert (out / "report.json").read_bytes() == before

    assert main([*LADDER, "--timesteps-fs", "1", "--out", str(out), "--overwrite"]) == 0
    err = capsys.readouterr().err
    assert err.splitlines()[0].startswith("energy conservation: 1 NVE run(s); 1 to run in ase, 1 at a time: 60 steps")
    report = json.loads((out / "report.json").read_text())
    assert [r["label"] for r in report["runs"]] == ["emt-Cu dt=1fs"]
    rerun = json.loads((out / "runs" / "emt-Cu_dt1fs" / res.RESULTS_FILE).read_text())
    assert rerun["provenance"].get("resumed_from_step") is None  # started afresh, not resumed


def test_a_run_folder_of_another_run_is_refused(ladder_report, tmp_path, capsys):
    out = tmp_path / "report"
    src = ladder_report[0] / "runs" / "emt-Cu_dt2fs"
    (out / "runs" / "emt-Cu_dt2fs").mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file():
            (out / "runs" / "emt-Cu_dt2fs" / f.name).write_bytes(f.read_bytes())
    assert main([*LADDER, "--timesteps-fs", "2", "--seed", "7", "--out", str(out)]) == 2
    folder = out / "runs" / "emt-Cu_dt2fs"
    assert capsys.readouterr().err == (
        f"mdval: error: {folder} holds another run (seed: given 7, stored 1); use another --out folder, or "
        "--overwrite to delete that run and start afresh\n"
    )
    assert not (out / "report.json").exists()


def test_runs_mode_refuses_to_replace_a_report_of_other_runs(ladder_report, tmp_path, capsys):
    out = tmp_path / "r"
    one, two = sorted(str(p) for p in (ladder_report[0] / "runs").iterdir())
    assert main(["report", "energy-conservation", "--runs", one, two, "--out", str(out)]) == 0
    assert main(["report", "energy-conservation", "--runs", two, one, "--out", str(out)]) == 0  # the same runs
    capsys.readouterr()
    assert main(["report", "energy-conservation", "--runs", one, "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"mdval: error: {out} holds an earlier report of other runs (emt-Cu_dt2fs, emt-Cu_dt1fs); use another "
        "--out folder, or --overwrite to replace it\n"
    )
    assert main(["report", "energy-conservation", "--runs", one, "--out", str(out), "--overwrite"]) == 0
    assert len(json.loads((out / "report.json").read_text())["runs"]) == 1


def test_a_repeated_time_step_is_refused(tmp_path, capsys):
    assert main([*LADDER, "--timesteps-fs", "1", "2", "1", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "mdval: error: --timesteps-fs repeats 1 fs; give each time step once\n"


# ------------------------------------------------------------------------------ helpers
def test_makespan_takes_tasks_in_order_on_the_first_free_worker():
    assert nve_ladder.makespan([3.0, 1.0, 1.0, 1.0], 2) == 3.0  # 3 | 1+1+1
    assert nve_ladder.makespan([1.0, 1.0, 3.0], 2) == 4.0  # 1+3 | 1
    assert nve_ladder.makespan([2.0, 2.0], 1) == 4.0
    assert nve_ladder.makespan([], 2) == 0.0


@pytest.mark.parametrize(
    "seconds, text", [(0.42, "0.42 s"), (40.4, "40 s"), (210.0, "3.5 min"), (1500.0, "25 min"), (7560.0, "2.1 h")]
)
def test_durations_read_as_people_write_them(seconds, text):
    assert nve_ladder.duration_text(seconds) == text


def test_steps_written_reads_the_last_whole_thermo_row(tmp_path):
    assert nve_ladder.steps_written(tmp_path, "ase") == 0
    header = ",".join(res.THERMO_COLUMNS)
    (tmp_path / res.THERMO_FILE).write_text(f"{header}\n0,0.0,equilibration\n10,0.01,equilibration\n20,0.0")
    assert nve_ladder.steps_written(tmp_path, "ase") == 10  # the row of step 20 is being written


# ------------------------------------------------------------------------------ float32 copy
@pytest.fixture(scope="module")
def float64_model(tmp_path_factory) -> Path:
    from mdval.deploy import export

    return export(small_model(), tmp_path_factory.mktemp("model") / "small.pt")


def test_the_float32_copy_computes_the_float64_energies_to_float32_rounding(float64_model, tmp_path):
    from mdval.deploy.calculator import Calculator
    from mdval.deploy.float32 import float32_copy
    from mdval.deploy.model_file import read_metadata

    copy = float32_copy(float64_model, tmp_path / "small-float32.pt")
    meta = read_metadata(copy)
    assert meta["compute_dtype"] == "float32" and meta["derived_from"] == str(float64_model.resolve())
    atoms = fcc_cu((2, 2, 2), rattle=0.1)
    results = {}
    for name, path in (("f64", float64_model), ("f32", copy)):
        a = atoms.copy()
        a.calc = Calculator(str(path))
        results[name] = (torch.as_tensor(a.get_potential_energies()), torch.as_tensor(a.get_forces()))
    (e64, f64), (e32, f32) = results["f64"], results["f32"]
    energy_scale, force_scale = e64.abs().max().item(), f64.abs().max().item()
    assert (e32 - e64).abs().max().item() <= FLOAT32_EXACT * energy_scale
    assert (f32 - f64).abs().max().item() <= FLOAT32_EXACT * max(force_scale, 1.0)
    assert (e32 - e64).abs().max().item() > 1e-12 * energy_scale  # it does compute in float32


def test_the_float32_copy_is_kept_for_its_source_and_refused_for_another(float64_model, tmp_path):
    from mdval.deploy import export
    from mdval.deploy.float32 import float32_copy
    from mdval.deploy.model_file import read_metadata
    from mdval.md.results import sha256_file

    target = tmp_path / "copy.pt"
    float32_copy(float64_model, target)
    first = target.read_bytes()
    assert float32_copy(float64_model, target).read_bytes() == first  # kept: runs made with it stay resumable
    other = export(small_model(seed=3), tmp_path / "other.pt")
    with pytest.raises(ValueError) as refused:
        float32_copy(other, target)
    assert str(refused.value) == (
        f"{target} is the float32 copy of another model file or of an earlier version of it (sha256 "
        f"{read_metadata(target)['derived_from_sha256'][:12]}, not {sha256_file(other)[:12]} of {other}); use "
        "another --out folder, or --overwrite to replace it"
    )
    assert target.read_bytes() == first
    assert float32_copy(other, target, replace=True).read_bytes() != first
    with pytest.raises(
        ValueError,
        match=re.escape(f"{target} already computes in float32; the float32 copy needs a float64 model file"),
    ):
        float32_copy(target, tmp_path / "again.pt")
