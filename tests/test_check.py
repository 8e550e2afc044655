"""The model-file contract check (mdval.deploy.check.validate_model, `mdval check`).

Every zoo model passes every check; models broken in one way each fail the check that names
that way, with the numbers or the one-line message that says what is wrong, and the checks
that do not concern it pass. A file that cannot be read at all is a one-line error (exit 2).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from mdval import abi
from mdval.cli import main as mdval_main
from mdval.deploy.check import CHECK_NAMES, GAP_A, METADATA_TYPES, SKIN_A, validate_model
from mdval.deploy.model_file import ModelFileError, export
from mdval.deploy.probes import Graph, beyond, cluster

from broken_models import BrokenOutput, TupleOutput
from conftest import small_model

REPO = Path(__file__).resolve().parents[1]
ZOO = sorted((REPO / "models" / "cu").glob("*.pt"))
FIX = abi.ENERGIES_FIX
#: A difference line of the invariance checks: "max |ΔE_i| X eV, max |ΔF| Y eV/Å (tolerance ...)".
DIFFERENCES = re.compile(r"max \|ΔE_i\| (\S+) eV, max \|ΔF\| (\S+) eV/Å \(tolerance (\S+) eV, (\S+) eV/Å\)")


class ContractBreaker(torch.nn.Module):
    """``inner`` plus a small term (about 1e-4 eV per atom) that breaks one rule of the contract:

    - beyond_cutoff: a pair term exp(-r) with no cutoff (edges beyond the cutoff contribute);
    - global: every atom gets the sum of a smooth pair term over all edges (not local);
    - edge_order: a pair term weighted by the parity of the edge's index in the list;
    - atom_index: a term proportional to the atom's index;
    - anisotropic: a pair term in x_ij^2 (not rotation-invariant);
    - detached: a pair term of the detached distances (forces miss its gradient);
    - ghost_count: a term in the number of ghost nodes;
    - inplace: forward() zeroes its species input after use.
    """

    def __init__(self, inner: torch.nn.Module, kind: str):
        super().__init__()
        self.inner = inner
        self.kind = kind
        self.cutoff = inner.cutoff
        self.type_names = list(inner.type_names)
        self.architecture = "broken_" + kind

    def forward(
        self, species: torch.Tensor, edge_index: torch.Tensor, edge_vectors: torch.Tensor, n_local: int
    ) -> torch.Tensor:
        e = self.inner(species, edge_index, edge_vectors, n_local)
        r = torch.linalg.vector_norm(edge_vectors, dim=1)
        smooth = torch.clamp(1.0 - r / self.cutoff, min=0.0) ** 3  # C2, exactly 0 beyond the cutoff
        if self.kind == "global":
            return e + 1e-3 * smooth.sum() / n_local
        if self.kind == "atom_index":
            return e + 1e-3 * torch.arange(n_local, dtype=e.dtype)
        if self.kind == "ghost_count":
            return e + 1e-3 * float(species.shape[0] - n_local)
        if self.kind == "inplace":
            species.zero_()
            return e
        term = smooth
        if self.kind == "beyond_cutoff":
            term = torch.exp(-r)
        elif self.kind == "edge_order":
            term = smooth * (torch.arange(r.shape[0]) % 2).to(r.dtype)
        elif self.kind == "anisotropic":
            term = smooth * edge_vectors[:, 0] ** 2
        elif self.kind == "detached":
            term = torch.clamp(1.0 - r.detach() / self.cutoff, min=0.0) ** 3
        return e + 1e-3 * torch.zeros(n_local, dtype=e.dtype).index_add(0, edge_index[0], term)


def cuni(architecture: str = "deeppot_se") -> torch.nn.Module:
    return small_model(architecture, type_names=("Cu", "Ni"))


def run_check(capsys, *args) -> tuple[int, str, str]:
    rc = mdval_main(["check", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def differences(detail: str) -> tuple[float, float, float, float]:
    """(max |ΔE_i|, max |ΔF|, energy tolerance, force tolerance) of an invariance check's detail."""
    return tuple(float(x) for x in DIFFERENCES.search(detail).groups())


def assert_failed(report, failed: set[str]) -> None:
    """Exactly the checks ``failed`` failed, and none was skipped."""
    assert {r.name for r in report.results if r.status == "fail"} == failed, report.format()
    assert all(r.status != "skip" for r in report.results), report.format()


# ------------------------------------------------------------------------- models that keep it
@pytest.mark.parametrize("path", ZOO, ids=[p.stem for p in ZOO])
def test_every_zoo_model_passes_every_check(capsys, path):
    rc, out, err = run_check(capsys, path)
    lines = out.splitlines()
    assert rc == 0 and err == "", out + err
    assert [line.split()[:2] for line in lines[:-1]] == [["PASS", name] for name in CHECK_NAMES]
    assert lines[-1] == f"{path}: all {len(CHECK_NAMES)} checks passed"
    forces = re.search(r"max \|F_fd - F\| (\S+) eV/Å \(tolerance (\S+) eV/Å\)", out).groups()
    assert float(forces[0]) < 1e-7 and float(forces[1]) >= 1e-6  # FD error O(h^2): about 1e-8


@pytest.mark.parametrize(
    "architecture,dtype",
    [("deeppot_se", "float64"), ("deeppot_se_centered", "float32"), ("behler_parrinello", "float64")],
)
def test_other_architectures_dtypes_and_two_species_pass(tmp_path, architecture, dtype):
    path = export(cuni(architecture), tmp_path / "m.pt", compute_dtype=dtype)
    report = validate_model(path)
    assert report.passed, report.format()
    # the fcc Cu, fcc Ni and mixed cells
    assert report["ghosts"].detail.startswith("3 periodic cell(s) with their images as ghost nodes")
    assert report["metadata"].detail.startswith(
        f"11 required keys of the right types: cutoff 4 Å, type_names [Cu, Ni], {dtype}"
    )
    e, f, tol_e, tol_f = differences(report["rotation"].detail)
    rtol = 1e-9 if dtype == "float64" else 1e-4  # of the largest |E_i| and |F|, at least 1 eV and 1 eV/Å
    assert rtol <= tol_e < 10 * rtol and rtol <= tol_f < 10 * rtol and e <= tol_e and f <= tol_f


def test_a_module_is_checked_as_export_would_write_it_and_reproducibly():
    model = cuni()
    first, second = validate_model(model), validate_model(model)
    assert first.passed and first.model == "<DeepPotSE>", first.format()
    assert first.format() == second.format()  # the same seed, the same structures and numbers
    assert validate_model(model, seed=1).format() != first.format()


# ------------------------------------------------------------------------- models that break it
@pytest.mark.parametrize(
    "kind,failed,check",
    [
        ("beyond_cutoff", {"cutoff", "locality"}, "cutoff"),
        ("global", {"locality"}, "locality"),
        ("atom_index", {"permutation"}, "permutation"),
        ("anisotropic", {"rotation"}, "rotation"),
        ("ghost_count", {"ghosts"}, "ghosts"),
    ],
)
def test_a_model_that_breaks_a_symmetry_fails_that_check(kind, failed, check):
    report = validate_model(ContractBreaker(cuni(), kind))
    assert_failed(report, failed)
    e, f, tol_e, tol_f = differences(report[check].detail)
    assert max(e, f) > 1e-6 and 1e-9 <= min(tol_e, tol_f) < 1e-8  # the term is about 1e-4 eV


def test_edges_beyond_the_cutoff_must_contribute_exactly_zero():
    detail = validate_model(ContractBreaker(cuni(), "beyond_cutoff"))["cutoff"].detail
    n_edges, grad = re.match(r"(\d+) edges from 4 to 6 Å added .* on those edges (\S+) eV/Å$", detail).groups()
    assert int(n_edges) > 1000 and float(grad) > 1e-7, detail  # d(1e-3 exp(-r))/dr at 4-6 Å


def test_a_model_that_depends_on_the_order_of_the_edges_fails_translation():
    report = validate_model(ContractBreaker(cuni(), "edge_order"))
    assert {"translation", "permutation"} <= set(report.failed), report.format()
    for name in ("metadata", "abi", "species", "output", "inputs", "finite", "forces", "ghosts"):
        assert report[name].status == "pass", report.format()
    assert report["translation"].detail.startswith("3 periodic cell(s) translated by a random vector and wrapped: ")
    assert differences(report["translation"].detail)[0] > 1e-6


def test_forces_that_are_not_the_gradient_fail_the_finite_difference_check():
    report = validate_model(ContractBreaker(cuni(), "detached"))
    assert_failed(report, {"forces"})
    worst, tol = re.search(
        r"^central differences \(h = 3e-05 Å\) of 45 force components on the cluster "
        r"and a cell: max \|F_fd - F\| (\S+) eV/Å \(tolerance (\S+) eV/Å\)$",
        report["forces"].detail,
    ).groups()
    assert float(worst) > 1e-5 and float(tol) == 1e-6


def test_a_model_that_writes_into_its_inputs_fails_inputs():
    report = validate_model(ContractBreaker(cuni(), "inplace"))
    assert_failed(report, {"inputs"})
    assert report["inputs"].detail == (
        "forward() changed its input species in place on the cluster: callers reuse the inputs for "
        "forces and virials; compute on a copy"
    )


@pytest.mark.parametrize(
    "mode,failed,detail",
    [
        ("column", {"species", "output"}, abi.energies_contract_error((32, 1), "float64", 32)),
        ("float32", {"species", "output"}, abi.energies_contract_error((32,), "float32", 32)),
        ("int64", {"species", "output"}, abi.energies_contract_error((32,), "int64", 32)),
        ("all_nodes", {"output"}, None),  # right without ghost nodes: caught on the first cell with them
        ("raises", {"output"}, None),
        ("tuple", {"species", "output"}, abi.energies_contract_error(None, "tuple", 32)),
    ],
)
def test_an_output_that_breaks_the_contract_fails_output_and_stops_there(tmp_path, mode, failed, detail):
    model = TupleOutput(cuni()) if mode == "tuple" else BrokenOutput(cuni(), mode)
    report = validate_model(export(model, tmp_path / f"{mode}.pt"))
    assert report.failed == sorted(failed, key=CHECK_NAMES.index), report.format()
    later = CHECK_NAMES[CHECK_NAMES.index("output") + 1 :]
    assert [(report[n].status, report[n].detail) for n in later] == [
        ("skip", "needs a forward() that passes the output check")
    ] * len(later)
    if mode == "all_nodes":  # energies of every node of the first cell with ghost nodes
        n_nodes = int(re.match(r"model returned energies of shape \[(\d+)\]", report["output"].detail)[1])
        assert n_nodes > 32
        detail = abi.energies_contract_error((n_nodes,), "float64", 32)
    if mode == "raises":
        assert re.fullmatch(
            r"model evaluation failed on 32 atoms and \d+ edges: ValueError: this toy "
            r"model takes one atom at a time",
            report["output"].detail,
        )
    else:
        assert report["output"].detail == detail and detail.endswith(FIX)


def test_nan_or_inf_fails_finite_naming_the_structure_and_the_atoms(tmp_path):
    cases = (("nan", "fcc Cu cell"), ("nan_force", "fcc Cu cell"), ("nan_on_ni", "fcc Ni cell"))
    for mode, structure in cases:
        report = validate_model(export(BrokenOutput(cuni(), mode), tmp_path / f"{mode}.pt"))
        assert report.failed == ["finite"], report.format()
        assert report["finite"].detail == (
            f"the model returned NaN or inf energies or forces on the {structure} for 32 of 32 atoms "
            "(atom 0, 1, 2, 3, 4, ...): the model file is broken (export it again) or the structure is "
            "outside what the model can handle (atoms too close together, or far from its training data)"
        )
        assert report["forces"].status == "skip"


# ------------------------------------------------------------------------- metadata
def write_model(path: Path, model: torch.nn.Module, meta: dict | None) -> Path:
    """A TorchScript file with ``meta`` as its metadata (none if None), as export never writes it."""
    extra = {} if meta is None else {abi.METADATA_FILENAME: json.dumps(meta)}
    torch.jit.save(torch.jit.script(model), str(path), _extra_files=extra)
    return path


def good_metadata(model) -> dict:
    from mdval.deploy.model_file import model_metadata

    return model_metadata(model)


def test_a_wrong_abi_fails_abi_only(tmp_path):
    model = cuni()
    report = validate_model(write_model(tmp_path / "m.pt", model, {**good_metadata(model), "abi": 2}))
    assert report.failed == ["abi"], report.format()
    assert report["abi"].detail == (
        "abi 2, but this mdval and pair_style taafs serve abi 1: use the mdval "
        "version that wrote the file or re-export the model"
    )


def test_missing_or_mistyped_metadata_fails_metadata_naming_the_keys(tmp_path):
    model = cuni()
    meta = good_metadata(model)
    del meta["created"]
    report = validate_model(write_model(tmp_path / "missing.pt", model, meta))
    assert report.failed == ["metadata"], report.format()
    assert report["metadata"].detail == (
        "metadata is missing required key(s) created "
        f"(ABI v1 needs {', '.join(abi.REQUIRED_METADATA_KEYS)}); re-export the model"
    )
    meta = {**good_metadata(model), "optimizer": 3, "metrics": [], "abi": True}
    report = validate_model(write_model(tmp_path / "types.pt", model, meta))
    assert report.failed == ["metadata", "abi"], report.format()
    assert report["metadata"].detail == (
        "metadata of the wrong type: abi is bool, expected int; optimizer is int, expected str; "
        "metrics is list, expected dict; re-export the model"
    )


def test_metadata_without_a_usable_cutoff_skips_the_checks_that_run_the_model(tmp_path):
    model = cuni()
    report = validate_model(write_model(tmp_path / "m.pt", model, {**good_metadata(model), "cutoff": -1}))
    assert report["metadata"].detail == "metadata cutoff must be a positive number in Å, got -1"
    assert [(r.name, r.status) for r in report.results] == [("metadata", "fail"), ("abi", "pass")] + [
        (name, "skip") for name in CHECK_NAMES[2:]
    ]
    assert report["forces"].detail == "needs a positive cutoff and a list of type_names in the metadata"
    path = write_model(tmp_path / "none.pt", model, None)
    report = validate_model(path)
    assert report.failed == ["metadata", "abi"]
    assert report["metadata"].detail == (
        f"{path} has no {abi.METADATA_FILENAME} metadata: it was not written by mdval.deploy.export; "
        "re-export it with `mdval export CHECKPOINT`"
    )


def test_type_names_that_do_not_match_the_network_fail_species(tmp_path):
    report = validate_model(export(cuni(), tmp_path / "m.pt", {"type_names": ["Ni", "Cu"]}))
    assert report.failed == ["species"], report.format()
    assert report["species"].detail == (
        "metadata type_names ['Ni', 'Cu'] do not match the type_names the network was built with, "
        "['Cu', 'Ni']; the metadata was edited or written wrongly: re-export the model with "
        "`mdval export CHECKPOINT`"
    )


def test_every_required_metadata_key_has_a_type():
    assert list(METADATA_TYPES) == list(abi.REQUIRED_METADATA_KEYS)


# ------------------------------------------------------------------------- the command
def test_a_file_that_cannot_be_read_is_one_error_line_and_exit_2(capsys, tmp_path):
    text, checkpoint = tmp_path / "notes.pt", tmp_path / "checkpoint.pt"
    text.write_text("not a model\n")
    torch.save({"model": {}}, checkpoint)  # a zip archive, but no TorchScript
    for path, message in (
        (tmp_path / "missing.pt", "model file not found: {}; check the path (exported models end in .pt)"),
        (
            text,
            "{} is not a TorchScript model file (not a zip archive): the file is corrupt or of another "
            "kind; re-export it with `mdval export CHECKPOINT`",
        ),
        (
            checkpoint,
            "{} has no mdval.json metadata: it was not written by mdval.deploy.export; re-export it "
            "with `mdval export CHECKPOINT`",
        ),
    ):
        assert run_check(capsys, path) == (2, "", f"mdval: error: {message.format(path)}\n")
        with pytest.raises(ModelFileError):
            validate_model(path)


def test_json_report_and_exit_1_when_a_check_fails(capsys, tmp_path):
    path = export(ContractBreaker(cuni(), "ghost_count"), tmp_path / "m.pt")
    rc, out, err = run_check(capsys, "--json", path)
    report = json.loads(out)
    assert rc == 1 and err == "" and report["model"] == str(path) and report["passed"] is False
    assert [(c["name"], c["status"]) for c in report["checks"]] == [
        (name, "fail" if name == "ghosts" else "pass") for name in CHECK_NAMES
    ]
    assert "eV/Å" in out  # readable, not \u00c5
    rc, out, _ = run_check(capsys, path)
    assert rc == 1 and out.splitlines()[-1] == f"{path}: 1 of {len(CHECK_NAMES)} checks failed: ghosts"
    ghosts_line = out.splitlines()[-2]
    assert ghosts_line.startswith("FAIL  ghosts       3 periodic cell(s) with their images as ghost nodes")


def test_the_locality_structure_has_edges_to_the_second_cluster_beyond_the_cutoff():
    """The premise of the locality and cutoff checks: every atom of the second cluster is beyond the
    cutoff of every atom of the first, and the list with a skin holds edges between them."""
    rng = np.random.default_rng(0)
    cutoff = 5.0
    pair = beyond(cluster(["Cu"], rng, "a"), cluster(["Cu"], rng, "b"), cutoff + GAP_A)
    gaps = np.linalg.norm(pair.positions[:13, None] - pair.positions[None, 13:], axis=2)
    assert gaps.min() == pytest.approx(cutoff + GAP_A, abs=1e-9)
    graph = Graph.of(pair, cutoff + SKIN_A)
    between = (graph.centers < 13) & (graph.neighbors >= 13)
    lengths = np.linalg.norm(graph.vectors(pair.positions)[between], axis=1)
    assert between.sum() > 0 and lengths.min() >= cutoff + GAP_A - 1e-9
