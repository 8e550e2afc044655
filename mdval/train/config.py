"""Training configuration: a TOML file, checked key by key, with ``--set section.key=value`` overrides.

Sections and keys (defaults in :data:`SCHEMA`, what each value may be in :data:`RULES`;
``[model]`` is passed to :func:`mdval.nn.build_model` and its values are checked against
``mdval.nn.build.OPTION_RULES``; ``[optimizer]`` keys other than ``name`` go to the optimizer,
which refuses unknown ones)::

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
import math
from pathlib import Path

import tomllib

from mdval.options import Rule, check, shown, toml_text

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

#: Sections whose keys are free-form: any key (the model or the optimizer refuses unknown ones).
FREE_SECTIONS: tuple[str, ...] = ("model", "optimizer")


def _positive(example, note: str = "") -> Rule:
    return Rule("number", 0, open_low=True, note=note, example=example)


def _non_negative(example, note: str = "") -> Rule:
    return Rule("number", 0, note=note, example=example)


def _whole(low: int, example, note: str = "") -> Rule:
    return Rule("whole", low, note=note, example=example)


def _text(example: str) -> Rule:
    return Rule("text", optional=True, example=example)


_FLAG = Rule("flag", example=True)

#: What each value may be, by "section.key" (units and meanings in the notes). Every value of a
#: config is checked against this one table (optimizer keys only where given, since each
#: optimizer has its own); [model] options are checked by mdval.nn.build.OPTION_RULES.
RULES: dict[str, Rule] = {
    "run.name": _text("cu_tanh"),
    "run.dir": _text("runs"),
    "run.seed": _whole(0, 0),
    "data.train": Rule("texts", optional=True, example=["data/cu_emt.xyz"]),
    "data.test": Rule("texts", optional=True, example=["data/cu_test.xyz"]),
    "data.format": _text("extxyz"),
    "data.name": _text("cu_emt"),
    "data.split_seed": _whole(0, 0),
    "data.stat_frames": _whole(1, 100, "frames"),
    "loss.start_pref_e": _non_negative(0.02),
    "loss.limit_pref_e": _non_negative(1.0),
    "loss.start_pref_f": _non_negative(1000.0),
    "loss.limit_pref_f": _non_negative(1.0),
    "loss.start_pref_v": _non_negative(0.0),
    "loss.limit_pref_v": _non_negative(0.0),
    "loss.label_scale": _positive(1.0, "a power of ten; 1 = off"),
    "loss.slope_recovery": _non_negative(0.0, "0 = off"),
    "learning_rate.start_lr": _positive(1e-3),
    "learning_rate.stop_lr": _positive(1e-6),
    "learning_rate.decay_steps": _whole(1, 1, "steps"),
    "learning_rate.stop_steps": _whole(0, 0, "steps; 0 = epochs x batches per epoch"),
    "optimizer.name": Rule("text", example="adam"),
    # Adam (mdval.train.adam)
    "optimizer.clip_grad_norm": _non_negative(10.0, "0 = no clipping"),
    "optimizer.beta1": Rule("number", 0, 1, open_high=True, example=0.9),
    "optimizer.beta2": Rule("number", 0, 1, open_high=True, example=0.999),
    "optimizer.eps": _positive(1e-8),
    "optimizer.weight_decay": _non_negative(0.0),
    # Kalman filters (mdval.train.kalman)
    "optimizer.p0": _positive(1.0),
    "optimizer.epsilon": _positive(1e-3, "P0 = I/epsilon"),
    "optimizer.eta": _positive(1.0),
    "optimizer.lambda0": Rule("number", 0, 1, open_low=True, note="1 = no forgetting", example=0.98),
    "optimizer.nu": Rule("number", 0, 1, open_low=True, example=0.9987),
    "optimizer.q0": _non_negative(0.0),
    "optimizer.q_min": _non_negative(0.0),
    "optimizer.q_tau": Rule("number", 0, open_low=True, note="updates; inf = constant", example=1000.0, finite=False),
    "optimizer.block_size": _whole(1, 5120, "parameters"),
    "optimizer.force_group_size": _whole(1, 6, "atoms"),
    "optimizer.force_components": _whole(1, 10),
    "optimizer.n_force_updates": _whole(0, 4),
    "optimizer.energy_prefactor": _non_negative(1.0),
    "optimizer.force_prefactor": _non_negative(1.0),
    "optimizer.max_params": _whole(1, 12000),
    "optimizer.seed": _whole(0, 0),
    "optimizer.measurement": _text("vector"),
    "optimizer.p_dtype": _text("float64"),
    "optimizer.verbose": _FLAG,
    "training.epochs": _whole(1, 100),
    "training.batch_size": _whole(1, 1, "frames"),
    "training.max_time_min": _non_negative(15.0, "minutes; 0 = no time limit"),
    "training.checkpoint_every": _whole(0, 200, "steps; 0 = at the end of each epoch only"),
    "training.early_stopping_patience": _whole(0, 0, "epochs; 0 = off"),
    "training.progress": _FLAG,
    "training.val_batch_size": _whole(1, 8, "frames"),
    "training.schedule_by_time": _FLAG,
    "training.refit_energy_shift": _FLAG,
    "training.readout_refit": _FLAG,
    "training.readout_ridge": _non_negative(1e-4, "eV²/atom per unit weight²"),
}


def _merge(defaults: dict, given: dict, where: str) -> dict:
    out = copy.deepcopy(defaults)
    for section, table in given.items():
        if section not in defaults:
            raise ValueError(f"{where}: unknown section [{section}]; valid sections: {', '.join(defaults)}")
        if not isinstance(table, dict):
            raise ValueError(f"{where}: [{section}] must be a table, got {table!r}")
        for key, value in table.items():
            if section not in FREE_SECTIONS and key not in defaults[section]:
                home = [other for other, keys in defaults.items() if key in keys]
                hint = f"; {key} belongs in [{home[0]}] ({home[0]}.{key})" if home else ""
                raise ValueError(
                    f"{where}: unknown key '{section}.{key}'; valid keys in [{section}]: "
                    f"{', '.join(defaults[section])}{hint}"
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
        raise FileNotFoundError(
            f"config file not found: {path}; give the path to a TOML file (examples in models/configs/)"
        )
    try:
        given = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML ({error})") from None
    overridden = set()
    for text in overrides or []:
        section, key, value = parse_override(text)
        given.setdefault(section, {})[key] = value
        overridden.add(f"{section}.{key}")
    cfg = _merge(SCHEMA, given, str(path))
    check_config(cfg, str(path), overridden)
    cfg["_path"] = str(path.resolve())
    cfg["_root"] = str(find_root(path.resolve().parent))
    return cfg


def check_config(cfg: dict, where: str = "config", overridden=frozenset()) -> None:
    """Check every value against :data:`RULES` (and the model options against
    ``mdval.nn.build.OPTION_RULES``), then the relations between keys.

    ``where`` (the config file) starts the message of a value from the file; a value from
    ``--set`` (its ``section.key`` in ``overridden``) gets its fix written as ``--set``.
    """
    from mdval.nn.build import OPTION_RULES

    data = cfg["data"]
    if not data["train"] and not data["generate"]:
        raise ValueError(
            f"{where}: data.train is missing; give a data file (extxyz, mlearn JSON, "
            "DeePMD folder, ...) or a [data.generate] table"
        )
    for key in ("train", "test"):
        if isinstance(data[key], str):
            data[key] = [data[key]]
    model = cfg["model"]
    if not model.get("type_names"):
        raise ValueError(f"{where}: model.type_names is missing; give the element symbols, e.g. ['Cu']")
    rules = {**RULES, **{f"model.{key}": rule for key, rule in OPTION_RULES.items()}}
    for name, rule in rules.items():
        section, key = name.split(".")
        if key in cfg[section]:
            _check_key(name, cfg[section][key], rule, where, name in overridden)
    _check_fractions(data["fractions"], where, "data.fractions" in overridden)
    if data["generate"] is not None and not isinstance(data["generate"], dict):
        raise ValueError(
            f"{where}: data.generate must be a table, got {shown(data['generate'])}; e.g. "
            'generate = { reference = "emt", element = "Cu", n_frames = 600 }'
        )
    from mdval.nn import resolve_activations

    resolve_activations(model, ("embedding", "fitting"))  # a bad spec raises ValueError with the valid names
    tr = cfg["training"]
    if tr["readout_refit"] and (cfg["loss"]["start_pref_v"] > 0 or cfg["loss"]["limit_pref_v"] > 0):
        raise ValueError(
            f"{where}: training.readout_refit fits energies and forces only, but the loss has a "
            "virial term (loss.start_pref_v / limit_pref_v > 0); set readout_refit = false or "
            "drop the virial term"
        )
    name = cfg["optimizer"]["name"].lower()
    from mdval.train.optimizers import OPTIMIZER_NAMES

    if name not in OPTIMIZER_NAMES:
        raise ValueError(f"{where}: unknown optimizer.name {name!r}; valid: {', '.join(OPTIMIZER_NAMES)}")


def _check_key(name: str, value, rule: Rule, where: str, from_cli: bool) -> None:
    key = name.split(".")[1]
    if from_cli:
        check(name, value, rule, lambda v: f"--set {name}={toml_text(v, compact=True)}")
        return
    try:
        check(name, value, rule, lambda v: f"{key} = {toml_text(v)}")
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def _check_fractions(fractions, where: str, from_cli: bool) -> None:
    """data.fractions: (train, validation, test), each in [0, 1], summing to 1, train > 0."""
    if (
        Rule("numbers", 0, 1).accepts(fractions)
        and len(fractions) == 3
        and fractions[0] > 0
        and math.isclose(sum(fractions), 1.0, abs_tol=1e-9)
    ):
        return
    fix = "--set data.fractions=[0.8,0.1,0.1]" if from_cli else "fractions = [0.8, 0.1, 0.1]"
    raise ValueError(
        f"{'' if from_cli else where + ': '}data.fractions must be three numbers in [0, 1] "
        f"(train > 0, validation, test) summing to 1, got {shown(fractions)}; e.g. {fix}"
    )


#: Keys that ``--resume`` may change: how long the run goes on, how often it checkpoints and
#: reports, and what happens at its end. Anything else (the model, the data, the split, the loss
#: and learning-rate plan, the optimizer, the batch size, the seeds) would give the saved state
#: another meaning, so a resumed run would no longer continue the one it claims to.
RESUME_MAY_CHANGE: tuple[str, ...] = (
    "training.epochs",
    "training.max_time_min",
    "training.early_stopping_patience",
    "training.checkpoint_every",
    "training.readout_refit",
    "training.readout_ridge",
    "training.val_batch_size",
    "training.progress",
    "optimizer.verbose",
    "run.name",
    "run.dir",
    "data.name",
    "data.format",
    "data.generate",
    "data.train",
    "data.test",  # files: compared by their content (sha256), not by path
)


def resume_changes(stored: dict, cfg: dict) -> list[tuple[str, object, object]]:
    """(section.key, stored value, given value) for each key that differs between the config a
    checkpoint was written with and ``cfg`` and that ``--resume`` may not change.

    ``[model]`` is left out: compare the built models' configs (:func:`changed_keys`), which
    fill in defaults. A key missing from an older checkpoint counts as its default.
    """
    changes = []
    for section, new in cfg.items():
        if section.startswith("_") or section == "model":
            continue
        old = stored.get(section, {})
        for key in sorted(set(old) | set(new)):
            name = f"{section}.{key}"
            before = old.get(key, SCHEMA.get(section, {}).get(key))
            if name not in RESUME_MAY_CHANGE and before != new.get(key):
                changes.append((name, before, new.get(key)))
    return changes


def changed_keys(prefix: str, stored: dict, given: dict) -> list[tuple[str, object, object]]:
    """(prefix.key, stored, given) for each key whose value differs between two dicts."""
    return [
        (f"{prefix}.{key}", stored.get(key), given.get(key))
        for key in sorted(set(stored) | set(given))
        if stored.get(key) != given.get(key)
    ]


def resume_refusal(run_dir, changes: list[tuple[str, object, object]]) -> str:
    """The one-line refusal of a ``--resume`` whose config changed what the checkpoint means."""

    def text(value):
        return "(not set)" if value is None else toml_text(value)

    found = "; ".join(f"{name} was {text(old)}, now {text(new)}" for name, old, new in changes)
    restore = " ".join(
        f"--set {name}={toml_text(old, compact=True)}" if old is not None else f"remove {name}"
        for name, old, _ in changes
    )
    return (
        f"cannot resume {run_dir}: {found}; put it back ({restore}) or start a new run (another "
        f"run.name or run.dir); --resume may change only {resume_may_change_text()}"
    )


def resume_may_change_text() -> str:
    """What ``--resume`` lets change, in words (for the refusal and ``mdval train --help``)."""
    training = [name.split(".")[1] for name in RESUME_MAY_CHANGE if name.startswith("training.")]
    others = [
        name
        for name in RESUME_MAY_CHANGE
        if name.split(".")[0] in ("optimizer", "data") and name not in ("data.train", "data.test")
    ]
    return f"training.{', '.join(training)}, {', '.join(others)} and the data files' paths"


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
            lines.append(f"{key} = {toml_text(value)}")
        lines.append("")
    return "\n".join(lines)
