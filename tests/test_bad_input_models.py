"""Broken models and bad atoms get one clear error, never NaN results or a torch traceback.

The same model files go to the ASE calculator, to ``mdval test`` (through mdval.cli.main, as a
user runs it) and, for the output contract, to the real ``lmp``: each must name the problem in
one line with the same words (mdval.abi.energies_contract_error).
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mdval import abi
from mdval.cli import main as mdval_main
from mdval.data.neighbors import neighbor_list
from mdval.deploy.calculator import AtomsInputError, Calculator
from mdval.deploy.model_file import ModelFileError, ModelOutputError, export, load

from broken_models import BrokenOutput, TupleOutput
from conftest import fcc_cu, small_model
from lammps_helpers import ToyManyBody, run_lmp

REEXPORT = "re-export the model with `mdval export CHECKPOINT`"
FRAME_0 = " in frame 0 of the data"


def exactly(message: str) -> str:
    """A pytest.raises pattern that matches ``message`` and nothing more."""
    return "^" + re.escape(message) + "$"


def nan_message(path: Path, n_bad: int, shown: str, where: str = "") -> str:
    """The error for NaN or inf results on ``n_bad`` of 8 atoms, listed as ``shown``."""
    return (
        f"{path} returned NaN or inf energies or forces{where} for {n_bad} of 8 atoms "
        f"(atom {shown}): the model file is broken (export it again) or the structure is "
        "outside what the model can handle (atoms too close together, or far from its "
        "training data)"
    )


MODES = ("nan", "nan_on_ni", "nan_force", "column", "float32", "int64", "all_nodes", "raises")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("broken_models")
    paths = {
        mode: export(BrokenOutput(small_model(type_names=("Cu", "Ni")), mode), root / f"{mode}.pt") for mode in MODES
    }  # the modes of tests/broken_models.py that Python must refuse
    paths["tuple"] = export(TupleOutput(small_model()), root / "tuple.pt")
    paths["good"] = export(small_model(type_names=("Cu", "Ni")), root / "good.pt")
    return paths


def cuni(seed: int = 0, ni=()) -> Atoms:
    """8 rattled fcc Cu atoms, those at indices ``ni`` made Ni."""
    atoms = fcc_cu((2, 1, 1), seed=seed)
    atoms.symbols[list(ni)] = "Ni"
    return atoms


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Three labelled frames of 8 atoms; frame 1 holds Ni at atoms 3 and 6 (labels arbitrary)."""
    frames = []
    for k, ni in enumerate(((), (3, 6), ())):
        atoms = cuni(seed=k, ni=ni)
        labels = {"energy": -3.5 * len(atoms), "forces": np.zeros((len(atoms), 3))}
        atoms.calc = SinglePointCalculator(atoms, **labels)
        frames.append(atoms)
    path = tmp_path_factory.mktemp("data") / "cuni.xyz"
    ase.io.write(path, frames, format="extxyz")
    return path


def mdval_test(model: Path, data: Path, tmp_path: Path, capsys) -> tuple[int, list[str], Path]:
    """Run `mdval test MODEL DATA --out ...`: (exit code, stderr lines, the JSON it would write)."""
    prefix = tmp_path / "eval"
    code = mdval_main(["test", str(model), str(data), "--out", str(prefix)])
    err = capsys.readouterr().err
    return code, err.splitlines(), prefix.with_name("eval.json")


def assert_cli_error(code: int, lines: list[str], json_path: Path, message: str) -> None:
    assert code == 2
    assert lines == [f"mdval: error: {message}"]  # one line, no traceback
    assert not json_path.exists()  # no result file with NaN or meaningless errors


# --------------------------------------------------------------------------- NaN and inf
def test_nan_energies_are_an_error_in_ase_and_mdval_test(models, data, tmp_path, capsys):
    path = models["nan"]
    with pytest.raises(ModelOutputError, match=exactly(nan_message(path, 8, "0, 1, 2, 3, 4, ..."))):
        Calculator(path).get_potential_energy(cuni())
    code, lines, out = mdval_test(path, data, tmp_path, capsys)
    assert_cli_error(code, lines, out, nan_message(path, 8, "0, 1, 2, 3, 4, ...", FRAME_0))


def test_nan_names_the_atoms_and_the_frame(models, data, tmp_path, capsys):
    path = models["nan_on_ni"]
    calc = Calculator(path)
    assert np.isfinite(calc.get_forces(cuni())).all()  # all Cu: fine
    with pytest.raises(ModelOutputError, match=exactly(nan_message(path, 2, "2, 5"))):
        calc.get_potential_energy(cuni(ni=(2, 5)))
    code, lines, out = mdval_test(path, data, tmp_path, capsys)
    assert_cli_error(code, lines, out, nan_message(path, 2, "3, 6", " in frame 1 of the data"))


def test_nan_forces_with_finite_energies_are_caught(models, data, tmp_path, capsys):
    path = models["nan_force"]
    for chunk in ("auto", 3):  # one model call, and one per chunk of 3 atoms
        calc = Calculator(path, chunk=chunk)
        with pytest.raises(ModelOutputError, match=exactly(nan_message(path, 8, "0, 1, 2, 3, 4, ..."))):
            calc.get_potential_energy(cuni())
    code, lines, out = mdval_test(path, data, tmp_path, capsys)
    assert_cli_error(code, lines, out, nan_message(path, 8, "0, 1, 2, 3, 4, ...", FRAME_0))


# --------------------------------------------------------------------------- output contract
@pytest.mark.parametrize(
    "mode, shape, dtype",
    [("column", (1, 1), "float64"), ("float32", (1,), "float32"), ("int64", (1,), "int64"), ("tuple", None, "tuple")],
)
def test_wrong_output_shape_or_dtype_is_refused_at_load(models, data, tmp_path, capsys, mode, shape, dtype):
    """load() evaluates one atom as a probe, so ASE and `mdval test` refuse the file before any run."""
    path = models[mode]
    message = f"{path}: {abi.energies_contract_error(shape, dtype, 1)}"
    problem = {
        "column": "energies of shape [1, 1]: expected [1]",
        "tuple": "a tuple instead of a tensor of energies: expected [1]",
    }.get(mode, f"energies of dtype {dtype}: expected float64")
    assert message == (
        f"{path}: model returned {problem} (one per local atom, ABI 1); forward() "
        "must return one float64 energy (eV) per local atom: fix the model and "
        "export it again"
    )
    with pytest.raises(ModelFileError, match=exactly(message)):
        Calculator(path)
    code, lines, out = mdval_test(path, data, tmp_path, capsys)
    assert_cli_error(code, lines, out, message)


def test_wrong_output_shape_in_a_call_is_refused(models):
    """Energies of ghost nodes too: right without ghosts, refused when chunks make ghosts."""
    path = models["all_nodes"]
    atoms = cuni()
    assert np.isfinite(Calculator(path, chunk=None).get_forces(atoms)).all()
    calc = Calculator(path, chunk=2)
    first_chunk_edges = int((calc.inputs(atoms).edge_index[0] < 2).sum())
    with pytest.raises(
        ModelFileError, match=exactly(f"{path}: {abi.energies_contract_error((2 + first_chunk_edges,), 'float64', 2)}")
    ):
        calc.get_potential_energy(atoms)


def test_a_failing_forward_is_one_line(models, data, tmp_path, capsys):
    path = models["raises"]

    def message(n_atoms: int, n_edges: int) -> str:
        return (
            f"{path}: model evaluation failed on {n_atoms} atoms and {n_edges} edges: ValueError: "
            "this toy model takes one atom at a time"
        )

    calc = Calculator(path)
    n_edges = calc.inputs(cuni()).edge_index.shape[1]
    with pytest.raises(ModelFileError, match=exactly(message(8, n_edges))):
        calc.get_potential_energy(cuni())
    frames = ase.io.read(data, ":")  # `mdval test` evaluates the 3 frames in one batch
    n_edges = sum(neighbor_list(a.positions, a.cell.array, a.pbc, 4.0).n_edges for a in frames)
    code, lines, out = mdval_test(path, data, tmp_path, capsys)
    assert_cli_error(code, lines, out, message(24, n_edges))


@pytest.mark.lammps
@pytest.mark.parametrize(
    "mode, dtype", [("column", "float64"), ("float32", "float32"), ("int64", "int64"), ("tuple", "tuple")]
)
def test_lmp_words_a_broken_output_as_python_does(models, tmp_path, mode, dtype):
    from mdval.deploy import lammps_plugin

    lammps_plugin.build()
    n = 4  # one fcc cell
    script = (
        "units metal\nlattice fcc 3.61\nregion box block 0 1 0 1 0 1\ncreate_box 1 box\n"
        "create_atoms 1 box\nmass 1 63.546\npair_style taafs\n"
        f"pair_coeff * * {models[mode]} Cu\nrun 0\n"
    )
    proc = run_lmp(script, tmp_path, check=False, timeout=120)
    shape = {"column": (n, 1), "tuple": None}.get(mode, (n,))
    errors = [line for line in (proc.stdout + proc.log).splitlines() if line.startswith("ERROR")]
    assert proc.returncode != 0 and errors, proc.stdout[-2000:]
    assert abi.energies_contract_error(shape, dtype, n) in errors[0]


# --------------------------------------------------------------------------- type_names at load
def _save_toy(path: Path, n_types: int, type_names: list[str]) -> Path:
    """A TorchScript model that does not declare its elements (ToyManyBody), with metadata naming
    ``type_names``; it holds parameters for ``n_types`` elements."""
    meta = {
        "abi": 1,
        "cutoff": 4.5,
        "type_names": type_names,
        "compute_dtype": "float64",
        "architecture": "toy_many_body",
        "activation": "sqrt",
        "optimizer": "none",
        "training_data": {},
        "metrics": {},
        "mdval_version": "test",
        "created": "1970-01-01T00:00:00Z",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(
            torch.jit.script(ToyManyBody(4.5, n_types)),
            str(path),
            _extra_files={abi.METADATA_FILENAME: json.dumps(meta)},
        )
    return path


def test_metadata_type_names_must_match_the_network(tmp_path, data, capsys):
    cases = [  # (network's elements, metadata type_names, compute dtype)
        (("Cu",), ["Cu", "Ni"], "float64"),  # more names than the network has
        (("Cu", "Ni"), ["Cu"], "float64"),  # fewer: refused where the network says its own
        (("Cu", "Ni"), ["Ni", "Cu"], "float32"),  # swapped, inside the float32 wrapper
    ]
    for k, (network, names, dtype) in enumerate(cases):
        path = export(
            small_model(type_names=network), tmp_path / f"m{k}.pt", {"type_names": names}, compute_dtype=dtype
        )
        message = (
            f"{path}: metadata type_names {names} do not match the type_names the network "
            f"was built with, {list(network)}; the metadata was edited or written wrongly: "
            f"{REEXPORT}"
        )
        with pytest.raises(ModelFileError, match=exactly(message)):
            load(path)
        with pytest.raises(ModelFileError, match=exactly(message)):
            Calculator(path)
        code, lines, out = mdval_test(path, data, tmp_path, capsys)
        assert_cli_error(code, lines, out, message)


def test_type_names_of_a_network_that_does_not_declare_them(tmp_path):
    """The probe finds an element the network has no parameters for; fewer names are a subset."""
    path = _save_toy(tmp_path / "toy.pt", 1, ["Cu", "Ni"])
    prefix = f"{path}: the network fails on species index 1 (Ni) of metadata type_names ['Cu', 'Ni']: "
    suffix = f"; the metadata lists more elements than the network was built for: {REEXPORT}"
    with pytest.raises(ModelFileError) as info:
        Calculator(path)
    assert str(info.value).startswith(prefix) and str(info.value).endswith(suffix)
    assert "\n" not in str(info.value) and "Traceback" not in str(info.value)

    subset = Calculator(_save_toy(tmp_path / "subset.pt", 2, ["Cu"]))
    assert np.isfinite(subset.get_forces(cuni())).all()


def test_repeated_type_names_are_refused(tmp_path):
    path = _save_toy(tmp_path / "twice.pt", 2, ["Cu", "Cu"])
    with pytest.raises(
        ModelFileError,
        match=exactly(
            f"{path}: metadata type_names ['Cu', 'Cu'] name Cu more than once; each element must have "
            f"one species index: {REEXPORT}"
        ),
    ):
        load(path)


def test_a_good_model_loads_and_serves(models):
    calc = Calculator(models["good"])
    assert np.isfinite(calc.get_forces(cuni(ni=(1,)))).all()


# --------------------------------------------------------------------------- bad atoms
def test_periodic_direction_without_a_cell_is_an_input_error(models):
    calc = Calculator(models["good"])
    positions = [[0.0, 0.0, 0.0], [2.5, 0.0, 0.0]]
    for cell in (np.zeros((3, 3)), [[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 0.0]]):
        atoms = Atoms("Cu2", positions=positions, cell=cell, pbc=True)
        with pytest.raises(
            AtomsInputError,
            match=exactly(
                "the cell vectors along periodic directions [0, 1, 2] are zero or linearly "
                f"dependent (cell = {np.asarray(cell, dtype=float).tolist()}); give a proper cell "
                "or set pbc=False"
            ),
        ):
            calc.get_potential_energy(atoms)
    flat = Atoms("Cu2", positions=positions, cell=np.diag([3.0, 3.0, 0.0]), pbc=(True, True, False))
    assert np.isfinite(calc.get_potential_energy(flat))


def test_a_cell_smaller_than_the_atom_names_its_closest_image(models):
    calc = Calculator(models["good"])
    atoms = Atoms("Cu", positions=[[0.0, 0.0, 0.0]], cell=np.diag([0.01, 3.0, 3.0]), pbc=True)
    with pytest.raises(
        AtomsInputError,
        match=exactly(
            "atom 0 and its own periodic image are 0.010 Å apart, closer than MIN_SEPARATION = 0.1 Å: "
            "the cell is too small along a periodic direction; fix the cell (Å) or set pbc=False along "
            "that direction"
        ),
    ):
        calc.get_potential_energy(atoms)


@pytest.mark.lammps
def test_lmp_refuses_type_names_that_do_not_match_the_network(tmp_path):
    """pair_style taafs makes the load-time check of check_network_species, in the same words."""
    from mdval.deploy import lammps_plugin

    lammps_plugin.build()
    path = export(small_model(type_names=("Cu", "Ni")), tmp_path / "swapped.pt", {"type_names": ["Ni", "Cu"]})
    script = (
        "units metal\nlattice fcc 3.61\nregion box block 0 1 0 1 0 1\ncreate_box 1 box\n"
        f"create_atoms 1 box\nmass 1 63.546\npair_style taafs\npair_coeff * * {path} Cu\nrun 0\n"
    )
    proc = run_lmp(script, tmp_path, check=False, timeout=120)
    errors = [line for line in (proc.stdout + proc.log).splitlines() if line.startswith("ERROR")]
    assert proc.returncode != 0 and errors, proc.stdout[-2000:]
    assert (
        f"pair_style taafs: {path}: metadata type_names ['Ni', 'Cu'] do not match the type_names the network "
        f"was built with, ['Cu', 'Ni']; the metadata was edited or written wrongly: {REEXPORT}"
    ) in errors[0]
