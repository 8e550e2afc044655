"""Committee model deviation: the ASE CommitteeCalculator and `pair_style taafs ... committee`.

Expected values are computed here from each member's own results (one plain mdval.Calculator
per member) with the textbook formulas (mean, then deviations from it), independently of the
pairwise-difference formula that mdval.deploy.committee and the plugin use.
"""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.stress import voigt_6_to_full_3x3_stress

import mdval
from mdval import abi
from mdval.deploy import export
from mdval.deploy.committee import MODEL_DEVI_COLUMNS, CommitteeCalculator

from conftest import FLOAT64_EXACT, FLOAT64_ROUNDING, fcc_cu, small_model
from lammps_helpers import read_dump, run_lmp, save_toy_model, write_lammps_data

TYPE_NAMES = ["Cu", "O"]
#: Per-element energy shifts (eV) of the shifted members, species order Cu, O.
SHIFTS = [(0.0, 0.0), (0.25, -0.4), (0.1, 0.3)]
#: LAMMPS and ASE deviations agree to this (eV/Å, eV/atom, eV): the issue's 1e-10.
ENGINE_AGREEMENT = 1e-10
#: DeePMD-kit's number format in model_devi.out: C++ `scientific`, precision 6, width 18.
DEVI_NUMBER = re.compile(r"^ *\d\.\d{6}e[+-]\d{2,3}$")
DEVI_HEADER = (
    "#       step         max_devi_v         min_devi_v         avg_devi_v"
    "         max_devi_f         min_devi_f         avg_devi_f"
)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Model files: 'a', 'b', 'c' (three seeds), 'shift1', 'shift2' ('a' with the per-element
    energy shifts SHIFTS[1], SHIFTS[2] added), all Cu/O DeepPot-SE with cutoff 4 Å."""
    folder = tmp_path_factory.mktemp("committee")
    paths = {}
    for name, seed in (("a", 0), ("b", 1), ("c", 2)):
        paths[name] = export(small_model("deeppot_se", TYPE_NAMES, seed=seed), folder / f"{name}.pt")
    for k in (1, 2):
        model = small_model("deeppot_se", TYPE_NAMES, seed=0)
        with torch.no_grad():
            model.fitting.energy_shift += torch.tensor(SHIFTS[k], dtype=torch.float64)
        paths[f"shift{k}"] = export(model, folder / f"shift{k}.pt")
    return paths


def _cu_o(size=(2, 2, 2), seed=0) -> Atoms:
    atoms = fcc_cu(size, seed=seed)
    symbols = np.array(atoms.get_chemical_symbols())
    symbols[np.random.default_rng(seed).permutation(len(atoms))[: len(atoms) // 3]] = "O"
    atoms.set_chemical_symbols(symbols.tolist())
    return atoms


def _member_results(paths, atoms) -> dict:
    """Each member's energies (eV), forces (eV/Å) and virial W = -σV (eV), by a plain Calculator."""
    out = {"energies": [], "forces": [], "virial": []}
    for path in paths:
        atoms.calc = mdval.Calculator(path)
        out["energies"].append(atoms.get_potential_energies())
        out["forces"].append(atoms.get_forces())
        out["virial"].append(-voigt_6_to_full_3x3_stress(atoms.get_stress()) * atoms.get_volume())
    atoms.calc = None
    return {key: np.array(value) for key, value in out.items()}


def _expected_devi(forces, virials, relative=None, relative_v=None):
    """Per-atom force deviation [N] and the six model_devi numbers, by the textbook formulas."""
    mean_f = forces.mean(axis=0)
    f_atom = np.sqrt(np.mean(np.sum((forces - mean_f) ** 2, axis=-1), axis=0))
    if relative is not None:
        f_atom = f_atom / (np.linalg.norm(mean_f, axis=-1) + relative)
    v = virials.reshape(len(virials), 9) / forces.shape[1]
    v_dev = np.sqrt(np.mean((v - v.mean(axis=0)) ** 2, axis=0))
    if relative_v is not None:
        v_dev = v_dev / (np.abs(v.mean(axis=0)) + relative_v)
    row = [v_dev.max(), v_dev.min(), np.sqrt(np.mean(v_dev**2)), f_atom.max(), f_atom.min(), f_atom.mean()]
    return f_atom, np.array(row)


# ---------------------------------------------------------------------------- ASE


def test_list_makes_a_committee_whose_first_model_drives(models):
    atoms = _cu_o()
    paths = [models["a"], models["b"], models["c"]]
    calc = mdval.Calculator(paths)
    assert isinstance(calc, CommitteeCalculator) and isinstance(calc, mdval.Calculator)
    assert mdval.CommitteeCalculator is CommitteeCalculator
    atoms.calc = calc
    got = {
        "energy": atoms.get_potential_energy(),
        "forces": atoms.get_forces(),
        "stress": atoms.get_stress(),
        "energies": atoms.get_potential_energies(),
    }
    alone = atoms.copy()
    alone.calc = mdval.Calculator(models["a"])  # the same model on the same inputs
    np.testing.assert_allclose(got["energy"], alone.get_potential_energy(), rtol=FLOAT64_EXACT)
    np.testing.assert_allclose(got["forces"], alone.get_forces(), rtol=0, atol=FLOAT64_EXACT)
    np.testing.assert_allclose(got["stress"], alone.get_stress(), rtol=0, atol=FLOAT64_EXACT)
    np.testing.assert_allclose(got["energies"], alone.get_potential_energies(), rtol=FLOAT64_EXACT)


def test_deviations_against_members(models):
    atoms = _cu_o(seed=3)
    paths = [models["a"], models["b"], models["c"]]
    members = _member_results(paths, atoms)
    atoms.calc = mdval.Calculator(paths, relative=0.5, relative_v=0.02)
    f_atom, _ = _expected_devi(members["forces"], members["virial"])
    _, row = _expected_devi(members["forces"], members["virial"], 0.5, 0.02)
    forces_std = atoms.calc.get_property("forces_std", atoms)
    assert f_atom.max() > 1e-3  # three different seeds: the members disagree
    np.testing.assert_allclose(forces_std, f_atom, rtol=FLOAT64_ROUNDING * 100)
    assert atoms.calc.get_property("max_force_deviation", atoms) == forces_std.max()
    np.testing.assert_allclose(
        atoms.calc.get_property("energies_std", atoms), members["energies"].std(axis=0), rtol=FLOAT64_ROUNDING * 100
    )
    np.testing.assert_allclose(
        atoms.calc.get_property("energy_std", atoms), members["energies"].sum(axis=1).std(), rtol=FLOAT64_ROUNDING * 100
    )
    v = members["virial"].reshape(3, 9) / len(atoms)
    np.testing.assert_allclose(
        atoms.calc.get_property("virial_std", atoms), v.std(axis=0), rtol=1e-9, atol=1e-14
    )  # ASE's stress symmetrises W
    np.testing.assert_allclose(atoms.calc.get_property("model_devi", atoms), row, rtol=1e-9)
    assert len(MODEL_DEVI_COLUMNS) == len(row)


def test_committee_mean_drives_when_asked(models):
    atoms = _cu_o(seed=4)
    paths = [models["a"], models["b"], models["c"]]
    members = _member_results(paths, atoms)
    atoms.calc = mdval.Calculator(paths, drive="mean")
    np.testing.assert_allclose(
        atoms.get_potential_energy(), members["energies"].sum(axis=1).mean(), rtol=FLOAT64_ROUNDING * 10
    )
    np.testing.assert_allclose(atoms.get_forces(), members["forces"].mean(axis=0), rtol=0, atol=FLOAT64_ROUNDING * 10)
    stress = -members["virial"].mean(axis=0) / atoms.get_volume()
    np.testing.assert_allclose(
        voigt_6_to_full_3x3_stress(atoms.get_stress()), stress, rtol=0, atol=FLOAT64_ROUNDING * 10
    )


def test_identical_members_give_exactly_zero_deviation(models):
    atoms = _cu_o(seed=5)
    atoms.calc = mdval.Calculator([models["a"]] * 3, relative=1.0, relative_v=1.0)
    for name in ("forces_std", "energies_std", "virial_std", "model_devi"):
        value = atoms.calc.get_property(name, atoms)
        assert np.all(value == 0.0), (name, value)
    assert atoms.calc.get_property("energy_std", atoms) == 0.0
    assert atoms.calc.get_property("max_force_deviation", atoms) == 0.0


def test_energy_shift_moves_only_the_energy_deviation(models):
    """Members that differ by per-element energy shifts δ_k[s]: identical forces and virials,
    per-atom energy deviation std_k δ_k[s_i], total energy deviation std_k Σ_i δ_k[s_i]."""
    atoms = _cu_o(seed=6)
    atoms.calc = mdval.Calculator([models["a"], models["shift1"], models["shift2"]])
    species = np.array([TYPE_NAMES.index(s) for s in atoms.get_chemical_symbols()])
    shifts = np.array(SHIFTS)  # [K, species]
    scale = np.abs(atoms.get_forces()).max()
    assert atoms.calc.get_property("max_force_deviation", atoms) <= FLOAT64_ROUNDING * scale
    np.testing.assert_allclose(
        atoms.calc.get_property("energies_std", atoms), shifts[:, species].std(axis=0), rtol=1e-12
    )
    np.testing.assert_allclose(
        atoms.calc.get_property("energy_std", atoms), shifts[:, species].sum(axis=1).std(), rtol=1e-12
    )
    assert np.all(atoms.calc.get_property("virial_std", atoms) <= FLOAT64_ROUNDING * scale)


def test_zero_atoms(models):
    atoms = Atoms(cell=np.eye(3) * 5.0, pbc=True)
    atoms.calc = mdval.Calculator([models["a"], models["b"]])
    assert atoms.get_potential_energy() == 0.0
    assert atoms.calc.get_property("forces_std", atoms).shape == (0,)
    assert atoms.calc.get_property("max_force_deviation", atoms) == 0.0
    assert np.all(atoms.calc.get_property("model_devi", atoms) == 0.0)


def test_members_must_agree(models, tmp_path):
    other_cutoff = save_toy_model(tmp_path / "cut.pt", TYPE_NAMES, cutoff=4.5)
    other_names = save_toy_model(tmp_path / "names.pt", ["O", "Cu"], cutoff=4.0)
    a = models["a"]
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"committee member {other_cutoff} has cutoff 4.5, the first model {a} has 4.0: every "
            "member must have the same cutoff, type_names and abi (train them with the same "
            "[model] settings)"
        ),
    ):
        mdval.Calculator([a, other_cutoff])
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"committee member {other_names} has type_names ['O', 'Cu'], the first model {a} has ['Cu', 'O']"
        ),
    ):
        mdval.Calculator([a, other_names])
    abi2 = save_toy_model(tmp_path / "abi2.pt", TYPE_NAMES, cutoff=4.0, abi_version=2)
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"{abi2} has abi=2, but this mdval serves abi 1; use the mdval version that wrote it or re-export the model"
        ),
    ):
        mdval.Calculator([a, abi2])
    with pytest.raises(ValueError, match=re.escape("a committee needs at least two model files, got 1")):
        mdval.Calculator([a])
    with pytest.raises(
        ValueError,
        match=re.escape("drive must be 'first' (the first model drives) or 'mean' (the committee mean), got 'last'"),
    ):
        mdval.Calculator([a, a], drive="last")
    with pytest.raises(
        ValueError, match=re.escape("relative must be a positive number (EPS, as DeePMD-kit's relative) or None, got 0")
    ):
        mdval.Calculator([a, a], relative=0)


# ---------------------------------------------------------------------------- LAMMPS


def _lammps_input(pair_style: str, models: dict, *, every: int = 10, steps: int = 20, extra: str = "") -> str:
    return f"""units metal
atom_style atomic
boundary p p p
read_data data.lmp
{pair_style}
pair_coeff * * {models["a"]} Cu O
neighbor 1.0 bin
velocity all create 600 4928459 loop geom
fix 1 all nve
fix dev all pair {every} taafs model_devi_f 1 model_devi_e 0
compute devi all pair taafs
thermo_style custom step pe c_devi[1] c_devi[2] c_devi[3] c_devi[4] c_devi[5] c_devi[6]
thermo_modify format float %.17g
thermo {every}
dump d all custom {every} dump.txt id type x y z f_dev[1] f_dev[2]
dump_modify d format float %.17g sort id
{extra}
run {steps}
"""


def _triclinic_system(seed=0):
    """108 Cu/O atoms in a triclinic cell, LAMMPS types and shuffled, non-consecutive IDs."""
    atoms = _cu_o((3, 3, 3), seed=seed)
    a = 3.61
    atoms.set_cell([[3 * a, 0, 0], [0.9, 3 * a, 0], [0.5, -0.7, 3 * a]], scale_atoms=True)
    atoms.wrap()
    types = np.array([1 if s == "Cu" else 2 for s in atoms.get_chemical_symbols()])
    ids = np.random.default_rng(seed).choice(np.arange(1, 5 * len(atoms)), len(atoms), replace=False)
    return atoms, types, ids


def _frames(dump_path, atoms) -> list[tuple[int, Atoms, np.ndarray]]:
    """(step, atoms at that step in ID order, rows) of every frame of a sorted dump."""
    frames = []
    text = dump_path.read_text().split("ITEM: TIMESTEP\n")[1:]
    for block in text:
        step = int(block.split("\n", 1)[0])
        path = dump_path.parent / f"frame{step}.txt"
        path.write_text("ITEM: TIMESTEP\n" + block)
        _, rows = read_dump(path)
        frame = Atoms(["Cu" if t == 1 else "O" for t in rows[:, 1]], positions=rows[:, 2:5], cell=atoms.cell, pbc=True)
        frames.append((step, frame, rows))
    return frames


def _thermo_rows(log: str) -> dict[int, np.ndarray]:
    lines = log.splitlines()
    start = next(n for n, line in enumerate(lines) if line.split()[:1] == ["Step"])
    rows = {}
    for line in lines[start + 1 :]:
        fields = line.split()
        if not fields or not fields[0].isdigit():
            break
        rows[int(fields[0])] = np.array([float(v) for v in fields[2:]])
    return rows


def _check_devi_file(text: str, expected_rows: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
    """DeePMD-kit's layout: the header, then per step a 12-wide step and 18-wide numbers in
    scientific notation, each after one space; numbers equal the expected to print precision."""
    lines = text.splitlines()
    assert lines[0] == DEVI_HEADER + "      atm_devi_f(N)"
    assert [int(line[:12]) for line in lines[1:]] == sorted(expected_rows)
    for line in lines[1:]:
        row, per_atom = expected_rows[int(line[:12])]
        fields = [line[12 + 19 * k : 12 + 19 * (k + 1)] for k in range((len(line) - 12) // 19)]
        assert len(line) == 12 + 19 * (6 + len(per_atom))
        assert all(f[0] == " " and DEVI_NUMBER.match(f[1:]) for f in fields), line
        got = np.array([float(f) for f in fields])
        np.testing.assert_allclose(got, np.concatenate([row, per_atom]), rtol=6e-7, atol=1e-300)


@pytest.mark.lammps
@pytest.mark.parametrize("nprocs, relative", [(1, ""), (2, ""), (2, "relative 0.5 relative_v 0.02")])
def test_lammps_model_devi_matches_ase(tmp_path, plugin, models, nprocs, relative):
    """The model_devi file, compute pair's vector and fix pair's per-atom values of a 3-model
    committee in NVE at 600 K, against each member evaluated alone by ASE on the dumped frames."""
    atoms, types, ids = _triclinic_system()
    write_lammps_data(tmp_path / "data.lmp", atoms, types, ids, n_types=2)
    pair = f"pair_style taafs committee {models['b']} {models['c']} out_freq 10 out_file devi.out atomic {relative}"
    proc = run_lmp(_lammps_input(pair, models), tmp_path, nprocs=nprocs)
    eps = (0.5, 0.02) if relative else (None, None)
    thermo = _thermo_rows(proc.log)
    expected = {}
    for step, frame, rows in _frames(tmp_path / "dump.txt", atoms):
        members = _member_results([models["a"], models["b"], models["c"]], frame)
        per_atom, row = _expected_devi(members["forces"], members["virial"], *eps)
        expected[step] = (row, per_atom)
        np.testing.assert_allclose(rows[:, 5], per_atom, rtol=0, atol=ENGINE_AGREEMENT)
        np.testing.assert_allclose(rows[:, 6], members["energies"].std(axis=0), rtol=0, atol=ENGINE_AGREEMENT)
        np.testing.assert_allclose(thermo[step], row, rtol=0, atol=ENGINE_AGREEMENT)
        frame.calc = mdval.Calculator(
            [models["a"], models["b"], models["c"]], relative=eps[0], relative_v=eps[1]
        )  # the ASE committee: the same numbers
        np.testing.assert_allclose(frame.calc.get_property("model_devi", frame), row, rtol=0, atol=ENGINE_AGREEMENT)
    assert sorted(expected) == [0, 10, 20]
    assert expected[20][0][3] > 1e-3  # the members disagree
    _check_devi_file((tmp_path / "devi.out").read_text(), expected)


@pytest.mark.lammps
def test_lammps_identical_and_shifted_members(tmp_path, plugin, models):
    """Identical members: every deviation exactly 0.  Members differing by per-element energy
    shifts: force and virial deviations 0 to rounding, energy deviation std_k δ_k[s_i]."""
    atoms, types, ids = _triclinic_system(seed=1)
    write_lammps_data(tmp_path / "data.lmp", atoms, types, ids, n_types=2)
    same = f"pair_style taafs committee {models['a']} {models['a']} out_freq 10 out_file same.out atomic"
    run_lmp(_lammps_input(same, models), tmp_path, nprocs=2)
    lines = (tmp_path / "same.out").read_text().splitlines()
    assert len(lines) == 4
    assert all(set(line.split()[1:]) == {"0.000000e+00"} for line in lines[1:]), lines
    frames = _frames(tmp_path / "dump.txt", atoms)
    assert len(frames) == 3 and all(np.all(rows[:, 5:7] == 0.0) for _, _, rows in frames)

    shifted = f"pair_style taafs committee {models['shift1']} {models['shift2']} out_freq 10 out_file shifted.out"
    proc = run_lmp(_lammps_input(shifted, models), tmp_path)
    thermo = _thermo_rows(proc.log)
    force_scale = 10.0  # eV/Å, far above the forces of these models at 600 K
    assert sorted(thermo) == [0, 10, 20]
    assert all(np.all(np.abs(row) <= FLOAT64_ROUNDING * force_scale) for row in thermo.values()), thermo
    for _, _, rows in _frames(tmp_path / "dump.txt", atoms):
        species = rows[:, 1].astype(int) - 1
        assert np.all(rows[:, 5] <= FLOAT64_ROUNDING * force_scale)
        np.testing.assert_allclose(rows[:, 6], np.array(SHIFTS)[:, species].std(axis=0), rtol=1e-12)


@pytest.mark.lammps
def test_lammps_null_atoms_are_left_out(tmp_path, plugin, models):
    """Under hybrid/overlay with O atoms NULL for taafs: the deviations are those of the Cu atoms
    alone (NULL atoms are neither centres nor neighbours), and 0 for the O atoms."""
    atoms, types, ids = _triclinic_system(seed=2)
    write_lammps_data(tmp_path / "data.lmp", atoms, types, ids, n_types=2)
    script = _lammps_input(
        f"pair_style hybrid/overlay taafs committee {models['b']} {models['c']} out_freq 10 "
        "out_file devi.out atomic lj/cut 3.0",
        models,
        steps=0,
    ).replace(
        f"pair_coeff * * {models['a']} Cu O",
        f"pair_coeff * * taafs {models['a']} Cu NULL\npair_coeff * * lj/cut 0.0 2.0",
    )
    proc = run_lmp(script, tmp_path)
    [(_, frame, rows)] = _frames(tmp_path / "dump.txt", atoms)
    copper = frame.numbers == 29
    members = _member_results([models["a"], models["b"], models["c"]], frame[copper])
    per_atom, row = _expected_devi(members["forces"], members["virial"])
    np.testing.assert_allclose(rows[copper, 5], per_atom, rtol=0, atol=ENGINE_AGREEMENT)
    assert np.all(rows[~copper, 5:7] == 0.0)
    np.testing.assert_allclose(_thermo_rows(proc.log)[0], row, rtol=0, atol=ENGINE_AGREEMENT)
    line = (tmp_path / "devi.out").read_text().splitlines()[1]
    assert len(line.split()) == 1 + 6 + len(frame)  # every atom, the NULL ones as 0


@pytest.mark.lammps
def test_lammps_members_run_only_on_deviation_steps(tmp_path, plugin, models):
    """A member whose forward() always fails: steps 1-9 run (model 'a' alone), step 10 fails."""

    class Failing(torch.nn.Module):
        def forward(
            self, species: torch.Tensor, edge_index: torch.Tensor, edge_vectors: torch.Tensor, n_local: int
        ) -> torch.Tensor:
            raise ValueError("the committee member was evaluated")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        meta = {"abi": 1, "cutoff": 4.0, "type_names": TYPE_NAMES, "compute_dtype": "float64"}
        torch.jit.save(
            torch.jit.script(Failing()),
            str(tmp_path / "failing.pt"),
            _extra_files={abi.METADATA_FILENAME: json.dumps(meta)},
        )
    atoms, types, ids = _triclinic_system()
    write_lammps_data(tmp_path / "data.lmp", atoms[:20], types[:20], ids[:20], n_types=2)
    pair = f"pair_style taafs committee {tmp_path / 'failing.pt'} out_freq 10"
    script = f"""units metal
read_data data.lmp
{pair}
pair_coeff * * {models["a"]} Cu O
reset_timestep 1
fix 1 all nve
run 8
print "reached step 9"
run 1
"""
    proc = run_lmp(script, tmp_path, check=False)
    output = proc.log + proc.stdout + proc.stderr
    assert "reached step 9" in proc.log and proc.returncode != 0
    assert (
        f"pair_style taafs: {tmp_path / 'failing.pt'}: the model failed on 20 atoms and " in output
        and "at step 10: ValueError: the committee member was evaluated" in output
    ), output[-2000:]


LAMMPS_ERRORS = {
    "cutoff": (
        "committee {cut}",
        "pair_style taafs committee: model '{cut}' has cutoff 4.5 Å, "
        "the pair_coeff model '{a}' has 4 Å: every committee member must have the same "
        "cutoff, type_names and abi (train them with the same [model] settings)",
    ),
    "type_names": (
        "committee {names}",
        "pair_style taafs committee: model '{names}' has type_names [O Cu], the pair_coeff model '{a}' has [Cu O]",
    ),
    "abi": (
        "committee {abi2}",
        "pair_style taafs committee: model file '{abi2}' has the wrong ABI: expected abi 1, got abi 2",
    ),
    "no_members": (
        "committee out_freq 10",
        "pair_style taafs: expected one or more model files "
        "after committee (the members besides the pair_coeff model), got none",
    ),
    "no_committee": (
        "out_freq 10 atomic",
        "pair_style taafs: out_freq, out_file, atomic, "
        "relative and relative_v need a committee: expected committee m2.pt "
        "[m3.pt ...] among the keywords",
    ),
    "out_freq": (
        "committee {a} out_freq -1",
        "pair_style taafs: expected out_freq >= 0 (steps between model deviation lines, 0 for none), got '-1'",
    ),
    "relative": ("committee {a} relative 0", "pair_style taafs: expected relative EPS > 0 (eV/Å), got '0'"),
    "changed": (
        "committee {a}",
        "pair_style taafs: the committee changed after pair_coeff: "
        "expected a pair_coeff line after the pair_style line that names the committee",
        "pair_style taafs committee {cut}\n",
    ),
}


@pytest.mark.lammps
@pytest.mark.parametrize("case", sorted(LAMMPS_ERRORS))
def test_lammps_committee_errors(tmp_path, plugin, models, case):
    files = {
        "a": models["a"],
        "cut": save_toy_model(tmp_path / "cut.pt", TYPE_NAMES, 4.5),
        "names": save_toy_model(tmp_path / "names.pt", ["O", "Cu"], 4.0),
        "abi2": save_toy_model(tmp_path / "abi2.pt", TYPE_NAMES, 4.0, abi_version=2),
    }
    keywords, expected, after = (text.format(**files) for text in (LAMMPS_ERRORS[case] + ("",))[:3])
    atoms, types, ids = _triclinic_system()
    write_lammps_data(tmp_path / "data.lmp", atoms[:8], types[:8], ids[:8], n_types=2)
    script = (
        f"units metal\nread_data data.lmp\npair_style taafs {keywords}\n"
        f"pair_coeff * * {models['a']} Cu O\n{after}run 0\n"
    )
    proc = run_lmp(script, tmp_path, check=False)
    output = proc.log + proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "ERROR" in output and expected in output, output[-2000:]
