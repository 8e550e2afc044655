"""Readers against hand-built files in each format, and the exact bad-input messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import units

from mdval.data.frames import Frame, validate_frames
from mdval.data.mlearn import KBAR_IN_EV_PER_A3
from mdval.data.readers import detect_format, read_frames

from conftest import mlearn_dir

FLOAT64_ATOL = 1e-10

CELL = np.diag([4.0, 4.0, 4.0])
POSITIONS = np.array([[0.0, 0.0, 0.0], [2.0, 2.0, 2.0]])
FORCES = np.array([[0.1, 0.2, 0.3], [-0.1, -0.2, -0.3]])


def _xyz_frame(
    energy="-7.5", force_row0="0.1 0.2 0.3", second="Cu", stress="0.01 0.002 0.0 0.002 -0.02 0.0 0.0 0.0 0.03"
):
    return (
        "2\n"
        'Lattice="4.0 0.0 0.0 0.0 4.0 0.0 0.0 0.0 4.0" Properties=species:S:1:pos:R:3:forces:R:3 '
        f'energy={energy} stress="{stress}" pbc="T T T"\n'
        f"Cu 0.0 0.0 0.0 {force_row0}\n"
        f"{second} 2.0 2.0 2.0 -0.1 -0.2 -0.3\n"
    )


def test_extxyz_energy_forces_and_stress_to_virial(tmp_path):
    path = tmp_path / "frames.xyz"
    path.write_text(_xyz_frame() + _xyz_frame(energy="-7.25"))
    frames = read_frames(path)
    assert detect_format(path) == "extxyz"
    assert [f.energy for f in frames] == [-7.5, -7.25]
    assert [f.index for f in frames] == [0, 1] and frames[1].source == str(path)
    np.testing.assert_allclose(frames[0].positions, POSITIONS, atol=FLOAT64_ATOL)
    np.testing.assert_allclose(frames[0].forces, FORCES, atol=FLOAT64_ATOL)
    stress = np.array([[0.01, 0.002, 0.0], [0.002, -0.02, 0.0], [0.0, 0.0, 0.03]])
    np.testing.assert_allclose(frames[0].virial, -stress * 64.0, atol=FLOAT64_ATOL)  # W = -σV
    assert frames[0].symbols == ["Cu", "Cu"] and frames[0].pbc.all()


def test_ase_trajectory(tmp_path):
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    atoms = Atoms("CuAg", positions=POSITIONS, cell=CELL, pbc=[True, False, True])
    atoms.calc = SinglePointCalculator(atoms, energy=-3.0, forces=FORCES)
    write(tmp_path / "t.traj", [atoms, atoms])
    frames = read_frames(tmp_path / "t.traj")
    assert len(frames) == 2 and frames[1].index == 1
    assert frames[0].symbols == ["Cu", "Ag"] and frames[0].pbc.tolist() == [True, False, True]
    assert frames[0].energy == -3.0 and frames[0].virial is None
    np.testing.assert_allclose(frames[0].forces, FORCES, atol=FLOAT64_ATOL)


def _deepmd_arrays():
    box = np.stack([CELL.ravel(), 1.1 * CELL.ravel()])
    coord = np.stack([POSITIONS.ravel(), 1.1 * POSITIONS.ravel()])
    energy = np.array([-1.0, -2.0])
    force = np.stack([FORCES.ravel(), 2 * FORCES.ravel()])
    virial = np.stack([np.arange(9.0), np.arange(9.0) + 1])
    return box, coord, energy, force, virial


def _check_deepmd(frames):
    box, coord, energy, force, virial = _deepmd_arrays()
    assert len(frames) == 2
    assert frames[0].symbols == ["Cu", "Ag"]
    for k, frame in enumerate(frames):
        assert frame.energy == pytest.approx(energy[k], abs=FLOAT64_ATOL)
        np.testing.assert_allclose(frame.cell.ravel(), box[k], atol=FLOAT64_ATOL)
        np.testing.assert_allclose(frame.positions.ravel(), coord[k], atol=FLOAT64_ATOL)
        np.testing.assert_allclose(frame.forces.ravel(), force[k], atol=FLOAT64_ATOL)
        np.testing.assert_allclose(frame.virial.ravel(), virial[k], atol=FLOAT64_ATOL)


def test_deepmd_raw(tmp_path):
    system = tmp_path / "raw"
    system.mkdir()
    (system / "type.raw").write_text("0\n1\n")
    (system / "type_map.raw").write_text("Cu\nAg\n")
    for name, array in zip(["box", "coord", "energy", "force", "virial"], _deepmd_arrays()):
        np.savetxt(system / f"{name}.raw", array.reshape(2, -1))
    assert detect_format(system) == "deepmd/raw"
    _check_deepmd(read_frames(system))


def test_deepmd_npy(tmp_path):
    system = tmp_path / "npy"
    (system / "set.000").mkdir(parents=True)
    (system / "type.raw").write_text("0\n1\n")
    (system / "type_map.raw").write_text("Cu\nAg\n")
    for name, array in zip(["box", "coord", "energy", "force", "virial"], _deepmd_arrays()):
        np.save(system / "set.000" / f"{name}.npy", array)
    assert detect_format(system) == "deepmd/npy"
    _check_deepmd(read_frames(system, "deepmd/npy"))


def _mlearn_entry(energy=-7.0, stress=(10.0, 20.0, 30.0, 1.0, 2.0, 3.0)):
    return {
        "structure": {
            "lattice": {"matrix": CELL.tolist()},
            "sites": [{"xyz": p, "species": [{"element": "Cu", "occu": 1}]} for p in POSITIONS.tolist()],
        },
        "outputs": {"energy": energy, "forces": FORCES.tolist(), "virial_stress": list(stress)},
        "group": "Elastic",
        "num_atoms": 2,
    }


def test_mlearn_json_virial_sign_and_units(tmp_path):
    path = tmp_path / "test.json"
    path.write_text(json.dumps([_mlearn_entry(), _mlearn_entry(-6.0)]))
    frames = read_frames(path)
    assert detect_format(path) == "mlearn"
    assert [f.energy for f in frames] == [-7.0, -6.0] and frames[0].info["group"] == "Elastic"
    # xx yy zz xy yz zx in kbar, pressure sign: W = +virial_stress × V.
    kbar = 1e8 * units.Pascal
    assert KBAR_IN_EV_PER_A3 == pytest.approx(kbar, rel=1e-12)
    expected = np.array([[10.0, 1.0, 3.0], [1.0, 20.0, 2.0], [3.0, 2.0, 30.0]]) * kbar * 64.0
    np.testing.assert_allclose(frames[0].virial, expected, atol=FLOAT64_ATOL)
    np.testing.assert_allclose(frames[0].stress, -expected / 64.0, atol=FLOAT64_ATOL)


def test_real_mlearn_cu_compressed_frames_have_positive_virial():
    frames = read_frames(mlearn_dir() / "Cu" / "test.json")
    elastic = [f for f in frames if f.info.get("group") == "Elastic" and "mode 1," in f.info.get("description", "")]
    strains = np.array([float(f.info["description"].split("strain")[1]) for f in elastic])
    w_xx = np.array([f.virial[0, 0] for f in elastic])
    # A cell compressed along x pushes back: W_xx > 0; stretched: W_xx < 0.
    assert np.all(w_xx[strains <= -0.02] > 0) and np.all(w_xx[strains >= 0.02] < 0)


# --- bad input: each case and its exact message --------------------------------------------


def test_nan_energy_message(tmp_path):
    path = tmp_path / "frames.xyz"
    path.write_text(_xyz_frame() + _xyz_frame(energy="nan"))
    with pytest.raises(ValueError) as error:
        read_frames(path)
    assert str(error.value) == f"{path} frame 1: energy is NaN or inf; remove or fix this frame"


def test_inf_forces_message(tmp_path):
    path = tmp_path / "frames.xyz"
    path.write_text(_xyz_frame() + _xyz_frame() + _xyz_frame(force_row0="0.1 inf 0.3"))
    with pytest.raises(ValueError) as error:
        read_frames(path)
    assert str(error.value) == f"{path} frame 2: forces contain NaN or inf; remove or fix this frame"


def test_frame_without_forces_message(tmp_path):
    path = tmp_path / "noforces.xyz"
    path.write_text('1\nLattice="3 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3 energy=-1.0 pbc="T T T"\nCu 0 0 0\n')
    with pytest.raises(ValueError) as error:
        read_frames(path)
    assert str(error.value) == f"{path} frame 0: no forces; every frame needs forces (eV/Å) to train on"
    assert read_frames(path, require_forces=False)[0].forces is None


def test_element_not_in_type_map_message(tmp_path):
    path = tmp_path / "frames.xyz"
    path.write_text(_xyz_frame() + _xyz_frame(second="Ag"))
    with pytest.raises(ValueError) as error:
        read_frames(path, type_names=["Cu"])
    assert str(error.value) == (
        f"{path} frame 1: element 'Ag' is not in the type map ['Cu']; add it to type_names or remove this frame"
    )


def test_empty_dataset_message(tmp_path):
    path = tmp_path / "empty.xyz"
    path.write_text("")
    with pytest.raises(ValueError) as error:
        read_frames(path)
    assert str(error.value) == f"{path}: no frames; the data set is empty"
    empty_json = tmp_path / "empty.json"
    empty_json.write_text("[]")
    with pytest.raises(ValueError) as error:
        read_frames(empty_json, "mlearn")
    assert str(error.value) == f"{empty_json}: no frames; the data set is empty"


def test_nan_in_mlearn_forces_names_the_frame(tmp_path):
    path = tmp_path / "bad.json"
    bad = _mlearn_entry()
    bad["outputs"]["forces"][1][2] = float("nan")
    path.write_text(json.dumps([_mlearn_entry(), _mlearn_entry(), bad]))
    with pytest.raises(ValueError) as error:
        read_frames(path, "mlearn")
    assert str(error.value) == f"{path} frame 2: forces contain NaN or inf; remove or fix this frame"


def test_validate_frames_in_memory_empty():
    with pytest.raises(ValueError) as error:
        validate_frames([], source="train set")
    assert str(error.value) == "train set: no frames; the data set is empty"
    frame = Frame(["Cu"], np.zeros((1, 3)), CELL, [True] * 3, 1.0, np.zeros((1, 3)), source="x.xyz", index=4)
    frame.virial = np.full((3, 3), np.inf)
    with pytest.raises(ValueError, match=r"^x\.xyz frame 4: virial contains NaN or inf"):
        validate_frames([frame])
