"""Replicas (issue 17 item 3): N runs that differ only in their seed, combined, with their
scatter set against the within-run standard errors (mdval/md/replicas.py, the run matrix,
``mdval md --replicas``, ``replicas = N`` in a workflow)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from mdval.cli import build_parser, main
from mdval.md import replicas as rep
from mdval.md import results as res
from mdval.md import run_folder
from mdval.md.matrix import plan, run_matrix, run_workflow, stale_run_folders
from mdval.md.protocols import NVTSettings, RunResult
from mdval.md.workflow import build_system, load_workflow

WORKFLOW = """name = "replicas"
output_dir = "{out}"
engines = ["lammps"]
{top}
[system]
lattice = "fcc"
element = "Cu"
a_A = 3.615
supercell = [3, 3, 3]

[reference]
lammps = "lammps:Cu_u3.eam"

[defaults]
timestep_fs = 2.0
equilibration_steps = 250
sample_interval = 5
trajectory_interval = 250
checkpoint_interval = 5000
seed = 1
{defaults}
[[protocol]]
kind = "nvt"
temperature_K = 600.0
steps = 3000
"""


def write_workflow(folder: Path, top: str = "", defaults: str = "") -> Path:
    path = folder / "w.toml"
    path.write_text(WORKFLOW.format(out=folder / "runs", top=top, defaults=defaults))
    return path


def estimate(value, stderr, n_eff=100.0, unit="K") -> dict:
    return {"value": value, "stderr": stderr, "n_eff": n_eff, "unit": unit}


def result(k: int, observables: dict, status: str = "completed", reason: str | None = None) -> RunResult:
    return RunResult(
        status=status,
        protocol="nvt",
        engine="lammps",
        output_dir=f"run/replica-{k}",
        steps_done=100,
        reason=reason,
        observables=observables,
        settings={"seed": rep.seed(1, k)},
        files={"results": res.RESULTS_FILE},
        timing={"startup_s": float(k), "method": "log"},
    )


# --------------------------------------------------------------------------- seeds and folders
def test_replicas_differ_in_the_seed_and_folder_only():
    settings = NVTSettings(seed=3, steps=100)
    expanded = rep.expand(settings, Path("run"), 3)
    assert [k for k, _, _ in expanded] == [1, 2, 3]
    assert [s.seed for _, s, _ in expanded] == [3, 3 + 10007, 3 + 2 * 10007]
    assert [folder for _, _, folder in expanded] == [
        Path("run/replica-1"),
        Path("run/replica-2"),
        Path("run/replica-3"),
    ]
    atoms, potential = build_system(a_A=3.615), res.Potential.resolve("lammps:Cu_u3.eam")
    first, second = (run_folder.identity(atoms, potential, s, "lammps") for _, s, _ in expanded[:2])
    assert run_folder.differences(second, first) == [f"seed: given {3 + 10007}, stored 3"]
    assert rep.expand(settings, Path("run"), 1) == [(1, settings, Path("run"))]  # N = 1: the run itself


def test_a_workflow_takes_replicas_from_its_top_level_or_defaults_and_the_command_line_wins(tmp_path):
    assert load_workflow(write_workflow(tmp_path)).replicas == 1
    assert load_workflow(write_workflow(tmp_path, top="replicas = 3")).replicas == 3
    workflow = load_workflow(write_workflow(tmp_path, defaults="replicas = 2"))
    assert workflow.replicas == 2 and all(s.seed == 1 for s in workflow.protocols)
    assert workflow.with_replicas(4).replicas == 4 and workflow.with_replicas(None) is workflow
    tasks = plan(workflow)
    base = tmp_path / "runs" / "lammps" / "nvt" / "reference"
    assert [(t["out"], t["settings"].seed, t["replica"], t["run_folder"]) for t in tasks] == [
        (str(base / "replica-1"), 1, 1, str(base)),
        (str(base / "replica-2"), 1 + 10007, 2, str(base)),
    ]
    assert [t["out"] for t in plan(workflow.with_replicas(1))] == [str(base)]  # N = 1: today's layout


@pytest.mark.parametrize(
    "top, defaults, message",
    [
        (
            "replicas = 0",
            "",
            "replicas in the top level of {path} must be an integer >= 1 (independent runs, one per seed), got 0",
        ),
        (
            "",
            'replicas = "3"',
            "replicas in [defaults] of {path} must be an integer >= 1 (independent runs, one per seed), got '3'",
        ),
        (
            "replicas = 2",
            "replicas = 2",
            "replicas is given both at the top level and in [defaults] of {path}; keep one",
        ),
    ],
)
def test_a_bad_replicas_entry_is_one_line(tmp_path, top, defaults, message):
    path = write_workflow(tmp_path, top, defaults)
    with pytest.raises(ValueError, match=re.escape(message.format(path=path)) + "$"):
        load_workflow(path)


def test_every_command_that_runs_md_takes_replicas(capsys):
    parser = build_parser()
    for command in (["md", "nvt", "--reference", "emt:Cu"], ["run", "w.toml"], ["compare", "w.toml"], ["demo"]):
        assert parser.parse_args([*command, "--replicas", "3"]).replicas == 3
        assert parser.parse_args(command).replicas == (1 if command[0] == "md" else None)  # None: the workflow's
    with pytest.raises(SystemExit):
        main(["md", "nvt", "--reference", "emt:Cu", "--replicas", "0"])
    assert "argument --replicas: must be an integer >= 1, got '0'" in capsys.readouterr().err


# -------------------------------------------------------------------------------- combination
def test_the_combination_of_a_worked_example():
    """x = 10, 12, 14 ± 1, 1, 2: w = 1, 1, 1/4, x̄ = 25.5/2.25 = 34/3, χ² = 16/9 + 4/9 + 16/9 = 4 on
    2 dof (p = e^(−2)), so the stderr 1/1.5 is scaled by √2; the between-replica SD is 2 and the
    within-run stderr √((1 + 1 + 4)/3) = √2."""
    peaks = [{"total": {"position_A": estimate(2.5 + 0.01 * k, None, math.nan, "Å")}} for k in range(3)]
    results = [
        result(
            k + 1,
            {
                "temperature_K": estimate(x, s, 100.0 * (k + 1)),
                "first_peak": peaks[k],
                "production_window": {"start_ps": 0.1 * k, "series": "epot_eV"},
            },
        )
        for k, (x, s) in enumerate([(10.0, 1.0), (12.0, 1.0), (14.0, 2.0)])
    ]
    combined, check = rep.combine(results, "run")
    temperature = combined.observables["temperature_K"]
    assert temperature["value"] == pytest.approx(34.0 / 3.0, rel=1e-14)
    assert temperature["stderr"] == pytest.approx(math.sqrt(2.0) / 1.5, rel=1e-14)
    assert (temperature["n_eff"], temperature["unit"]) == (600.0, "K")
    scatter = check["observables"]["temperature_K"]
    assert scatter["values"] == [10.0, 12.0, 14.0] and scatter["stderrs"] == [1.0, 1.0, 2.0]
    assert (scatter["chi2"], scatter["dof"], scatter["chi2_per_dof"]) == (pytest.approx(4.0), 2, pytest.approx(2.0))
    assert scatter["p_value"] == pytest.approx(math.exp(-2.0), rel=1e-12) and scatter["consistent"] is True
    assert scatter["between_sd"] == pytest.approx(2.0) and scatter["within_stderr"] == pytest.approx(math.sqrt(2.0))
    # No within-run error (first peaks of too few frames): the replicas' own scatter is the error.
    peak = combined.observables["first_peak"]["total"]["position_A"]
    assert peak["value"] == pytest.approx(2.51) and peak["stderr"] == pytest.approx(0.01 / math.sqrt(3.0))
    assert peak["n_eff"] is None and check["observables"]["first_peak"]["total"]["position_A"]["consistent"] is None
    # Non-statistical numbers: the mean over the replicas; strings: the first replica's.
    assert combined.observables["production_window"] == {"start_ps": pytest.approx(0.1), "series": "epot_eV"}
    assert combined.timing == {"startup_s": 2.0, "method": "log"}
    assert (combined.status, combined.output_dir, check["seeds"]) == ("completed", "run", [1, 10008, 20015])
    assert rep.combine(results[:1], "run")[0] is results[0]  # one replica is the run itself


def test_a_failed_replica_fails_the_run_and_stays_out_of_the_estimates():
    results = [
        result(1, {"temperature_K": estimate(600.0, 2.0)}),
        result(2, {"temperature_K": estimate(650.0, 2.0)}),
        result(3, {"temperature_K": estimate(9000.0, 5.0)}, "failed", "temperature above 3000 K"),
    ]
    combined, check = rep.combine(results, "run")
    assert (combined.status, combined.reason) == ("failed", "replica 3: temperature above 3000 K")
    assert combined.observables["temperature_K"]["value"] == pytest.approx(625.0)
    assert check["observables"]["temperature_K"]["n_replicas"] == 2
    assert [r["status"] for r in check["runs"]] == ["completed", "completed", "failed"]
    # 650 − 600 = 50 ≫ 2√2: the scatter says the stated errors are too small
    assert check["observables"]["temperature_K"]["consistent"] is False
    assert "more scatter than the errors say: temperature_K: χ²/dof = 312.50" in rep.check_summary(check)


def test_g_of_r_is_pooled_over_the_frames_of_all_replicas():
    def rdf(total, n_frames, blocks):
        return {
            "r_A": [1.0, 2.0],
            "total": total,
            "partial": {"Cu-Cu": total},
            "n_frames": n_frames,
            "r_max_A": 2.5,
            "start_ps": 0.2,
            "blocks": {"n_blocks": len(blocks), "total": blocks, "partial": {"Cu-Cu": blocks}},
        }

    combined, _ = rep.combine(
        [
            result(1, {"rdf": rdf([1.0, 2.0], 1, [[1.0, 2.0]])}),
            result(2, {"rdf": rdf([3.0, 4.0], 3, [[3.0, 3.0], [3.0, 5.0]])}),
        ],
        "run",
    )
    g = combined.observables["rdf"]
    assert g["total"] == pytest.approx([2.5, 3.5]) and g["partial"]["Cu-Cu"] == pytest.approx([2.5, 3.5])
    assert g["n_frames"] == 4 and g["blocks"]["n_blocks"] == 3
    assert g["blocks"]["total"] == [[1.0, 2.0], [3.0, 3.0], [3.0, 5.0]]
    other_grid = rdf([1.0, 1.0], 1, [])
    other_grid["r_A"] = [1.5, 2.5]
    combined, _ = rep.combine([result(1, {"rdf": rdf([1.0, 2.0], 1, [])}), result(2, {"rdf": other_grid})], "run")
    assert "rdf" not in combined.observables  # shrunken NPT boxes: no common grid to pool on


# ------------------------------------------------------------------------------- mdval md
TINY = [
    "--reference",
    "emt:Cu",
    "--supercell",
    "2",
    "2",
    "2",
    "--equilibration-steps",
    "10",
    "--steps",
    "30",
    "--sample-interval",
    "2",
    "--trajectory-interval",
    "10",
]


def test_mdval_md_replicas_layout_printout_and_resume(tmp_path, capsys):
    out = tmp_path / "nvt"
    assert main(["md", "nvt", *TINY, "--seed", "5", "--replicas", "2", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["replica-1", "replica-2", rep.COMBINED_FILE]
    identities = [json.loads((out / f"replica-{k}" / run_folder.RUN_FILE).read_text()) for k in (1, 2)]
    assert run_folder.differences(identities[1], identities[0]) == ["seed: given 10012, stored 5"]
    # different seeds, different initial velocities (the positions are the same crystal)
    thermo = [res.read_thermo(out / f"replica-{k}" / res.THERMO_FILE) for k in (1, 2)]
    assert thermo[0]["epot_eV"][0] == thermo[1]["epot_eV"][0] and thermo[0]["ekin_eV"][0] != thermo[1]["ekin_eV"][0]
    assert "replica 2 (seed 10012): completed, 40 steps" in said
    assert re.search(r"^temperature +\S+ ± \S+ K \(N_eff = \d+\) from 2 replicas; between-replica SD", said, re.M)
    combined = json.loads((out / rep.COMBINED_FILE).read_text())
    temperatures = [
        json.loads((out / f"replica-{k}" / res.RESULTS_FILE).read_text())["observables"]["temperature_K"]
        for k in (1, 2)
    ]
    assert combined["replicas"]["observables"]["temperature_K"]["values"] == [t["value"] for t in temperatures]
    assert combined["output_dir"] == str(out) and combined["provenance"]["seed"] == [5, 10012]
    before = (out / "replica-2" / res.THERMO_FILE).read_bytes()
    assert main(["md", "nvt", *TINY, "--seed", "5", "--replicas", "2", "--out", str(out)]) == 0  # resumed: done
    assert (out / "replica-2" / res.THERMO_FILE).read_bytes() == before
    assert json.loads((out / rep.COMBINED_FILE).read_text())["observables"] == combined["observables"]
    single = tmp_path / "single"
    assert main(["md", "nvt", *TINY, "--seed", "5", "--replicas", "1", "--out", str(single)]) == 0
    assert (single / res.THERMO_FILE).exists() and not list(single.glob("replica-*"))  # N = 1: today's layout
    assert not (single / rep.COMBINED_FILE).exists()
    assert (single / res.THERMO_FILE).read_bytes() == (out / "replica-1" / res.THERMO_FILE).read_bytes()


# ----------------------------------------------------------------------- the real thing, LAMMPS
def test_three_lammps_replicas_of_the_eam_reference_hold_the_set_temperature(tmp_path):
    """Three seeds of a 6 ps Langevin NVT run of Cu_u3.eam at 600 K (108 atoms): the combined mean
    kinetic temperature agrees with the set point within 3 standard errors, the check of the error
    model is reported, and the summary entry carries the combined estimates."""
    workflow = load_workflow(write_workflow(tmp_path, top="replicas = 3"))
    matrix = run_matrix(workflow, jobs=2, progress=False, log=lambda _: None)
    [entry], [item] = matrix["runs"], matrix["md"]
    run = tmp_path / "runs" / "lammps" / "nvt" / "reference"
    assert matrix["replicas"] == 3 and entry["output_dir"] == str(run) and entry["status"] == "completed"
    assert [r["output_dir"] for r in entry["replicas"]["runs"]] == [str(run / f"replica-{k}") for k in (1, 2, 3)]
    assert item["out"] == str(run / "replica-1") and len(item["replicas"]) == 3
    per_replica = [json.loads((run / f"replica-{k}" / res.RESULTS_FILE).read_text()) for k in (1, 2, 3)]
    assert [r["settings"]["seed"] for r in per_replica] == [1, 10008, 20015]
    values = [r["observables"]["temperature_K"]["value"] for r in per_replica]
    assert len(set(values)) == 3  # independent runs, not copies
    temperature, scatter = entry["summary"]["temperature_K"], entry["replicas"]["observables"]["temperature_K"]
    weights = [r["observables"]["temperature_K"]["stderr"] ** -2 for r in per_replica]
    assert temperature["value"] == pytest.approx(sum(w * x for w, x in zip(weights, values)) / sum(weights), rel=1e-12)
    z = (temperature["value"] - 600.0) / temperature["stderr"]
    print(
        f"T = {temperature['value']:.2f} ± {temperature['stderr']:.2f} K, z = {z:.2f}; "
        f"χ²/dof = {scatter['chi2_per_dof']:.2f} (p = {scatter['p_value']:.2f}), "
        f"between-replica SD {scatter['between_sd']:.2f} K, within-run stderr {scatter['within_stderr']:.2f} K"
    )
    assert abs(z) < 3.0
    assert scatter["dof"] == 2 and math.isfinite(scatter["chi2_per_dof"]) and isinstance(scatter["consistent"], bool)
    summary = json.loads((workflow.output_dir / "summary.json").read_text())
    assert summary["replicas"] == 3 and summary["runs"][0]["summary"]["temperature_K"] == temperature
    # the cache works per replica: a second call reuses all three
    [reused] = run_matrix(workflow, jobs=2, progress=False, log=lambda _: None)["md"]
    assert reused["cached"] and all(t["cached"] for t in reused["replicas"])
    # `mdval run` (one run after another) finds the same finished replicas, and combines them alike
    again = run_workflow(workflow, log=lambda _: None)["runs"][0]
    assert again["summary"]["temperature_K"]["value"] == pytest.approx(temperature["value"], rel=1e-12)
    # each replica is checked on its own: another seed makes all three out of date
    reseeded = load_workflow(tmp_path / "w.toml")
    reseeded.protocols[0].seed = 2
    assert sorted(stale_run_folders(reseeded)) == [run / f"replica-{k}" for k in (1, 2, 3)]
    assert "(seed: given 10009, stored 10008)" in stale_run_folders(reseeded)[run / "replica-2"]
