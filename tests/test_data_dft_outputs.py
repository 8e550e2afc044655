"""DFT-code outputs read through dpdata (VASP OUTCAR, CP2K output, Quantum ESPRESSO pw.x)
against hand-built files whose every number is chosen here, so the expected frame is known
independently of dpdata and of mdval.

Unit and sign conventions used for the expectations (independent of the readers):

- VASP ``in kB`` line: XX YY ZZ XY YZ ZX in kbar, positive when compressed (the
  ``FORCE on cell =-STRESS`` table; its 1/3 trace is the printed ``external pressure``).
- CP2K ``STRESS TENSOR [GPa]`` (<= 7) and ``STRESS| Analytical stress tensor [GPa]`` (>= 8.1):
  CP2K's ``pv_virial / volume`` (virial_methods.F), positive when compressed (ASE's CP2K
  calculator flips it: "cp2k uses the opposite sign").
- QE ``total   stress`` (Ry/bohr**3 and kbar columns): positive when compressed; its 1/3 trace is
  the printed ``P=`` (ASE's espresso reader multiplies it by -1 to get ASE's stress).
- Our virial W = -σ_ASE · V, so for all three codes W = +(printed tensor) · V.
"""

from __future__ import annotations

import numpy as np
import pytest

from mdval.data.readers import detect_format, read_frames

from dft_outputs import (
    ATOL_EXACT,
    BOHR_A,
    CP2K_CELL,
    CP2K_ENERGY_HA,
    CP2K_FORCES_AU,
    CP2K_POSITIONS,
    CP2K_STRESS_GPA,
    CP2K_SYMBOLS,
    GPA_PER_EV_A3,
    HARTREE_EV,
    KBAR_GPA,
    QE_CELL,
    QE_RY_BOHR3_PER_KBAR,
    RTOL_UNITS,
    RYDBERG_EV,
    VASP_STEPS,
    cp2k_text,
    qe_expected,
    qe_output,
    vasp_expected_virial,
    voigt_to_matrix,
    write_cp2k,
    write_outcar,
    write_qe,
)


def test_unit_constants_agree_with_ase():
    from ase import units

    assert HARTREE_EV == pytest.approx(units.Hartree, rel=RTOL_UNITS)
    assert BOHR_A == pytest.approx(units.Bohr, rel=RTOL_UNITS)
    assert 1.0 / GPA_PER_EV_A3 == pytest.approx(units.GPa, rel=RTOL_UNITS)
    assert QE_RY_BOHR3_PER_KBAR * RYDBERG_EV / BOHR_A**3 == pytest.approx(1e8 * units.Pascal, rel=RTOL_UNITS)


# --- VASP OUTCAR -------------------------------------------------------------------------------


def test_vasp_outcar_two_ionic_steps_as_written(tmp_path):
    path = write_outcar(tmp_path / "OUTCAR")
    assert detect_format(path) == "vasp/outcar"
    frames = read_frames(path)  # format from the name
    assert len(frames) == 2
    assert [f.index for f in frames] == [0, 1] and {f.source for f in frames} == {str(path)}
    for frame, step in zip(frames, VASP_STEPS):
        assert frame.symbols == ["Si", "Si"] and frame.pbc.all()
        assert frame.info == {"format": "vasp/outcar"}
        # The file's axes: the fcc primitive cell is not lower triangular and must not be rotated.
        np.testing.assert_allclose(frame.cell, step["cell"], rtol=0, atol=ATOL_EXACT)
        np.testing.assert_allclose(frame.positions, step["positions"], rtol=0, atol=ATOL_EXACT)
        np.testing.assert_allclose(frame.forces, step["forces"], rtol=0, atol=ATOL_EXACT)
        assert frame.energy == pytest.approx(step["toten"], abs=ATOL_EXACT)  # TOTEN, not sigma->0
        np.testing.assert_allclose(frame.virial, vasp_expected_virial(step), rtol=RTOL_UNITS, atol=0)
    # "in kB" XX = +12.5 kbar: compressed along x, so W_xx > 0 and ASE's σ_xx < 0.
    assert frames[0].virial[0, 0] > 0 and frames[0].stress[0, 0] < 0
    np.testing.assert_allclose(
        frames[0].stress, -voigt_to_matrix(*VASP_STEPS[0]["in_kb"]) * KBAR_GPA / GPA_PER_EV_A3, rtol=RTOL_UNITS
    )


def test_vasp_outcar_agrees_with_ase_reader(tmp_path):
    """ASE's vasp-out reader of the same file (σ = -in kB): same frames, except that the ASE path
    takes energy(sigma->0) where dpdata takes the force-consistent TOTEN."""
    path = write_outcar(tmp_path / "OUTCAR")
    ours = read_frames(path, "vasp/outcar")
    ase_frames = read_frames(path, "vasp-out")
    assert len(ase_frames) == 2
    for a, b, step in zip(ase_frames, ours, VASP_STEPS):
        assert a.symbols == b.symbols
        np.testing.assert_allclose(a.cell, b.cell, rtol=0, atol=ATOL_EXACT)
        np.testing.assert_allclose(a.positions, b.positions, rtol=0, atol=ATOL_EXACT)
        np.testing.assert_allclose(a.forces, b.forces, rtol=0, atol=ATOL_EXACT)
        np.testing.assert_allclose(a.virial, b.virial, rtol=RTOL_UNITS, atol=0)
        assert a.energy == pytest.approx(step["sigma0"], abs=ATOL_EXACT)
        assert b.energy == pytest.approx(step["toten"], abs=ATOL_EXACT)


def test_vasp_outcar_left_handed_cell_keeps_virial_sign(tmp_path):
    """dpdata scales the kB tensor by det(cell), negative for a left-handed cell; W uses |V|."""
    steps = [{**step, "cell": step["cell"][[1, 0, 2]]} for step in VASP_STEPS]
    assert np.linalg.det(steps[0]["cell"]) < 0
    frames = read_frames(write_outcar(tmp_path / "OUTCAR", steps))
    for frame, step in zip(frames, steps):
        np.testing.assert_allclose(frame.cell, step["cell"], rtol=0, atol=ATOL_EXACT)
        np.testing.assert_allclose(frame.virial, vasp_expected_virial(step), rtol=RTOL_UNITS, atol=0)


# --- CP2K ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("modern", "unit"),
    [(False, "GPa"), (True, "GPa"), (True, "bar")],
    ids=["cp2k7-STRESS-TENSOR", "cp2k2023-STRESS|-GPa", "cp2k-STRESS|-bar"],
)
def test_cp2k_output(tmp_path, modern, unit):
    path = write_cp2k(tmp_path / "si2c.out", modern=modern, unit=unit)
    (frame,) = read_frames(path, "cp2k/output")
    assert frame.symbols == CP2K_SYMBOLS and frame.pbc.all() and frame.info == {"format": "cp2k/output"}
    np.testing.assert_allclose(frame.cell, CP2K_CELL, rtol=0, atol=ATOL_EXACT)
    np.testing.assert_allclose(frame.positions, CP2K_POSITIONS, rtol=0, atol=ATOL_EXACT)
    assert frame.energy == pytest.approx(CP2K_ENERGY_HA * HARTREE_EV, rel=RTOL_UNITS)
    np.testing.assert_allclose(frame.forces, CP2K_FORCES_AU * HARTREE_EV / BOHR_A, rtol=RTOL_UNITS, atol=0)
    # CP2K prints pv_virial / V (positive when compressed): W = +σ_printed · V.
    expected_virial = CP2K_STRESS_GPA / GPA_PER_EV_A3 * abs(np.linalg.det(CP2K_CELL))
    np.testing.assert_allclose(frame.virial, expected_virial, rtol=RTOL_UNITS, atol=0)
    assert frame.virial[0, 0] > 0 and frame.virial[1, 1] < 0  # +1.5 GPa compressed, -2 GPa stretched


def test_cp2k_stress_in_unknown_unit_message(tmp_path):
    path = tmp_path / "si2c.out"
    path.write_text(cp2k_text(modern=True).replace("stress tensor [GPa]", "stress tensor [atm]"))
    with pytest.raises(ValueError) as error:
        read_frames(path, "cp2k/output")
    line = path.read_text().splitlines().index(" STRESS| Analytical stress tensor [atm]") + 1
    assert str(error.value) == f"{path}: CP2K stress tensor in [atm] at line {line}; only ['GPa', 'bar'] are read"


def test_cp2k_stress_cut_short_message(tmp_path):
    path = tmp_path / "si2c.out"
    text = cp2k_text(modern=True)
    path.write_text(text[: text.index(" STRESS|      z")])  # the run died while printing the stress
    with pytest.raises(ValueError) as error:
        read_frames(path, "cp2k/output")
    line = len(path.read_text().splitlines()) + 1
    assert str(error.value) == (
        f"{path}: line {line} should be the z row of the CP2K stress tensor ('STRESS| z' and 3 numbers), got ''"
    )


# --- Quantum ESPRESSO pw.x ------------------------------------------------------------------------


def test_qe_pw_scf(tmp_path):
    path = write_qe(tmp_path)  # pw.in next to pw.out
    (frame,) = read_frames(path, "qe/pw/scf")
    expected = qe_expected()
    assert frame.symbols == ["Cu", "Cu"] and frame.pbc.all() and frame.info == {"format": "qe/pw/scf"}
    # The file's axes: the sheared cell is not lower triangular and must not be rotated.
    np.testing.assert_allclose(frame.cell, QE_CELL, rtol=0, atol=ATOL_EXACT)
    np.testing.assert_allclose(frame.positions, expected["positions"], rtol=0, atol=ATOL_EXACT)
    assert frame.energy == pytest.approx(expected["energy"], rel=RTOL_UNITS)
    np.testing.assert_allclose(frame.forces, expected["forces"], rtol=RTOL_UNITS, atol=0)
    np.testing.assert_allclose(frame.virial, expected["virial"], rtol=RTOL_UNITS, atol=0)
    assert frame.virial[0, 0] < 0  # xx = -12.5 kbar: stretched along x


def test_qe_by_name_goes_through_ase_and_agrees(tmp_path):
    """``pw.out`` is not recognised by name, so ASE reads it (espresso-out, from the output alone).
    Agreement is to print precision: cell and positions in alat units (6-7 decimals), stress from
    the Ry/bohr^3 columns (8 decimals), and ASE's CODATA 2006 Rydberg."""
    path = write_qe(tmp_path)
    assert detect_format(path) == "ase"
    (frame,) = read_frames(path)
    expected = qe_expected()
    assert frame.symbols == ["Cu", "Cu"]
    np.testing.assert_allclose(frame.cell, QE_CELL, rtol=0, atol=1e-5)
    np.testing.assert_allclose(frame.positions, expected["positions"], rtol=0, atol=1e-6)
    assert frame.energy == pytest.approx(expected["energy"], rel=1e-6)
    np.testing.assert_allclose(frame.forces, expected["forces"], rtol=1e-6, atol=0)
    half_last_digit = 0.5e-8 * RYDBERG_EV / BOHR_A**3 * abs(np.linalg.det(QE_CELL))  # 8 decimals, Ry/bohr^3
    np.testing.assert_allclose(frame.virial, expected["virial"], rtol=1e-6, atol=half_last_digit)


# --- bad input: each case and its exact message ----------------------------------------------------


def test_garbage_outcar_message(tmp_path):
    path = tmp_path / "OUTCAR"
    path.write_text("this is not an OUTCAR\n 1 2 3\n")
    with pytest.raises(ValueError) as error:
        read_frames(path)
    assert str(error.value) == f"{path}: dpdata could not read this as vasp/outcar: cannot get atom names from potcar"


def test_outcar_cut_in_the_first_ionic_step_has_no_frames(tmp_path):
    text = write_outcar(tmp_path / "full").read_text()
    path = tmp_path / "OUTCAR"
    path.write_text(text[: text.index("POSITION") + 300])  # inside the first force table
    with pytest.warns(UserWarning, match="incomplete labels in frame 1"):
        with pytest.raises(ValueError) as error:
            read_frames(path)
    assert str(error.value) == f"{path}: no frames; the data set is empty"


def test_outcar_cut_in_the_second_ionic_step_keeps_the_first(tmp_path):
    text = write_outcar(tmp_path / "full").read_text()
    path = tmp_path / "OUTCAR"
    path.write_text(text[: text.index("POSITION", text.index("FREE ENERGIE")) + 300])
    with pytest.warns(UserWarning, match="incomplete labels in frame 2"):
        frames = read_frames(path)
    assert len(frames) == 1 and frames[0].energy == pytest.approx(VASP_STEPS[0]["toten"], abs=ATOL_EXACT)


def test_qe_output_without_its_input_message(tmp_path):
    path = tmp_path / "scf.out"
    path.write_text(qe_output())
    with pytest.raises(ValueError) as error:
        read_frames(path, "qe/pw/scf")
    assert str(error.value) == (
        f"{path}: dpdata could not read this as qe/pw/scf: [Errno 2] No such file or directory: '{tmp_path / 'scf.in'}'"
    )
