"""pair_style taafs in the real lmp: bad positions and broken models stop it with one clear line.

Each case used to corrupt the heap (``malloc(): ...``, ``corrupted double-linked list``), stop
with ``internal error: expected N edges``, or print NaN with exit code 0.  Now each stops with
``ERROR on proc N: pair_style taafs: <message> (src/pair_taafs.cpp:LINE)`` and a non-zero exit
code.  These errors are seen by one MPI rank only, so the plugin raises them with error->one,
which aborts every rank: the ``mpirun -np 2`` case would hang with error->all.  A model that
loads on some ranks only is agreed on by every rank first (an all-reduce of the load status), so
all of them stop with ``ERROR: ...`` naming the failing rank.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import warnings

import numpy as np
import pytest
import torch
from ase import Atoms

from mdval import abi

from broken_models import BrokenOutput, TupleOutput
from lammps_helpers import (
    LMP,
    MPIRUN,
    ToyManyBody,
    read_thermo,
    reference_results,
    run_lmp,
    save_toy_model,
)

pytestmark = pytest.mark.lammps

CUTOFF = 4.5  # Å, toy model cutoff
REL_TOL_FLOAT64 = 1e-8  # LAMMPS vs the Python reference (as in test_lammps_plugin.py)
LMP_TIMEOUT = 120  # s: a hang (error->all on one rank) fails the test instead of stalling it
MODEL_FIX = "forward() must return one float64 energy (eV) per local atom: fix the model and export it again"
BROKEN_MODEL = "the model file is broken (export it again) or the structure around atom 1 is outside what it can handle"


@pytest.fixture(scope="session")
def toy(tmp_path_factory, plugin):
    return save_toy_model(tmp_path_factory.mktemp("model") / "toy.pt", ["Cu"], CUTOFF)


def save_broken_model(path, mode: str) -> str:
    toy = ToyManyBody(CUTOFF, 1)
    module = TupleOutput(toy) if mode == "tuple" else BrokenOutput(toy, mode)
    meta = {
        "abi": abi.ABI_VERSION,
        "cutoff": CUTOFF,
        "type_names": ["Cu"],
        "compute_dtype": "float64",
        "architecture": "toy_many_body",
        "activation": "sqrt",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript on purpose
        scripted = torch.jit.script(module)
        torch.jit.save(scripted, str(path), _extra_files={abi.METADATA_FILENAME: json.dumps(meta)})
    return str(path)


def fcc_cu(model: str, extra: str) -> str:
    """4x4x4 fcc Cu (256 atoms, IDs 1..256), then ``extra``."""
    return f"""units metal
atom_style atomic
boundary p p p
lattice fcc 3.61
region box block 0 4 0 4 0 4
create_box 1 box
create_atoms 1 box
mass 1 63.546
pair_style taafs
pair_coeff * * {model} Cu
velocity all create 300 1
{extra}
"""


def dimer(model: str, extra: str) -> str:
    """Two Cu atoms 2.5 Å apart (IDs 1 and 2) in a 20 Å box: the edges are 1->2 and 2->1."""
    return f"""units metal
atom_style atomic
boundary p p p
region box block 0 20 0 20 0 20
create_box 1 box
create_atoms 1 single 5.0 5.0 5.0 units box
create_atoms 1 single 7.5 5.0 5.0 units box
mass 1 63.546
pair_style taafs
pair_coeff * * {model} Cu
{extra}
"""


def assert_stops_with(proc, message: str) -> None:
    """lmp failed with exactly ``message`` after ``ERROR on proc N: pair_style taafs: `` (and
    LAMMPS' ``(src/FILE:LINE)``), and with no sign of memory corruption."""
    output = proc.stdout + proc.stderr + proc.log
    assert proc.returncode != 0, output[-3000:]
    for sign in ("malloc", "corrupted", "Segmentation", "signal"):
        assert sign not in output, output[-3000:]
    line = re.compile(
        r"ERROR on proc \d+: pair_style taafs: " + re.escape(message) + r"( \(src/[\w./]+:\d+\))?$", re.MULTILINE
    )
    assert line.search(output), output[-3000:]


# ---------------------------------------------------------------------------- bad positions

OVERLAP = (
    "atoms 1 and 257 are 0 Å apart at step 0: expected at least 1e-06 Å (overlapping "
    "atoms: remove the duplicate, e.g. an atom created twice)"
)


@pytest.mark.parametrize("nprocs", [1, 2])
def test_overlapping_atoms_stop_lammps(tmp_path, toy, nprocs):
    # atom 257 on top of atom 1; on 2 ranks only the rank that owns them sees the pair
    script = fcc_cu(toy, "create_atoms 1 single 0 0 0 units box\nfix 1 all nve\nrun 10")
    proc = run_lmp(script, tmp_path, nprocs=nprocs, check=False, timeout=LMP_TIMEOUT)
    assert_stops_with(proc, OVERLAP)


def test_nan_position_stops_lammps(tmp_path, toy):
    # A NaN velocity makes the position NaN after one step, and NaN displacements never trigger
    # a neighbour-list rebuild (where LAMMPS itself would catch them): pair_style taafs sees
    # them first.  Atom 100 is not the first centre: the neighbour check finds it.
    extra = "group hot id 100\nvariable v atom 1e308*10-1e308*10\nvelocity hot set v_v v_v v_v\nfix 1 all nve\nrun 5"
    proc = run_lmp(fcc_cu(toy, extra), tmp_path, check=False, timeout=LMP_TIMEOUT)
    assert_stops_with(
        proc,
        "atom 100 has a non-finite position (nan, nan, nan) Å at step 1: "
        "expected finite coordinates (the run has blown up: check for "
        "overlapping atoms, velocities or forces that are not finite, or "
        "lower the timestep)",
    )


# ---------------------------------------------------------------------------- broken models


def test_nan_energy_stops_fix_nve_on_fcc(tmp_path, plugin):
    model = save_broken_model(tmp_path / "nan.pt", "nan")
    proc = run_lmp(fcc_cu(model, "fix 1 all nve\nrun 10"), tmp_path, check=False, timeout=LMP_TIMEOUT)
    assert_stops_with(
        proc,
        f"{model}: model returned a non-finite energy (nan eV) for atom 1 at "
        f"step 0: expected finite energies; {BROKEN_MODEL}",
    )


NON_FINITE = {
    "nan": "model returned a non-finite energy (nan eV) for atom 1 at step 0: expected finite "
    f"energies; {BROKEN_MODEL}",
    "inf": "model returned a non-finite energy (-inf eV) for atom 1 at step 0: expected finite "
    f"energies; {BROKEN_MODEL}",
    "nan_force": "model returned a non-finite force (nan eV/Å) between atoms 1 and 2 at step 0: "
    f"expected finite forces; {BROKEN_MODEL}",
}


@pytest.mark.parametrize("run", ["run 0", "fix 1 all nve\nrun 10"])
@pytest.mark.parametrize("mode", sorted(NON_FINITE))
def test_non_finite_model_output_stops_lammps(tmp_path, plugin, mode, run):
    model = save_broken_model(tmp_path / f"{mode}.pt", mode)
    proc = run_lmp(dimer(model, run), tmp_path, check=False, timeout=LMP_TIMEOUT)
    assert_stops_with(proc, f"{model}: {NON_FINITE[mode]}")


CONTRACT = {
    "column": f"model returned energies of shape [2, 1]: expected [2] (one per local atom, ABI 1); {MODEL_FIX}",
    "float32": f"model returned energies of dtype float32: expected float64 (one per local atom, ABI 1); {MODEL_FIX}",
    "int64": f"model returned energies of dtype int64: expected float64 (one per local atom, ABI 1); {MODEL_FIX}",
    "tuple": "model returned a tuple instead of a tensor of energies: expected [2] (one per local "
    f"atom, ABI 1); {MODEL_FIX}",
    "raises": "the model failed on 2 atoms and 2 edges at step 0: ValueError: this toy model takes one atom at a time; "
    "fix the model and export it again",
}


@pytest.mark.parametrize("mode", sorted(CONTRACT))
def test_model_breaking_the_contract_stops_lammps(tmp_path, plugin, mode):
    model = save_broken_model(tmp_path / f"{mode}.pt", mode)
    proc = run_lmp(dimer(model, "run 0"), tmp_path, check=False, timeout=LMP_TIMEOUT)
    assert_stops_with(proc, f"{model}: {CONTRACT[mode]}")


def test_dimer_runs_with_the_unbroken_model(tmp_path, plugin):
    """The control: the same dimer and wrapper, unbroken, run and give the reference energy."""
    model = save_broken_model(tmp_path / "ok.pt", "none")
    script = dimer(model, "thermo_style custom step pe\nthermo_modify format float %.17g\nrun 0")
    proc = run_lmp(script, tmp_path, check=False, timeout=LMP_TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:]
    atoms = Atoms("Cu2", positions=[[5.0, 5.0, 5.0], [7.5, 5.0, 5.0]], cell=[20.0] * 3, pbc=True)
    want = reference_results(model, atoms, np.zeros(2, dtype=np.int64))["energy"]
    assert read_thermo(proc.log)["PotEng"] == pytest.approx(want, rel=REL_TOL_FLOAT64)


# ---------------------------------------------------------------------------- one rank fails


@pytest.mark.parametrize("missing_on", [0, 1, None])
def test_model_missing_on_one_rank_stops_every_rank(tmp_path, toy, missing_on):
    """Two ranks in their own working directories (mpirun MPMD, ``-wdir``) read the relative
    model path of pair_coeff, and the file is in one of them only.  Before, the failing rank
    called error->all alone, the ranks met in different collectives, and MPICH aborted with
    "message sizes do not match" (or hung) without ever printing the cause."""
    dirs = [tmp_path / "rank0", tmp_path / "rank1"]
    for rank, folder in enumerate(dirs):
        folder.mkdir()
        if rank != missing_on:
            shutil.copy(toy, folder / "toy.pt")
    (dirs[0] / "in.lmp").write_text(fcc_cu("toy.pt", "run 0"))  # rank 0 reads the input
    lmp = [LMP, "-in", "in.lmp", "-log", "none"]
    cmd = [MPIRUN, "-np", "1", "-wdir", str(dirs[0]), *lmp, ":", "-np", "1", "-wdir", str(dirs[1]), *lmp]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=LMP_TIMEOUT, env=dict(os.environ, OMP_NUM_THREADS="1")
    )
    output = proc.stdout + proc.stderr
    if missing_on is None:  # the control: the same MPMD launch runs when both ranks see it
        assert proc.returncode == 0, output[-3000:]
        assert re.search(r"Loop time of \S+ on 2 procs", output), output[-3000:]
        return
    assert proc.returncode != 0, output[-3000:]
    message = (
        "pair_style taafs: cannot open model file 'toy.pt': expected a TorchScript file "
        "exported by mdval (check the path in pair_coeff); on MPI rank "
        f"{missing_on} (1 of 2 ranks failed, the others loaded the model): every rank "
        "must see the same model file and devices"
    )
    line = re.compile(r"^ERROR: " + re.escape(message) + r" \(src/[\w./]+:\d+\)$", re.MULTILINE)
    assert line.search(output), output[-3000:]
    assert "Fatal error" not in output, output[-3000:]
