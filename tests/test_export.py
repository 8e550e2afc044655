"""Model files: export/load round trip and clear refusals of bad files (ABI v1)."""

from __future__ import annotations

import json
import zipfile

import pytest
import torch

from mdval.abi import ABI_VERSION, METADATA_FILENAME, REQUIRED_METADATA_KEYS
from mdval.deploy import ModelFileError, export, load, read_metadata
from mdval.nn.forces import energy_forces_virial

from conftest import FLOAT32_EXACT, FLOAT64_EXACT, ase_edges, edge_vectors_from, fcc_cu, small_model, species_of


def inputs(model, seed=0):
    atoms = fcc_cu((2, 1, 1), rattle=0.1, seed=seed)
    ei, s, cell = ase_edges(atoms, model.cutoff)
    vec = edge_vectors_from(torch.tensor(atoms.positions), ei, s, cell)
    return species_of(atoms, ["Cu"]), ei, vec, len(atoms)


def rewrite_metadata(src, dst, change):
    """Copy a model file, editing its mdval.json with ``change(meta)`` (byte-for-byte otherwise)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("/extra/" + METADATA_FILENAME):
                meta = json.loads(data)
                change(meta)
                data = json.dumps(meta).encode()
            zout.writestr(item, data)


@pytest.mark.parametrize("architecture", ["deeppot_se", "behler_parrinello"])
@pytest.mark.parametrize("activation", ["tanh", "taafs:basis=bspline,scope=layer", "irelu", "laaf:scope=neuron"])
def test_round_trip_equals_eager(tmp_path, architecture, activation):
    model = small_model(architecture, ["Cu"], activation, seed=2)
    path = export(model, tmp_path / "model.pt", {"optimizer": "adam", "metrics": {"force_rmse_eV_A": 0.02}})
    loaded = load(path)
    args = inputs(model)
    eager = energy_forces_virial(model, *args)
    served = energy_forces_virial(loaded, *args)
    for key in ("atom_energy", "forces", "virial"):
        assert (served[key] - eager[key]).abs().max().item() <= FLOAT64_EXACT, key
    meta = loaded.metadata
    assert set(REQUIRED_METADATA_KEYS) <= set(meta)
    assert meta["abi"] == ABI_VERSION and meta["type_names"] == ["Cu"]
    assert meta["cutoff"] == model.cutoff and meta["architecture"] == architecture
    assert meta["optimizer"] == "adam" and meta["metrics"] == {"force_rmse_eV_A": 0.02}
    assert meta["activation"] == model.activation_specs()["fitting"]
    assert meta["config"] == model.config()


def test_float32_export_runs_behind_float64_interface(tmp_path):
    model = small_model("deeppot_se", ["Cu"], "taafs:basis=chebyshev1,scope=layer")
    loaded = load(export(model, tmp_path / "m32.pt", compute_dtype="float32"))
    assert loaded.metadata["compute_dtype"] == "float32"
    args = inputs(model)
    e32 = loaded(*args)
    assert e32.dtype == torch.float64
    assert (e32 - model(*args)).abs().max().item() <= FLOAT32_EXACT * model(*args).abs().max().item()


def test_metadata_is_read_without_loading_the_model(tmp_path):
    """read_metadata never deserialises TorchScript: a file whose code is gone still has metadata."""
    path = export(small_model(), tmp_path / "m.pt")
    gutted = tmp_path / "gutted.pt"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(gutted, "w") as zout:
        for item in zin.infolist():
            if item.filename.endswith("/extra/" + METADATA_FILENAME):
                zout.writestr(item, zin.read(item.filename))
    assert read_metadata(gutted)["type_names"] == ["Cu"]
    with pytest.raises(
        ModelFileError,
        match=r"gutted\.pt could not be loaded by TorchScript \(.*\); the file "
        r"is corrupt or from an incompatible torch",
    ):
        load(gutted)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match=r"model file not found: .*nothing\.pt; check the path"):
        load(tmp_path / "nothing.pt")


def test_corrupt_file(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ModelFileError, match=r"bad\.pt is not a TorchScript model file \(not a zip archive\)"):
        load(bad)


def test_wrong_abi(tmp_path):
    path = export(small_model(), tmp_path / "m.pt")
    future = tmp_path / "future.pt"
    rewrite_metadata(path, future, lambda meta: meta.update(abi=2))
    with pytest.raises(ModelFileError, match=r"future\.pt has abi=2, but this mdval serves abi 1"):
        load(future)


def test_missing_metadata_keys(tmp_path):
    path = export(small_model(), tmp_path / "m.pt")
    partial = tmp_path / "partial.pt"
    rewrite_metadata(path, partial, lambda meta: [meta.pop(k) for k in ("cutoff", "type_names")])
    with pytest.raises(
        ModelFileError,
        match=r"partial\.pt: metadata is missing required key\(s\) cutoff, "
        r"type_names \(ABI v1 needs abi, cutoff, type_names",
    ):
        load(partial)


def test_no_metadata_at_all(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(small_model()), str(plain))
    with pytest.raises(
        ModelFileError,
        match=r"plain\.pt has no mdval\.json metadata: it was not written by "
        r"mdval\.deploy\.export",
    ):
        load(plain)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m.update(cutoff=-1.0), r"metadata cutoff must be a positive number in Å, got -1\.0"),
        (lambda m: m.update(type_names=[]), r"metadata type_names must be a non-empty list of element symbols"),
        (
            lambda m: m.update(compute_dtype="bfloat16"),
            r"compute_dtype must be one of float64, float32, "
            r"got 'bfloat16'",
        ),
    ],
)
def test_bad_metadata_values(tmp_path, change, message):
    path = export(small_model(), tmp_path / "m.pt")
    bad = tmp_path / "bad.pt"
    rewrite_metadata(path, bad, change)
    with pytest.raises(ModelFileError, match=message):
        read_metadata(bad)


def test_export_is_atomic_and_leaves_no_temp_files(tmp_path):
    export(small_model(), tmp_path / "m.pt")
    export(small_model(seed=3), tmp_path / "m.pt")  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]
