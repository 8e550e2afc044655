"""Teachers (EMT, LAMMPS through its Python module) and reproducible, cached data generation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mdval.cli import main
from mdval.data.generate import GenerateSettings, generate, read_settings_hash
from mdval.data.readers import read_frames
from mdval.data.teachers import lammps_preset, make_teacher

from conftest import mlearn_dir

FD_STEP = 1e-5
FD_RTOL = 1e-5  # central differences on a smooth potential


def _tiny(**overrides):
    values = dict(n_frames=10, frames_per_trajectory=2, equilibration_steps=5, sample_every=2)
    values.update(overrides)
    return GenerateSettings(**values)


def test_emt_generation_is_reproducible_cached_and_has_provenance(tmp_path):
    out = generate(_tiny(), tmp_path / "a.xyz", progress=False)
    again = generate(_tiny(), tmp_path / "b.xyz", progress=False)
    assert out.read_bytes() == again.read_bytes()
    other_seed = generate(_tiny(seed=1), tmp_path / "c.xyz", progress=False)
    assert other_seed.read_bytes() != out.read_bytes()

    frames = read_frames(out, type_names=["Cu"])
    assert len(frames) == 10
    assert all(32 <= f.n_atoms <= 108 for f in frames)
    kinds = [f.info["kind"] for f in frames]
    assert kinds.count("strain") == 2 and kinds.count("md") == 8
    assert {f.info["temperature_K"] for f in frames if f.info["kind"] == "md"} == {300.0, 600.0, 900.0, 1200.0}
    assert all(f.info["reference"] == "emt" and f.info["seed"] == 0 for f in frames)
    assert all(f.virial is not None for f in frames)
    provenance = json.loads((tmp_path / "a.xyz.provenance.json").read_text())
    assert provenance["settings"]["element"] == "Cu" and provenance["settings_hash"] == read_settings_hash(out)

    # Cache: same settings -> the file is not rewritten; new settings -> regenerated.
    mtime = out.stat().st_mtime_ns
    generate(_tiny(), out, progress=False)
    assert out.stat().st_mtime_ns == mtime
    generate(_tiny(n_frames=11), out, progress=False)
    assert len(read_frames(out)) == 11


def test_emt_rejects_unknown_element():
    with pytest.raises(ValueError, match="EMT has no parameters for 'Si'"):
        make_teacher("emt", element="Si")


def test_cli_generate_with_lammps_preset(tmp_path, capsys):
    out = tmp_path / "eam.xyz"
    code = main(
        [
            "data",
            "generate",
            "--reference",
            "lammps:Cu_u3.eam",
            "--n-frames",
            "5",
            "--seed",
            "3",
            "--strain-fraction",
            "0.4",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    frames = read_frames(out)
    assert len(frames) == 5 and frames[0].info["reference"] == "lammps:Cu_u3.eam"
    capsys.readouterr()
    assert main(["data", "generate", "--reference", "lammps:Nope.eam", "--out", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith(
        "mdval: error: unknown LAMMPS preset 'Nope.eam'; known presets: Cu_u3.eam,"
    )
    assert len(read_frames(out)) == 5  # the earlier file is untouched


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--temperatures-K", "-5", "temperatures_K must be one or more temperatures > 0 K, got [-5.0]"),
        ("--strain-fraction", "1.5", "strain_fraction must be in [0, 1] (the share of strained frames), got 1.5"),
    ],
)
def test_cli_generate_refuses_impossible_settings(tmp_path, capsys, option, value, message):
    """A negative temperature used to give NaN velocities and was written out with exit 0."""
    out = tmp_path / "x.xyz"
    assert main(["data", "generate", option, value, "--n-frames", "2", "--out", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err == f"mdval: error: {message}\n"
    assert not out.exists()


def _strained_copper(calc):
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=3.63, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.05, seed=2)
    atoms.set_cell(
        atoms.cell.array @ np.array([[1.01, 0.02, 0.0], [0.0, 0.98, 0.01], [0.0, 0.0, 1.0]]), scale_atoms=True
    )
    atoms.calc = calc
    return atoms


@pytest.mark.parametrize("preset", ["Cu_u3.eam", "Cu_Zuo_JPCA2020.snap"])
def test_lammps_teacher_forces_and_stress_are_energy_derivatives(preset):
    calc, description = make_teacher(f"lammps:{preset}")
    assert description["elements"] == ["Cu"]
    atoms = _strained_copper(calc)
    forces = atoms.get_forces()
    stress = atoms.get_stress(voigt=False)
    positions = atoms.positions.copy()
    atoms.positions[5, 1] += FD_STEP
    e_plus = atoms.get_potential_energy()
    atoms.positions[5, 1] -= 2 * FD_STEP
    e_minus = atoms.get_potential_energy()
    atoms.positions[:] = positions
    assert -(e_plus - e_minus) / (2 * FD_STEP) == pytest.approx(forces[5, 1], rel=FD_RTOL, abs=1e-7)
    # σ_ab = (1/V) dE/dε_ab (ASE sign): check a normal and a shear component.
    volume, cell = atoms.get_volume(), atoms.cell.array.copy()
    for a, b in [(0, 0), (0, 1)]:
        energies = []
        for sign in (1, -1):
            eps = np.zeros((3, 3))
            eps[a, b] += sign * FD_STEP / (2 if a != b else 1)
            eps[b, a] += sign * FD_STEP / 2 if a != b else 0.0
            atoms.set_cell(cell @ (np.eye(3) + eps), scale_atoms=True)
            energies.append(atoms.get_potential_energy())
            atoms.set_cell(cell, scale_atoms=True)
        assert (energies[0] - energies[1]) / (2 * FD_STEP) / volume == pytest.approx(stress[a, b], rel=1e-4, abs=1e-8)


def test_mlearn_virial_sign_agrees_with_the_zuo_snap_potential():
    """The SNAP potential fitted to mlearn Cu must give W of the same sign as our reading of
    ``virial_stress`` on the strongly strained Elastic frames."""
    calc, _ = make_teacher("lammps:Cu_Zuo_JPCA2020.snap")
    frames = read_frames(mlearn_dir() / "Cu" / "test.json")
    strained = [f for f in frames if f.info.get("group") == "Elastic" and np.abs(np.diag(f.virial)).max() > 20.0]
    assert len(strained) >= 4
    for frame in strained:
        atoms = frame.to_atoms()
        atoms.calc = calc
        w_snap = -atoms.get_stress(voigt=False) * atoms.get_volume()
        diagonal = np.diag(frame.virial)
        big = np.abs(diagonal) > 0.3 * np.abs(diagonal).max()
        assert np.all(np.sign(np.diag(w_snap)[big]) == np.sign(diagonal[big])), frame.info["description"]


def test_presets_parse_snap_include_files():
    potential = lammps_preset("Si_Zuo_JPCA2020.snap")
    assert potential.pair_style == "snap" and potential.elements == ("Si",)
    assert potential.pair_coeff[0].endswith("Si_Zuo_JPCA2020.snapparam Si")
    with pytest.raises(ValueError, match="unknown LAMMPS preset 'X.eam'"):
        lammps_preset("X.eam")
