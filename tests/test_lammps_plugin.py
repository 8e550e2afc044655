"""pair_style taafs in the real lmp (1 and 2 MPI ranks) against the Python reference.

The reference (tests/lammps_helpers.reference_results) evaluates the same model file by the ABI
recipe with an ASE neighbour list, no ghost atoms; LAMMPS uses ghosts, reverse communication and
its own periodic images.  Every comparison uses REL_TOL_FLOAT64, relative to the largest
reference magnitude of the quantity.  Atom IDs are always shuffled and non-consecutive.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from ase.build import bulk

from mdval import abi

from lammps_helpers import (
    NKTV2P_METAL,
    read_dump,
    read_thermo,
    reference_results,
    run_lmp,
    save_toy_model,
    write_lammps_data,
)

pytestmark = pytest.mark.lammps

REL_TOL_FLOAT64 = 1e-8  # relative agreement LAMMPS vs reference, float64 model
CUTOFF = 4.5  # Å, toy model cutoff
TYPE_NAMES = ["Cu", "O"]


@pytest.fixture(scope="session")
def model(tmp_path_factory, plugin):
    return save_toy_model(tmp_path_factory.mktemp("model") / "toy.pt", TYPE_NAMES, CUTOFF)


# ---------------------------------------------------------------------------- systems


def _system(name: str, seed: int = 0):
    """(atoms, LAMMPS types 1-based, processors line) for a named test system."""
    rng = np.random.default_rng(seed)
    a = 3.61
    processors = ""
    if name in ("ortho", "two_element"):
        atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat((3, 3, 3))
    elif name == "triclinic":
        atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat((3, 3, 3))
        cell = np.array([[3 * a, 0, 0], [1.9, 3 * a, 0], [1.3, -1.1, 3 * a]])
        atoms.set_cell(cell, scale_atoms=True)
    elif name == "small_box":  # edges 7.22 Å < 2 * cutoff, triclinic: many self-images
        atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat((2, 2, 2))
        atoms.set_cell(np.array([[2 * a, 0, 0], [0.8, 2 * a, 0], [0.5, 0.6, 2 * a]]), scale_atoms=True)
    elif name == "empty_rank":  # all atoms in y < L/2: with `processors 1 2 1` rank 1 owns none
        atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat((3, 2, 3))
        atoms.positions[:, 1] += 0.3
        atoms.set_cell(np.diag([3 * a, 5 * a, 3 * a]), scale_atoms=False)
        processors = "processors 1 2 1"
    else:
        raise ValueError(name)
    atoms.rattle(0.08, seed=seed)
    atoms.wrap()
    types = np.ones(len(atoms), dtype=int)
    if name in ("two_element", "triclinic", "small_box"):
        types[rng.permutation(len(atoms))[: len(atoms) // 3]] = 2
    if name == "empty_rank":
        assert atoms.positions[:, 1].max() < atoms.cell[1, 1] / 2
    return atoms, types, processors


def _ids(n: int, seed: int = 1) -> np.ndarray:
    """Shuffled, non-consecutive atom IDs."""
    return np.random.default_rng(seed).choice(np.arange(1, 20 * n), size=n, replace=False)


def _input(pair_lines: str, processors: str = "", newton: str = "on", units: str = "metal") -> str:
    return f"""units {units}
atom_style atomic
boundary p p p
newton {newton}
{processors}
read_data data.lmp
{pair_lines}
neighbor 1.0 bin
compute pe all pe/atom
compute sa all stress/atom NULL
compute vir all pressure NULL virial
thermo_style custom step pe vol c_vir[1] c_vir[2] c_vir[3] c_vir[4] c_vir[5] c_vir[6]
thermo_modify format float %.17g
dump d all custom 1 dump.txt id type fx fy fz c_pe c_sa[1] c_sa[2] c_sa[3] c_sa[4] c_sa[5] c_sa[6]
dump_modify d format float %.17g sort id
run 0
"""


def _lammps_results(workdir, script: str, nprocs: int, ids: np.ndarray) -> dict:
    """LAMMPS results in the ASE atom order, in eV, eV/Å and eV (virials)."""
    proc = run_lmp(script, workdir, nprocs=nprocs)
    thermo = read_thermo(proc.log)
    _, rows = read_dump(workdir / "dump.txt")
    back = np.argsort(np.argsort(ids))  # ASE index k -> row of id ids[k] in the sorted dump
    rows = rows[back]
    volume = thermo["Volume"]
    w6 = np.array([thermo[f"c_vir[{k}]"] for k in range(1, 7)]) * volume / NKTV2P_METAL
    return {
        "energy": thermo["PotEng"],
        "forces": rows[:, 2:5],
        "energies": rows[:, 5],
        "virial6": w6,
        "atom_virial6": -rows[:, 6:12] / NKTV2P_METAL,
        "log": proc.log,
    }


def _voigt6(tensors: np.ndarray) -> np.ndarray:
    return np.stack([tensors[..., a, b] for a, b in abi.LAMMPS_VIRIAL_ORDER], axis=-1)


def _rel(got, want) -> float:
    got, want = np.asarray(got, float), np.asarray(want, float)
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-300))


def _assert_parity(got: dict, ref: dict) -> dict:
    errors = {
        "energy": _rel(got["energy"], ref["energy"]),
        "forces": _rel(got["forces"], ref["forces"]),
        "virial": _rel(got["virial6"], _voigt6(ref["virial"])),
        "energies": _rel(got["energies"], ref["energies"]),
        "atom_virials": _rel(got["atom_virial6"], _voigt6(ref["atom_virials"])),
    }
    print("max relative errors:", {k: f"{v:.2e}" for k, v in errors.items()})
    bad = {k: v for k, v in errors.items() if not v < REL_TOL_FLOAT64}
    assert not bad, f"relative errors above {REL_TOL_FLOAT64}: {bad}"
    return errors


# ---------------------------------------------------------------------------- parity


@pytest.mark.parametrize("nprocs", [1, 2])
@pytest.mark.parametrize("name", ["ortho", "triclinic", "two_element", "small_box", "empty_rank"])
def test_parity_with_reference(tmp_path, model, name, nprocs):
    if name == "empty_rank" and nprocs == 1:
        pytest.skip("the empty-rank layout needs 2 ranks")
    atoms, types, processors = _system(name)
    ids = _ids(len(atoms))
    write_lammps_data(tmp_path / "data.lmp", atoms, types, ids, n_types=2)
    script = _input(f"pair_style taafs\npair_coeff * * {model} Cu O", processors)
    got = _lammps_results(tmp_path, script, nprocs, ids)
    ref = reference_results(model, atoms, types - 1)
    _assert_parity(got, ref)
    if name == "empty_rank":  # the layout really left one rank without atoms
        nlocal = got["log"].split("Nlocal:")[-1].splitlines()[0].split()
        assert nlocal[-2:] == ["0", "min"], nlocal


@pytest.mark.parametrize("nprocs", [1, 2])
def test_hybrid_overlay_is_sum_of_styles(tmp_path, model, nprocs):
    """hybrid/overlay taafs (type 2 NULL) + lj/cut equals taafs-on-type-1 + lj/cut alone."""
    atoms, types, _ = _system("two_element", seed=3)
    ids = _ids(len(atoms), seed=4)
    write_lammps_data(tmp_path / "data.lmp", atoms, types, ids, n_types=2)
    lj = "pair_coeff * * lj/cut 0.02 2.3"
    hybrid = _lammps_results(
        tmp_path,
        _input(f"pair_style hybrid/overlay taafs lj/cut 5.0\npair_coeff * * taafs {model} Cu NULL\n{lj}"),
        nprocs,
        ids,
    )
    lj_only = _lammps_results(tmp_path, _input("pair_style lj/cut 5.0\npair_coeff * * 0.02 2.3"), nprocs, ids)

    copper = types == 1
    taafs = reference_results(model, atoms[copper], np.zeros(copper.sum(), dtype=int))
    ref = {"energy": taafs["energy"] + lj_only["energy"]}
    for key in ("forces", "energies", "atom_virials"):
        full = np.zeros((len(atoms),) + taafs[key].shape[1:])
        full[copper] = taafs[key]
        ref[key] = full
    ref["forces"] = ref["forces"] + lj_only["forces"]
    ref["energies"] = ref["energies"] + lj_only["energies"]
    got = dict(hybrid)
    got["virial6"] = hybrid["virial6"] - lj_only["virial6"]
    got["atom_virial6"] = hybrid["atom_virial6"] - lj_only["atom_virial6"]
    ref["virial"] = taafs["virial"]
    _assert_parity(got, ref)
    assert abs(lj_only["energy"]) > 1e-3, "the lj/cut part must not be negligible"


@pytest.mark.parametrize("nprocs", [1, 2])
def test_types_map_to_elements_by_name(tmp_path, model, nprocs):
    """pair_coeff names the element of each type (map_element2type): three types O Cu O, in an
    order unlike the model's (Cu O) and with O twice, give the reference of those species."""
    atoms, types, _ = _system("triclinic", seed=5)
    types[np.random.default_rng(55).permutation(len(atoms))[: len(atoms) // 3]] = 3
    ids = _ids(len(atoms), seed=6)
    write_lammps_data(tmp_path / "data.lmp", atoms, types, ids, n_types=3)
    got = _lammps_results(tmp_path, _input(f"pair_style taafs\npair_coeff * * {model} O Cu O"), nprocs, ids)
    species = np.array([0, 1, 0, 1])[types]  # type -> index in TYPE_NAMES (Cu 0, O 1)
    assert set(species) == {0, 1} and set(types) == {1, 2, 3}
    _assert_parity(got, reference_results(model, atoms, species))


# ---------------------------------------------------------------------------- chunks

CHUNK_REL_TOL = 1e-12  # chunked vs unchunked: the same sums, grouped by chunk (rounding only)


@pytest.fixture(scope="session")
def deeppot_model(tmp_path_factory, plugin):
    """A small DeepPot-SE (Cu, O; per-layer TAAFS): its padded per-centre rows depend on the
    largest neighbour count of a call, which chunking changes."""
    from mdval.deploy import export

    from conftest import small_model

    model = small_model("deeppot_se", ["Cu", "O"], "taafs:basis=chebyshev1,scope=layer", seed=3)
    return export(model, tmp_path_factory.mktemp("deeppot") / "deeppot.pt")


def _assert_same(got: dict, ref: dict, tol: float = CHUNK_REL_TOL) -> None:
    errors = {key: _rel(got[key], ref[key]) for key in ("energy", "forces", "virial6", "energies", "atom_virial6")}
    print("chunked vs unchunked, max relative differences:", {k: f"{v:.1e}" for k, v in errors.items()})
    bad = {k: v for k, v in errors.items() if not v <= tol}
    assert not bad, f"relative differences above {tol}: {bad}"


@pytest.mark.parametrize("nprocs", [1, 2])
@pytest.mark.parametrize(
    "model_name, system, chunk",
    [
        ("toy", "triclinic", 7),  # 108 atoms: 7 divides neither 108 nor a rank's share
        ("deeppot", "triclinic", 7),
        ("deeppot", "triclinic", 1),  # one centre per model call
        ("toy", "small_box", 1),  # 32 atoms, many periodic self-images among the neighbours
        ("toy", "empty_rank", 5),  # with 2 ranks, rank 1 owns no atoms
    ],
)
def test_chunked_equals_unchunked(tmp_path, model, deeppot_model, model_name, system, chunk, nprocs):
    """`pair_style taafs chunk N` (at most N centres per model call) gives the energy, forces,
    virial, per-atom energies and per-atom virials of one call per rank (`chunk off`)."""
    if system == "empty_rank" and nprocs == 1:
        pytest.skip("the empty-rank layout needs 2 ranks")
    path = model if model_name == "toy" else deeppot_model
    atoms, types, processors = _system(system, seed=5)
    ids = _ids(len(atoms), seed=6)
    write_lammps_data(tmp_path / "data.lmp", atoms, types, ids, n_types=2)
    coeff = f"pair_coeff * * {path} Cu O"
    off = _lammps_results(tmp_path, _input(f"pair_style taafs chunk off\n{coeff}", processors), nprocs, ids)
    got = _lammps_results(tmp_path, _input(f"pair_style taafs chunk {chunk}\n{coeff}", processors), nprocs, ids)
    assert "chunk off: one model call per rank and step" in off["log"]
    calls = re.search(r"rank 0 evaluates (\d+) atoms \((\d+) edges\) in (\d+) model call\(s\)", got["log"])
    assert calls, got["log"][-2000:]
    n0, calls0 = int(calls.group(1)), int(calls.group(3))
    assert calls0 == -(-n0 // chunk), (n0, calls0)  # ceil(n0 / chunk): it really was chunked
    _assert_same(got, off)


@pytest.mark.parametrize("nprocs", [1, 2])
def test_chunk_auto_limits_edges_per_call(tmp_path, model, nprocs):
    """The default, `chunk auto`, splits a rank's atoms into calls of at most 10 000 edges on the
    CPU (500 atoms with about 42 neighbours each: 3 calls on one rank, 2 per rank on two) and
    gives the results of one call per rank."""
    cells = 5
    n = 4 * cells**3
    lattice = f"""units metal
atom_style atomic
boundary p p p
lattice fcc 3.61
region box block 0 {cells} 0 {cells} 0 {cells}
create_box 2 box
create_atoms 1 box
mass * 63.546
set group all type/fraction 2 0.3 8123
displace_atoms all random 0.05 0.05 0.05 4711 units box
"""

    def run(pair: str) -> dict:
        script = _input(pair).replace(
            "units metal\natom_style atomic\nboundary p p p\nnewton on\n\nread_data data.lmp\n", lattice
        )
        return _lammps_results(tmp_path, script, nprocs, np.arange(1, n + 1))

    auto = run(f"pair_style taafs\npair_coeff * * {model} Cu O")  # the default is chunk auto
    off = run(f"pair_style taafs chunk off\npair_coeff * * {model} Cu O")
    calls = re.search(
        r"pair_style taafs: chunk auto: at most 10000 edges per model call; rank 0 "
        r"evaluates (\d+) atoms \((\d+) edges\) in (\d+) model call\(s\) of at most "
        r"(\d+) edges",
        auto["log"],
    )
    assert calls, auto["log"][-2000:]
    atoms, edges, n_calls, most = (int(g) for g in calls.groups())
    assert (atoms == n) if nprocs == 1 else (0 < atoms < n), calls.groups()
    assert edges > 10_000 and n_calls >= 2 and most <= 10_000, calls.groups()
    _assert_same(auto, off)


KEYWORD_ERRORS = {
    "chunk 0": "expected chunk auto, off or a number of atoms >= 1 (at most that many centre atoms "
    "per model call), got '0'",
    "chunk -5": "expected chunk auto, off or a number of atoms >= 1 (at most that many centre "
    "atoms per model call), got '-5'",
    "chunk 2.5": "expected chunk auto, off or a number of atoms >= 1 (at most that many centre "
    "atoms per model call), got '2.5'",
    "chunk lots": "expected chunk auto, off or a number of atoms >= 1 (at most that many centre "
    "atoms per model call), got 'lots'",
    "chunk": "Illegal pair_style taafs chunk command: missing argument",
    "chunks 5": "expected keyword device, threads, chunk, committee, out_freq, out_file, atomic, "
    "relative or relative_v, got 'chunks'",
    # utils::bnumeric / utils::inumeric refuse integers out of range, in LAMMPS' words
    "chunk 99999999999999999999": "Integer 99999999999999999999 in input script or data file is out of range",
    "threads 0": "expected threads >= 1, got '0'",
    "threads two": "expected threads >= 1, got 'two'",
    "threads 1.5": "expected threads >= 1, got '1.5'",
    "threads 99999999999": "Integer 99999999999 in input script or data file is out of range",
}


@pytest.mark.parametrize("keywords", sorted(KEYWORD_ERRORS))
def test_keyword_errors(tmp_path, model, keywords):
    atoms, types, _ = _system("two_element")
    write_lammps_data(tmp_path / "data.lmp", atoms[:8], types[:8], np.arange(1, 9), n_types=2)
    script = _input(f"pair_style taafs {keywords}\npair_coeff * * {model} Cu O")
    proc = run_lmp(script, tmp_path, check=False)
    output = proc.log + proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "ERROR" in output and KEYWORD_ERRORS[keywords] in output, output[-2000:]


def test_keyword_numbers_are_read_as_lammps_reads_them(tmp_path, model):
    """A signed or zero-padded count is a number (utils::bnumeric/inumeric), logged as such."""
    atoms, types, _ = _system("two_element")
    write_lammps_data(tmp_path / "data.lmp", atoms[:8], types[:8], np.arange(1, 9), n_types=2)
    proc = run_lmp(_input(f"pair_style taafs chunk +05 threads 01\npair_coeff * * {model} Cu O"), tmp_path)
    assert "pair_style taafs: chunk 5: at most 5 atoms per model call; rank 0 evaluates 8 atoms" in proc.log, proc.log[
        -2000:
    ]


# ---------------------------------------------------------------------------- errors

ERROR_CASES = {
    "missing_file": ("pair_coeff * * {dir}/absent.pt Cu Cu", "cannot open model file"),
    "corrupt_file": ("pair_coeff * * {dir}/corrupt.pt Cu Cu", "cannot read model file"),
    "wrong_abi": ("pair_coeff * * {dir}/abi2.pt Cu Cu", "expected abi 1, got abi 2"),
    "unknown_element": ("pair_coeff * * {model} Cu Zr", "element 'Zr' (atom type 2) is not in model"),
    "only_null": (
        "pair_coeff * * {model} NULL NULL",
        "pair_coeff for taafs: expected at least one element, got only NULL",
    ),
    "not_star_star": (
        "pair_coeff 1 1 {model} Cu Cu",  # LAMMPS' own check for one_coeff styles
        "Pair_coeff must start with * * for pair style taafs",
    ),
    "wrong_name_count": (
        "pair_coeff * * {model} Cu",
        "expected 2 element names (one per atom type, or NULL) after the model file, got 1",
    ),
    "units_real": ("pair_coeff * * {model} Cu Cu", "expected units metal (eV, Å), got units real"),
    "newton_off": ("pair_coeff * * {model} Cu Cu", "expected newton pair on, got newton pair off"),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_error_messages(tmp_path, model, case):
    coeff, expected = ERROR_CASES[case]
    (tmp_path / "corrupt.pt").write_bytes(b"PK\x03\x04 this is not a model" * 10)
    save_toy_model(tmp_path / "abi2.pt", TYPE_NAMES, CUTOFF, abi_version=2)
    atoms, types, _ = _system("two_element")
    write_lammps_data(tmp_path / "data.lmp", atoms[:8], types[:8], np.arange(1, 9), n_types=2)
    script = _input(
        "pair_style taafs\n" + coeff.format(dir=tmp_path, model=model),
        newton="off" if case == "newton_off" else "on",
        units="real" if case == "units_real" else "metal",
    )
    proc = run_lmp(script, tmp_path, check=False)
    output = proc.log + proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "ERROR" in output and expected in output, output[-2000:]


# ---------------------------------------------------------------------------- loading


def test_check_reports_loaded_plugin(plugin):
    from mdval.deploy import lammps_plugin

    info = lammps_plugin.check()
    assert info["loads"], info
    assert info["built_against"]["torch"] and info["built_against"]["lammps"]


def test_lammps_python_module_autoloads_plugin(plugin, model):
    code = (
        "import lammps\nlmp = lammps.lammps(cmdargs=['-log', 'none', '-screen', 'none'])\n"
        "for line in ('units metal', 'region b block 0 1 0 1 0 1', 'create_box 1 b',\n"
        "             'pair_style taafs'):\n"
        "    lmp.command(line)\n"
        "print(['pair', 'taafs'] in lmp.available_plugins(None))\n"
    )
    venv_lib = os.path.join(sys.prefix, "lib")
    env = dict(os.environ, LD_LIBRARY_PATH=venv_lib + ":" + os.environ.get("LD_LIBRARY_PATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip().endswith("True"), out.stdout + out.stderr


def test_libtorch_binds_its_own_blas_inside_lmp(tmp_path):
    """liblammps.so of the wheel exports a reference BLAS (dgemm_ ...). The plugin opens its
    implementation with RTLD_DEEPBIND so that libtorch's dgemm_ binds to libtorch's own (MKL);
    bound to liblammps', every matrix product in lmp was about 3x slower. The dynamic linker's
    own record of the binding is checked, not a timing."""
    import re

    from mdval.deploy import export

    from conftest import small_model

    export(small_model("deeppot_se", ["Cu"]), tmp_path / "m.pt")
    script = """units metal
lattice fcc 3.61
region box block 0 2 0 2 0 2
create_box 1 box
create_atoms 1 box
mass 1 63.546
pair_style taafs
pair_coeff * * m.pt Cu
run 0
"""
    (tmp_path / "in.lmp").write_text(script)
    env = dict(os.environ, OMP_NUM_THREADS="1", LD_DEBUG="bindings", LD_DEBUG_OUTPUT=str(tmp_path / "ld"))
    from lammps_helpers import LMP

    proc = subprocess.run(
        [LMP, "-in", "in.lmp", "-log", "none", "-screen", "none"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    pattern = re.compile(r"binding file (\S*libtorch_cpu\.so) \[\d+\] to (\S+) \[\d+\]: normal symbol `dgemm_'")
    targets = set()
    for trace in tmp_path.glob("ld.*"):
        with open(trace, errors="replace") as handle:
            for line in handle:
                if "dgemm_" in line:
                    match = pattern.search(line)
                    if match:
                        targets.add(os.path.basename(match.group(2)))
    assert targets, "libtorch never called dgemm_: the test system exercised no matrix product"
    assert targets == {"libtorch_cpu.so"}, targets


@pytest.mark.parametrize("nprocs", [1, 2])
@pytest.mark.parametrize(
    "architecture",
    [
        "deeppot_se",
        "deeppot_se compressed",
        "behler_parrinello",
        "deeppot_se_centered",
        "deeppot_se_centered compressed",
    ],
)
def test_parity_with_ase_calculator_on_real_models(tmp_path, architecture, nprocs):
    """LAMMPS (pair_style taafs) against mdval.Calculator on the same exported model: a real
    DeepPot-SE with per-layer TAAFS or a Behler-Parrinello model, Cu/O, triclinic, shuffled ids.
    Per-atom virials: the calculator's `stresses` are symmetrised Voigt tensors and LAMMPS keeps
    one side of each off-diagonal pair, so the diagonal is compared here; all six components are
    compared against the exact ABI reference in test_parity_with_reference."""
    from ase.stress import voigt_6_to_full_3x3_stress

    from mdval import Calculator
    from mdval.deploy import export

    from conftest import small_model

    model = small_model(architecture.split()[0], ["Cu", "O"], "taafs:basis=chebyshev1,scope=layer", seed=2)
    path = export(model, tmp_path / "model.pt")
    if architecture.endswith("compressed"):  # the tabulated embedding served by both engines
        from mdval.deploy.compress import compress_file

        path, _ = compress_file(path, tmp_path / "model_compressed.pt")
    atoms, types, _ = _system("triclinic")
    ids = _ids(len(atoms), seed=7)
    write_lammps_data(tmp_path / "data.lmp", atoms, types, ids, n_types=2)
    got = _lammps_results(tmp_path, _input(f"pair_style taafs\npair_coeff * * {path} Cu O"), nprocs, ids)

    atoms = atoms.copy()
    atoms.set_chemical_symbols(["Cu" if t == 1 else "O" for t in types])
    atoms.calc = Calculator(path)
    volume = atoms.get_volume()
    virial = -voigt_6_to_full_3x3_stress(atoms.get_stress()) * volume
    atom_virial = -atoms.get_stresses() * volume  # [N, 6] Voigt xx yy zz yz xz xy
    errors = {
        "energy": _rel(got["energy"], atoms.get_potential_energy()),
        "forces": _rel(got["forces"], atoms.get_forces()),
        "virial": _rel(got["virial6"], _voigt6(virial)),
        "energies": _rel(got["energies"], atoms.get_potential_energies()),
        "atom_virial_diagonal": _rel(got["atom_virial6"][:, :3], atom_virial[:, :3]),
    }
    print("LAMMPS vs mdval.Calculator, max relative errors:", {k: f"{v:.1e}" for k, v in errors.items()})
    bad = {k: v for k, v in errors.items() if not v < REL_TOL_FLOAT64}
    assert not bad, f"relative errors above {REL_TOL_FLOAT64}: {bad}"
