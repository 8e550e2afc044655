"""One activation contract: the structured ``activations`` metadata, the introspection API of
mdval.nn (eager model and loaded model file agree), curves from the file's own modules, the
training-log form, and old zoo files written before any of it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from mdval.deploy.model_file import export, load, read_metadata
from mdval.nn import (
    activation_layers,
    activations_from_metadata,
    build_model,
    canonical_spec,
    coefficient_record,
    logged_coefficients,
    make_activation,
    parse_activation_spec,
    resolve_activations,
    spec_label,
)
from mdval.report import compare, training_figures

from conftest import FLOAT64_EXACT, FLOAT64_ROUNDING, SMALL_DEEPPOT, small_model

#: models/cu/cheb1-adam.pt and its log as the zoo held them before ``activations`` (commit a5b61ea)
LEGACY = Path(__file__).resolve().parent / "data" / "cheb1-adam-before-activations"
Z = np.linspace(-4.0, 4.0, 81)

#: spec as written -> (family, options with defaults, trainable, label)
FAMILIES = {
    "tanh": ("tanh", {}, False, "tanh"),
    "irelu": ("irelu", {}, False, "irelu"),
    "laaf": ("laaf", {"base": "tanh", "scope": "layer", "n": 10.0}, True, "LAAF tanh n10/layer"),
    "laaf:base=silu,scope=neuron,n=5": (
        "laaf",
        {"base": "silu", "scope": "neuron", "n": 5.0},
        True,
        "LAAF silu n5/neuron",
    ),
    "taafs:basis=bspline": ("taafs", {"basis": "bspline", "grid": 5, "scope": "layer"}, True, "TAAFS bspline g5/layer"),
    "taafs:basis=bspline,grid=4,scope=neuron": (
        "taafs",
        {"basis": "bspline", "grid": 4, "scope": "neuron"},
        True,
        "TAAFS bspline g4/neuron",
    ),
    "taafs:basis=chebyshev1": (
        "taafs",
        {"basis": "chebyshev1", "degree": 5, "scope": "layer"},
        True,
        "TAAFS cheb1 d5/layer",
    ),
    "taafs:basis=chebyshev1,degree=3,scope=neuron": (
        "taafs",
        {"basis": "chebyshev1", "degree": 3, "scope": "neuron"},
        True,
        "TAAFS cheb1 d3/neuron",
    ),
    "taafs:basis=fourier,scope=layer": (
        "taafs",
        {"basis": "fourier", "degree": 3, "scope": "layer"},
        True,
        "TAAFS fourier d3/layer",
    ),
    "taafs:basis=fourier,degree=2,scope=neuron": (
        "taafs",
        {"basis": "fourier", "degree": 2, "scope": "neuron"},
        True,
        "TAAFS fourier d2/neuron",
    ),
}
#: (name, network, depth, width) of the activation layers of SMALL_DEEPPOT for one element
SMALL_LAYERS = [
    ("embedding_nets.0.layers.0.activation", "embedding", 0, SMALL_DEEPPOT["embedding"][0]),
    ("embedding_nets.0.layers.1.activation", "embedding", 1, SMALL_DEEPPOT["embedding"][1]),
    ("fitting.nets.0.layers.0.activation", "fitting", 0, SMALL_DEEPPOT["fitting"][0]),
    ("fitting.nets.0.layers.1.activation", "fitting", 1, SMALL_DEEPPOT["fitting"][1]),
]


def exported(tmp_path, model, name="model.pt"):
    return export(model, tmp_path / name, {"optimizer": "none"})


@pytest.mark.parametrize("spec", list(FAMILIES))
def test_metadata_gives_the_structured_form_of_every_family(tmp_path, spec):
    family, options, trainable, label = FAMILIES[spec]
    path = exported(tmp_path, small_model("deeppot_se", ["Cu"], spec))
    meta = read_metadata(path)
    canonical = parse_activation_spec(spec).canonical
    structured = {"spec": canonical, "family": family, "options": options, "trainable": trainable}
    assert meta["activations"]["networks"] == {"embedding": structured, "fitting": structured}
    assert meta["activations"]["layers"] == [
        {
            "name": name,
            "network": network,
            "species": "Cu",
            "depth": depth,
            "spec": canonical,
            "width": width,
            "trainable": trainable,
        }
        for name, network, depth, width in SMALL_LAYERS
    ]
    assert meta["activation"] == canonical  # the ABI v1 summary, for older readers
    assert activations_from_metadata(meta) == meta["activations"]
    assert spec_label(structured) == label


def test_mixed_networks_and_species_in_metadata(tmp_path):
    """DeepPot-SE with its own spec per network; Behler-Parrinello (fitting nets only), two elements."""
    model = build_model({**SMALL_DEEPPOT, "type_names": ["Cu", "O"], "fitting_activation": "laaf:scope=neuron"})
    meta = read_metadata(exported(tmp_path, model))
    assert meta["activation"] == {"embedding": "tanh", "fitting": "laaf:base=tanh,scope=neuron,n=10"}
    assert [meta["activations"]["networks"][n]["family"] for n in ("embedding", "fitting")] == ["tanh", "laaf"]
    assert compare.short_activation(meta["activations"]["networks"]) == "mixed"

    behler = small_model("behler_parrinello", ["Cu", "O"], "taafs:basis=legendre,scope=network")
    meta = read_metadata(exported(tmp_path, behler, "bp.pt"))
    assert list(meta["activations"]["networks"]) == ["fitting"]
    assert [(layer["name"], layer["species"], layer["depth"]) for layer in meta["activations"]["layers"]] == [
        (f"fitting.nets.{t}.layers.{k}.activation", species, k)
        for t, species in enumerate(["Cu", "O"])
        for k in range(2)
    ]
    assert compare.short_activation(meta["activations"]["networks"]) == "TAAFS legendre d5/network"


@pytest.mark.parametrize(
    "spec",
    ["taafs:basis=chebyshev1,degree=3,scope=neuron", "laaf:scope=neuron", "taafs:basis=fourier,scope=global", "irelu"],
)
def test_eager_model_and_loaded_file_give_the_same_layers(tmp_path, spec):
    model = small_model("deeppot_se", ["Cu", "O"], spec, seed=5)
    eager = activation_layers(model)
    loaded = activation_layers(load(exported(tmp_path, model)))
    place = [
        (layer.name, layer.network, layer.species, layer.depth, layer.spec, layer.width, layer.trainable)
        for layer in eager
    ]
    assert place == [
        (layer.name, layer.network, layer.species, layer.depth, layer.spec, layer.width, layer.trainable)
        for layer in loaded
    ]
    assert [layer.species for layer in eager] == ["Cu", "Cu", "O", "O"] * 2
    for e, f in zip(eager, loaded):
        assert (
            set(e.coefficients)
            == set(f.coefficients)
            == ({"slope"} if "laaf" in spec else set() if spec == "irelu" else {"coeffs"})
        )
        for name in e.coefficients:
            torch.testing.assert_close(f.coefficients[name], e.coefficients[name], rtol=FLOAT64_ROUNDING, atol=0)


@pytest.mark.parametrize(
    "spec",
    [
        "taafs:basis=bspline,grid=4,scope=neuron",
        "taafs:basis=chebyshev2,scope=layer",
        "laaf:base=silu,scope=neuron,n=5",
        "tanh",
    ],
)
def test_the_curve_of_a_loaded_file_is_the_eager_modules_output(tmp_path, spec):
    model = small_model("deeppot_se", ["Cu"], spec, seed=6)
    loaded = activation_layers(load(exported(tmp_path, model)))
    for eager, layer in zip(activation_layers(model), loaded):
        with torch.no_grad():
            y = eager.module(torch.as_tensor(Z)[:, None].expand(-1, eager.width)).numpy()
        curve = layer.curve(Z)
        expected = y if layer.per_neuron else y[:, 0]
        assert curve.shape == expected.shape == ((Z.size, layer.width) if "neuron" in spec else (Z.size,))
        np.testing.assert_allclose(curve, expected, rtol=FLOAT64_EXACT, atol=FLOAT64_EXACT)


def test_laaf_curve_is_the_base_at_the_learned_slope(tmp_path):
    """LAAF: y = tanh(n a z) per neuron, with a read back from the file."""
    model = small_model("deeppot_se", ["Cu"], "laaf:scope=neuron,n=10", seed=7)
    for layer in activation_layers(load(exported(tmp_path, model))):
        a = layer.coefficients["slope"].numpy()
        np.testing.assert_allclose(layer.curve(Z), np.tanh(10.0 * a[None, :] * Z[:, None]), rtol=1e-14, atol=1e-15)


def test_a_fresh_taafs_file_is_exactly_tanh(tmp_path):
    model = build_model({**SMALL_DEEPPOT, "type_names": ["Cu"], "activation": "taafs:basis=legendre,scope=layer"})
    for layer in activation_layers(load(exported(tmp_path, model))):
        np.testing.assert_allclose(layer.curve(Z), np.tanh(Z), rtol=0, atol=1e-14)


def test_curve_with_logged_coefficients(tmp_path):
    """The training log's form round-trips, and a curve at logged coefficients is that of a
    module holding them; coefficients of another layer kind are refused."""
    model = small_model("deeppot_se", ["Cu"], "taafs:basis=chebyshev1,degree=3,scope=neuron", seed=8)
    start = json.loads(json.dumps(coefficient_record(model)))  # as written to log.jsonl
    layers = activation_layers(load(exported(tmp_path, model)))
    assert list(start) == [layer.name for layer in layers]
    for layer in layers:
        values = logged_coefficients(start, layer)
        torch.testing.assert_close(values["coeffs"], layer.coefficients["coeffs"], rtol=FLOAT64_ROUNDING, atol=0)
        np.testing.assert_allclose(layer.curve(Z, values), layer.curve(Z), rtol=FLOAT64_EXACT, atol=FLOAT64_EXACT)
        bent = {"coeffs": values["coeffs"] + 0.1}
        twin = make_activation(layer.spec.canonical, layer.width)
        with torch.no_grad():
            twin.coeffs.copy_(bent["coeffs"])
            expected = twin(torch.as_tensor(Z)[:, None].expand(-1, layer.width)).numpy()
        np.testing.assert_allclose(layer.curve(Z, bent), expected, rtol=FLOAT64_EXACT, atol=FLOAT64_EXACT)
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"activation layer {layers[0].name}: coefficients ['slope'] do not match its parameters ['coeffs']"
        ),
    ):
        layers[0].curve(Z, {"slope": [0.1]})


def test_an_old_zoo_file_and_its_log_are_still_read(tmp_path):
    """A zoo file exported before ``activations`` and the activation modules' attributes."""
    path = LEGACY.with_suffix(".pt")
    meta = read_metadata(path)
    assert "activations" not in meta
    cheb = {
        "spec": "taafs:basis=chebyshev1,degree=5,scope=layer",
        "family": "taafs",
        "options": {"basis": "chebyshev1", "degree": 5, "scope": "layer"},
        "trainable": True,
    }
    assert activations_from_metadata(meta) == {"networks": {"embedding": cheb, "fitting": cheb}, "layers": []}
    assert compare.short_activation(activations_from_metadata(meta)["networks"]) == "TAAFS cheb1 d5/layer"
    layers = activation_layers(load(path))
    config = meta["config"]
    assert [(layer.name, layer.network, layer.species, layer.depth, layer.width) for layer in layers] == [
        (f"{prefix}.0.layers.{k}.activation", network, "Cu", k, width)
        for prefix, network in (("embedding_nets", "embedding"), ("fitting.nets", "fitting"))
        for k, width in enumerate(config[network])
    ]
    first = json.loads(LEGACY.with_suffix(".log.jsonl").read_text().splitlines()[0])["activation_coefficients"]
    for layer in layers:
        assert layer.spec.canonical == cheb["spec"] and layer.coefficients["coeffs"].shape == (6,)
        values = logged_coefficients(first, layer)  # the old log form: "<layer>.coeffs": values
        assert values["coeffs"].tolist() == first[f"{layer.name}.coeffs"]
        twin = make_activation(cheb["spec"])
        with torch.no_grad():
            twin.coeffs.copy_(layer.coefficients["coeffs"])
            expected = twin(torch.as_tensor(Z)[:, None]).numpy()[:, 0]
        np.testing.assert_allclose(layer.curve(Z), expected, rtol=FLOAT64_EXACT, atol=FLOAT64_EXACT)
    log = training_figures.training_log(str(path))
    figures = training_figures.activation_figures(str(path), tmp_path, log)
    assert [Path(f).name for f, _ in figures] == [
        f"activation_{path.stem}.png",
        f"activation_evolution_{path.stem}.png",
    ]


def test_activation_figures_read_the_new_log_form(tmp_path):
    model = small_model("deeppot_se", ["Cu"], "laaf:scope=layer", seed=9)
    path = exported(tmp_path, model, "laaf.pt")
    lines = [{"epoch": 1, "activation_coefficients": coefficient_record(model)}]
    with torch.no_grad():
        for layer in activation_layers(model):
            layer.module.slope.mul_(1.5)
    lines.append({"epoch": 2, "activation_coefficients": coefficient_record(model)})
    log = tmp_path / "laaf.log.jsonl"
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    figures = training_figures.activation_figures(str(path), tmp_path / "figures", log)
    assert [Path(f).name for f, _ in figures] == ["activation_laaf.png", "activation_evolution_laaf.png"]
    assert all(Path(f).stat().st_size > 0 for f, _ in figures)


def test_canonicalisation_refuses_a_bad_spec_in_one_line():
    assert canonical_spec("TAAFS:basis=bspline") == "taafs:basis=bspline,grid=5,scope=layer"
    with pytest.raises(
        ValueError,
        match=re.escape(
            "activation spec 'taafs:basis=spline': unknown TAAFS basis 'spline'; valid: bspline, fourier, rbf, "
            "legendre, hermite, chebyshev1, chebyshev2, bessel, jacobi"
        ),
    ):
        canonical_spec("taafs:basis=spline")
    assert resolve_activations({"activation": "laaf", "fitting_activation": "silu"}, ("embedding", "fitting")) == {
        "activation": "laaf:base=tanh,scope=layer,n=10",
        "embedding_activation": "laaf:base=tanh,scope=layer,n=10",
        "fitting_activation": "silu",
    }
    with pytest.raises(
        ValueError,
        match=re.escape(
            "unknown activation 'swish' in spec 'swish'; valid: tanh, silu, relu, softplus, gelu, sigmoid, irelu, "
            "laaf, taafs"
        ),
    ):
        resolve_activations({"activation": "tanh", "embedding_activation": "swish"}, ("embedding", "fitting"))
