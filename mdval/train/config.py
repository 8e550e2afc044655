"""Training configuration: a TOML file, checked key by key, with ``--set section.key=value`` overrides.

Sections and keys (defaults in :data:`SCHEMA`; ``[model]`` is passed to
:func:`mdval.nn.build_model`, which checks its own keys; ``[optimizer]`` keys other than
``name`` go to the optimizer, which checks them)::

    [run]            name, dir (runs/), seed
    [data]           train (file or list), test (optional files), format, fractions
                     (train, validation, test), split_seed, stat_frames, name, generate (table
                     of mdval.data.generate.GenerateSettings: creates ``train`` if it is missing)
    [model]          architecture, type_names, cutoff (Å), activation, ... (see mdval.nn)
    [loss]           start_pref_e, limit_pref_e, start_pref_f, limit_pref_f, start_pref_v,
                     limit_pref_v, label_scale, slope_recovery
    [learning_rate]  start_lr, stop_lr, decay_steps, stop_steps (0: the planned steps)
    [optimizer]      name (adam | ekf | rlekf), clip_grad_norm, beta1, beta2, eps, ...
    [training]       epochs, batch_size (frames), max_time_min, checkpoint_every (steps),
                     early_stopping_patience (epochs, 0: off), progress, val_batch_size

Relative data paths are resolved against the config file's folder, then the current folder,
then the repository root (the folder holding ``pyproject.toml`` above the config).
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

#: Every section and key with its default. ``None`` means "no default / optional".
SCHEMA: dict[str, dict] = {
    "run": {"name": None, "dir": "runs", "seed": 0},
    "data": {
        "train": None,
        "test": [],
        "format": None,
        "fractions": [0.8, 0.1, 0.1],
        "split_seed": 0,
        "stat_frames": 100,
        "name": None,
        "generate": None,
    },
    "model": {},  # free-form: checked by build_model
    "loss": {
        "start_pref_e": 0.02,
        "limit_pref_e": 1.0,
        "start_pref_f": 1000.0,
        "limit_pref_f": 1.0,
        "start_pref_v": 0.0,
        "limit_pref_v": 0.0,
        "label_scale": 1.0,
        "slope_recovery": 0.0,
    },
    "learning_rate": {"start_lr": 1e-3, "stop_lr": 1e-6, "decay_steps": 1, "stop_steps": 0},
    "optimizer": {"name": "adam"},  # other keys go to the optimizer, which checks them
    "training": {
        "epochs": 100,
        "batch_size": 1,
        "max_time_min": 0.0,
        "checkpoint_every": 0,
        "early_stopping_patience": 0,
        "progress": True,
        "val_batch_size": 8,
        "schedule_by_time": False,
        # Refit the per-element energy shifts by least squares on the training residuals after
        # every epoch (the fitting nets have no output bias, so this is how the energy baseline
        # follows the network; DeePMD-kit's change-bias idea).
        "refit_energy_shift": True,
        # At the end, solve the readout (last linear layer + energy shifts) by least squares for
        # the training loss at its final prefactors, the network below frozen
        # (mdval.train.readout); readout_ridge (eV²/atom per unit weight²) keeps it near the
        # trained weights.
        "readout_refit": False,
        "readout_ridge": 1e-4,
    },
}

#: Sections whose keys are checked elsewhere (by the model or the optimizer).
FREE_SECTIONS: tuple[str, ...] = ("model", "optimizer")


def _merge(defaults: dict, given: dict, where: str) -> dict:
    out = copy.deepcopy(defaults)
    for section, table in given.items():
        if section not in defaults:
            raise ValueError(
                f"{where}: unknown section [{section}]; valid sections: {', '.join(defaults)}"
            )
        if not isinstance(table, dict):
            raise ValueError(f"{where}: [{section}] must be a table, got {table!r}")
        for key, value in table.items():
            if section not in FREE_SECTIONS and key not in defaults[section]:
                raise ValueError(
                    f"{where}: unknown key '{section}.{key}'; valid keys in [{section}]: "
                    f"{', '.join(defaults[section])}"
                )
            out[section][key] = value
    return out


def parse_override(text: str) -> tuple[str, str, object]:
    """``"section.key=value"`` -> (section, key, value); the value is read as TOML (a bare word
    that is not valid TOML is taken as a string)."""
    lhs, eq, rhs = text.partition("=")
    section, dot, key = lhs.strip().partition(".")
    if not eq or not dot or not section or not key:
        raise ValueError(f"--set expects section.key=value (e.g. training.epochs=10), got {text!r}")
    try:
        value = tomllib.loads(f"v = {rhs.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = rhs.strip()
    return section, key.strip(), value


def load_config(path, overrides: list[str] | None = None) -> dict:
    """The checked config of ``path`` with ``overrides`` applied; adds ``_path`` and ``_root``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}; give the path to a TOML file "
                                "(examples in models/configs/)")
    try:
        given = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML ({error})") from None
    for text in overrides or []:
        section, key, value = parse_override(text)
        given.setdefault(section, {})[key] = value
    cfg = _merge(SCHEMA, given, str(path))
    check_config(cfg, str(path))
    cfg["_path"] = str(path.resolve())
    cfg["_root"] = str(find_root(path.resolve().parent))
    return cfg


def check_config(cfg: dict, where: str = "config") -> None:
    """Check values the trainer needs (types and ranges), naming the key and what is expected."""
    data = cfg["data"]
    if not data["train"] and not data["generate"]:
        raise ValueError(f"{where}: data.train is missing; give a data file (extxyz, mlearn JSON, "
                         "DeePMD folder, ...) or a [data.generate] table")
    if isinstance(data["train"], str):
        data["train"] = [data["train"]]
    if isinstance(data["test"], str):
        data["test"] = [data["test"]]
    model = cfg["model"]
    if not model.get("type_names"):
        raise ValueError(f"{where}: model.type_names is missing; give the element symbols, e.g. ['Cu']")
    if "activation" in model:
        from mdval.nn import canonical_spec

        canonical_spec(model["activation"])  # raises ValueError with the valid names
    tr = cfg["training"]
    for key in ("epochs", "batch_size"):
        if not isinstance(tr[key], int) or tr[key] < 1:
            raise ValueError(f"{where}: training.{key} must be a positive integer, got {tr[key]!r}")
    if not isinstance(tr["readout_refit"], bool):
        raise ValueError(f"{where}: training.readout_refit must be true or false, got {tr['readout_refit']!r}")
    if not isinstance(tr["readout_ridge"], (int, float)) or tr["readout_ridge"] < 0:
        raise ValueError(f"{where}: training.readout_ridge must be a number >= 0 (eV²/atom per unit weight²), "
                         f"got {tr['readout_ridge']!r}")
    if tr["readout_refit"] and (cfg["loss"]["start_pref_v"] > 0 or cfg["loss"]["limit_pref_v"] > 0):
        raise ValueError(f"{where}: training.readout_refit fits energies and forces only, but the loss has a "
                         "virial term (loss.start_pref_v / limit_pref_v > 0); set readout_refit = false or "
                         "drop the virial term")
    lr = cfg["learning_rate"]
    if not (lr["start_lr"] > 0 and lr["stop_lr"] > 0):
        raise ValueError(f"{where}: learning_rate.start_lr and stop_lr must be > 0, got "
                         f"{lr['start_lr']!r}, {lr['stop_lr']!r}")
    if cfg["loss"]["label_scale"] <= 0:
        raise ValueError(f"{where}: loss.label_scale must be > 0 (a power of ten), got "
                         f"{cfg['loss']['label_scale']!r}")
    name = str(cfg["optimizer"].get("name", "adam")).lower()
    from mdval.train.optimizers import OPTIMIZER_NAMES

    if name not in OPTIMIZER_NAMES:
        raise ValueError(f"{where}: unknown optimizer.name {name!r}; valid: {', '.join(OPTIMIZER_NAMES)}")


def find_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` with a ``pyproject.toml`` (else ``start``)."""
    for folder in [start, *start.parents]:
        if (folder / "pyproject.toml").exists():
            return folder
    return start


def resolve_path(cfg: dict, value: str) -> Path:
    """A data path from the config: absolute, else the first existing of (config folder,
    current folder, repository root); if none exists, the config-folder candidate."""
    p = Path(value).expanduser()
    if p.is_absolute():
        return p
    candidates = [Path(cfg["_path"]).parent / p, Path.cwd() / p, Path(cfg["_root"]) / p]
    for c in candidates:
        if c.exists():
            return c
    return candidates[0] if cfg["data"].get("generate") is None else Path(cfg["_root"]) / p


def to_toml(cfg: dict) -> str:
    """The config (without private ``_`` keys) as TOML text, for the run folder."""
    lines = []
    for section, table in cfg.items():
        if section.startswith("_"):
            continue
        lines.append(f"[{section}]")
        for key, value in table.items():
            if value is None:
                continue
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items() if v is not None) + " }"
    raise ValueError(f"cannot write {value!r} as TOML")
