"""The activation layers of a model, eager or loaded from a model file: one contract for all.

:func:`activation_layers` lists every activation module of a model (an ``nn.Module``, a scripted
one, or a loaded :class:`mdval.deploy.model_file.ModelFile`) as an :class:`ActivationLayer`: its
qualified module name, where it sits (network, species, depth), its spec, its width and its
current coefficients. :meth:`ActivationLayer.curve` evaluates y(z) with the module itself (the
scripted submodule of a loaded file), or with coefficients from a training log.

The same API writes and reads the rest of the contract:

- ``activations`` in the model metadata (:func:`activations_metadata`, documented in
  mdval/abi.py), and :func:`activations_from_metadata`, which also reads files written before it,
  whose only key was ``activation``;
- ``activation_coefficients`` in the trainer's ``log.jsonl`` (:func:`coefficient_record`), and
  :func:`logged_coefficients`, which also reads logs keyed ``<layer name>.<parameter>``.

Activation modules carry their ``spec``, ``width``, ``network``, ``species`` and ``depth`` as
attributes (:class:`mdval.nn.activations.ActivationModule`). Files written before that carry only
``spec``: their place is read from the module name (``embedding_nets.<t>.layers.<k>.activation``,
``fitting.nets.<t>.layers.<k>.activation``) and their width from the linear layer that feeds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mdval.abi import ACTIVATIONS_METADATA_KEY
from mdval.nn.activations import ActivationSpec, make_activation, parse_activation_spec, spec_label


@dataclass(frozen=True)
class ActivationLayer:
    """One activation module of a model (see :func:`activation_layers`)."""

    name: str  #: qualified module name in the model, e.g. "fitting.nets.0.layers.1.activation"
    network: str  #: "embedding" or "fitting" ("" for a module outside a model)
    species: str  #: element symbol of its sub-network ("" for a module outside a model)
    depth: int  #: 0 for the first hidden layer of its sub-network
    spec: ActivationSpec
    width: int  #: neurons of its layer
    #: parameter name -> current values (detached copies), e.g. {"coeffs": tensor}; empty when fixed
    coefficients: dict[str, torch.Tensor]
    module: nn.Module = field(repr=False, compare=False)

    @property
    def trainable(self) -> bool:
        return self.spec.trainable

    @property
    def per_neuron(self) -> bool:
        """True when each neuron has its own coefficients (scope ``neuron``)."""
        return self.spec.options.get("scope") == "neuron"

    @property
    def title(self) -> str:
        """ "embedding net Cu layer 1": for figure panels."""
        return f"{self.network} net {self.species} layer {self.depth + 1}"

    @property
    def label(self) -> str:
        """The short label of its spec (:func:`mdval.nn.activations.spec_label`)."""
        return spec_label(self.spec.as_dict())

    def as_metadata(self) -> dict:
        """The entry of ``activations["layers"]`` in the model metadata."""
        return {
            "name": self.name,
            "network": self.network,
            "species": self.species,
            "depth": self.depth,
            "spec": self.spec.canonical,
            "width": self.width,
            "trainable": self.trainable,
        }

    def curve(self, z, coefficients: dict | None = None) -> np.ndarray:
        """y(z) on the 1-D grid ``z``: [n_z], or [n_z, width] when :attr:`per_neuron`.

        Evaluated by the layer's own module, or, with ``coefficients`` ({parameter name: values},
        e.g. from :func:`logged_coefficients`), by a stand-alone module of the layer's spec and
        width holding those values.
        """
        module = self.module if coefficients is None else self._with(coefficients)
        like = next(iter(self.coefficients.values()), torch.zeros((), dtype=torch.float64))
        grid = torch.as_tensor(np.asarray(z, dtype=float), dtype=like.dtype, device=like.device)
        with torch.no_grad():
            y = module(grid.unsqueeze(1).expand(-1, self.width).contiguous())
        y = y.to(torch.float64).cpu().numpy()
        return y if self.per_neuron else y[:, 0]

    def _with(self, coefficients: dict) -> nn.Module:
        if set(coefficients) != set(self.coefficients):
            raise ValueError(
                f"activation layer {self.name}: coefficients {sorted(coefficients)} do not match "
                f"its parameters {sorted(self.coefficients)}"
            )
        module = make_activation(self.spec.canonical, self.width)
        with torch.no_grad():
            for name, p in module.named_parameters(recurse=False):
                p.copy_(torch.as_tensor(coefficients[name], dtype=p.dtype).reshape(p.shape))
        return module


def place_activations(net: nn.Module, network: str, species: str) -> None:
    """Record on the activation modules of the sub-network ``net`` its ``network`` ("embedding",
    "fitting"), its ``species`` and their depth (0, 1, ... in order), for :func:`activation_layers`."""
    depth = 0
    for _, module in _activation_modules(net):
        module.network, module.species, module.depth = network, species, depth
        depth += 1


def activation_layers(model) -> list[ActivationLayer]:
    """Every activation module of ``model`` (eager, scripted, or a loaded ``ModelFile``), in
    module order. A module nested in another (the base function of a LAAF) is part of it."""
    root = model if isinstance(model, nn.Module) else model.module
    modules = dict(root.named_modules())
    layers = []
    for name, module in _activation_modules(root):
        if hasattr(module, "width"):
            network, species, depth, width = module.network, module.species, module.depth, module.width
        else:
            network, species, depth, width = _legacy_place(name, modules, _type_names(root))
        coefficients = {n: p.detach().clone() for n, p in module.named_parameters(recurse=False)}
        layers.append(
            ActivationLayer(
                name, network, species, int(depth), parse_activation_spec(module.spec), int(width), coefficients, module
            )
        )
    return layers


def _activation_modules(root: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of the outermost modules that carry an activation ``spec``."""
    found: list[tuple[str, nn.Module]] = []
    for name, module in root.named_modules():
        inside = any(name.startswith(outer + ".") for outer, _ in found)
        if hasattr(module, "spec") and not inside:
            found.append((name, module))
    return found


def _type_names(root: nn.Module) -> list[str]:
    """The element names of an mdval model, also inside the float32 wrapper of an export."""
    for candidate in (root, getattr(root, "model", None)):
        names = getattr(candidate, "type_names", None)
        if isinstance(names, list):
            return names
    return []


def _legacy_place(name: str, modules: dict, type_names: list[str]) -> tuple[str, str, int, int]:
    """network, species, depth and width of an activation module of a file written before
    activation modules carried them (see the module docstring)."""
    parts = name.split(".")
    network, nets = ("embedding", "embedding_nets") if "embedding_nets" in parts else ("fitting", "nets")
    index = int(parts[parts.index(nets) + 1])
    depth = int(parts[parts.index("layers") + 1])
    width = modules[name.rsplit(".", 1)[0]].linear.weight.shape[0]
    return network, type_names[index], depth, int(width)


# ---------------------------------------------------------------------------- metadata
def activations_metadata(model: nn.Module) -> dict:
    """The ``activations`` metadata of ``model``: ``{"networks": {network: structured spec},
    "layers": [ActivationLayer.as_metadata(), ...]}`` (schema in mdval/abi.py)."""
    specs = model.activation_specs() if hasattr(model, "activation_specs") else {}
    return {
        "networks": {network: parse_activation_spec(spec).as_dict() for network, spec in specs.items()},
        "layers": [layer.as_metadata() for layer in activation_layers(model)],
    }


def activations_from_metadata(meta: dict) -> dict:
    """The ``activations`` of a model file's metadata, in the structured form of
    :func:`activations_metadata`, also for files written before it.

    Those carry only ``activation``: ``{network: spec}``, or one spec for every sub-network (named
    in the file's ``config`` as ``<network>_activation``; network ``model`` when it has no config);
    they give no ``layers`` (read them from the loaded model with :func:`activation_layers`). A
    spec mdval does not know (a hand-written model's) keeps its text, with family ``None``.
    """
    if ACTIVATIONS_METADATA_KEY in meta:
        return meta[ACTIVATIONS_METADATA_KEY]
    legacy = meta.get("activation")
    if isinstance(legacy, dict):
        specs = dict(legacy)
    else:
        config = meta.get("config") or {}
        specs = {
            network: config[f"{network}_activation"]
            for network in ("embedding", "fitting")
            if config.get(f"{network}_activation")
        } or {"model": legacy}
    return {"networks": {network: _structured(spec) for network, spec in specs.items()}, "layers": []}


def _structured(spec) -> dict:
    try:
        return parse_activation_spec(spec).as_dict()
    except ValueError:
        return {"spec": str(spec), "family": None, "options": {}, "trainable": False}


# ---------------------------------------------------------------------------- training logs
def coefficient_record(model: nn.Module) -> dict:
    """``{layer name: {parameter name: values (nested lists)}}`` of every trainable activation
    layer (shared coefficients under each layer that uses them): the ``activation_coefficients``
    of a training log line."""
    return {
        layer.name: {n: values.tolist() for n, values in layer.coefficients.items()}
        for layer in activation_layers(model)
        if layer.trainable
    }


def logged_coefficients(logged: dict, layer: ActivationLayer) -> dict[str, torch.Tensor] | None:
    """The coefficients of ``layer`` in a log line's ``activation_coefficients``, shaped as
    :attr:`ActivationLayer.coefficients`, or None when the line has none for it.

    Logs written before :func:`coefficient_record` hold ``{"<layer name>.<parameter>": flat
    values}``, shared coefficients under the first layer only.
    """
    entry = logged.get(layer.name)
    if not isinstance(entry, dict):
        entry = {n: logged[f"{layer.name}.{n}"] for n in layer.coefficients if f"{layer.name}.{n}" in logged}
    if not entry or set(entry) != set(layer.coefficients):
        return None
    return {
        n: torch.tensor(values, dtype=torch.float64).reshape(layer.coefficients[n].shape) for n, values in entry.items()
    }
