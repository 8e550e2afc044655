"""Issue 15 for training: bad config values, changed configs on --resume, a damaged last.pt and
the `mdval --help` text each get one clear line (or a plain help page), never a traceback, and
nothing of the run is lost."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest
import tomllib
import torch
from test_train import write_config, write_emt_data

from mdval.cli import build_parser
from mdval.cli import main as mdval_main

RESUME_ALLOWED = (
    "training.epochs, max_time_min, early_stopping_patience, checkpoint_every, readout_refit, "
    "readout_ridge, val_batch_size, progress, optimizer.verbose, data.name, data.format, "
    "data.generate and the data files' paths"
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_train_data")
    write_emt_data(folder / "cu.xyz")
    return folder


def _run_cli(argv, capsys):
    code = mdval_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _error_line(argv, capsys) -> str:
    """The one stderr line of a refused command (exit 2, nothing else on stderr)."""
    code, out, err = _run_cli(argv, capsys)
    assert code == 2, (argv, out, err)
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("mdval: error: "), err
    return err[len("mdval: error: ") : -1]


# --------------------------------------------------------------------------- config values

FILE_VALUES = [  # (sections written into the TOML file, the message after "<config path>: ")
    (
        {"learning_rate": {"start_lr": "1e-3"}},
        "learning_rate.start_lr must be a number > 0, got the text '1e-3'; write start_lr = 0.001 instead",
    ),
    (
        {"loss": {"label_scale": "10"}},
        "loss.label_scale must be a number > 0 (a power of ten; 1 = off), got the text '10'; "
        "write label_scale = 10.0 instead",
    ),
    (
        {"model": {"cutoff": "5.0"}},
        "model.cutoff must be a number > 0 (Å), got the text '5.0'; write cutoff = 5.0 instead",
    ),
    (
        {"model": {"embedding": [4, "8"]}},
        'model.embedding must be a list of whole numbers >= 1 (layer widths), got [4, "8"]; '
        "write embedding = [4, 8] instead",
    ),
    (
        {"model": {"descriptor_centering": 1}},
        "model.descriptor_centering must be true or false, got 1; e.g. descriptor_centering = true",
    ),
    ({"training": {"epochs": True}}, "training.epochs must be a whole number >= 1, got true; e.g. epochs = 100"),
    ({"training": {"epochs": 2.5}}, "training.epochs must be a whole number >= 1, got 2.5; e.g. epochs = 100"),
    (
        {"training": {"batch_size": 0}},
        "training.batch_size must be a whole number >= 1 (frames), got 0; e.g. batch_size = 1",
    ),
    (
        {"training": {"max_time_min": -1.0}},
        "training.max_time_min must be a number >= 0 (minutes; 0 = no time limit), got -1.0; e.g. max_time_min = 15.0",
    ),
    (
        {"training": {"val_batch_size": 0}},
        "training.val_batch_size must be a whole number >= 1 (frames), got 0; e.g. val_batch_size = 8",
    ),
    (
        {"training": {"progress": "no"}},
        "training.progress must be true or false, got the text 'no'; e.g. progress = true",
    ),
    (
        {"optimizer": {"name": "adam", "clip_grad_norm": -1.0}},
        "optimizer.clip_grad_norm must be a number >= 0 (0 = no clipping), got -1.0; e.g. clip_grad_norm = 10.0",
    ),
    (
        {"optimizer": {"name": "adam", "beta2": 1.0}},
        "optimizer.beta2 must be a number in [0, 1), got 1.0; e.g. beta2 = 0.999",
    ),
    (
        {"optimizer": {"name": "rlekf", "lambda0": 0.0}},
        "optimizer.lambda0 must be a number in (0, 1] (1 = no forgetting), got 0.0; e.g. lambda0 = 0.98",
    ),
    (
        {"loss": {"start_pref_f": -1000.0}},
        "loss.start_pref_f must be a number >= 0, got -1000.0; e.g. start_pref_f = 1000.0",
    ),
    (
        {"data": {"stat_frames": 0}},
        "data.stat_frames must be a whole number >= 1 (frames), got 0; e.g. stat_frames = 100",
    ),
    (
        {"data": {"fractions": [0.5, 0.6]}},
        "data.fractions must be three numbers in [0, 1] (train > 0, validation, test) summing to 1, got [0.5, 0.6]; "
        "e.g. fractions = [0.8, 0.1, 0.1]",
    ),
    ({"run": {"seed": -1}}, "run.seed must be a whole number >= 0, got -1; e.g. seed = 0"),
    ({"run": {"name": 5}}, 'run.name must be a string, got 5; write name = "5" instead'),
]


@pytest.mark.parametrize("sections, message", FILE_VALUES, ids=[m.split(" ")[0] for _, m in FILE_VALUES])
def test_a_bad_value_in_the_config_file_is_one_line(tmp_path, data_dir, sections, message):
    from mdval.train.config import load_config, to_toml

    others = {name: table for name, table in sections.items() if name != "data"}
    path = write_config(tmp_path, str(data_dir / "cu.xyz"), **others)
    tables = tomllib.loads(path.read_text())
    tables["data"].update(sections.get("data", {}))  # write_config's own `data` is the file name
    path.write_text(to_toml(tables))
    with pytest.raises(ValueError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: {message}"


SET_VALUES = [  # (--set argument, the whole message): the fix is written as a --set
    (
        "learning_rate.start_lr=abc",
        "learning_rate.start_lr must be a number > 0, got the text 'abc'; e.g. --set learning_rate.start_lr=0.001",
    ),
    (
        'learning_rate.start_lr="1e-3"',
        "learning_rate.start_lr must be a number > 0, got the text '1e-3'; "
        "write --set learning_rate.start_lr=0.001 instead",
    ),
    (
        "learning_rate.stop_lr=nan",
        "learning_rate.stop_lr must be a number > 0, got nan; e.g. --set learning_rate.stop_lr=1e-06",
    ),
    (
        "training.epochs=1e3",
        "training.epochs must be a whole number >= 1, got 1000.0; write --set training.epochs=1000 instead",
    ),
    (
        "optimizer.clip_grad_norm=-1",
        "optimizer.clip_grad_norm must be a number >= 0 (0 = no clipping), got -1; "
        "e.g. --set optimizer.clip_grad_norm=10.0",
    ),
    (
        "model.fitting=[8,'8']",
        'model.fitting must be a list of whole numbers >= 1 (layer widths), got [8, "8"]; '
        "write --set model.fitting=[8,8] instead",
    ),
    (
        "data.fractions=[0,0.5,0.5]",
        "data.fractions must be three numbers in [0, 1] (train > 0, validation, test) summing to 1, got [0, 0.5, 0.5]; "
        "e.g. --set data.fractions=[0.8,0.1,0.1]",
    ),
]


@pytest.mark.parametrize("override, message", SET_VALUES, ids=[s.split("=")[0] for s, _ in SET_VALUES])
def test_a_bad_value_from_set_is_one_line(tmp_path, data_dir, override, message):
    from mdval.train.config import load_config

    path = write_config(tmp_path, str(data_dir / "cu.xyz"))
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        load_config(path, [override])


def test_zero_time_budget_means_no_limit(tmp_path, data_dir):
    from mdval.train.config import load_config

    path = write_config(tmp_path, str(data_dir / "cu.xyz"))
    cfg = load_config(path, ["training.max_time_min=0", "optimizer.clip_grad_norm=0"])
    assert cfg["training"]["max_time_min"] == 0 and cfg["optimizer"]["clip_grad_norm"] == 0


def test_the_cli_refuses_bad_values_before_writing_anything(tmp_path, data_dir, capsys):
    """Through `mdval train`: one line, exit 2, and no run folder (before: a negative time budget
    exported an untrained model with exit 0, quoted numbers gave a TypeError traceback)."""
    config = write_config(tmp_path, str(data_dir / "cu.xyz"))
    cases = [
        (
            ["--set", "training.max_time_min=-1"],
            "training.max_time_min must be a number >= 0 (minutes; 0 = no time limit), got -1; "
            "e.g. --set training.max_time_min=15.0",
        ),
        (
            ["--set", "training.epochs=true"],
            "training.epochs must be a whole number >= 1, got true; e.g. --set training.epochs=100",
        ),
        (
            ["--set", 'model.cutoff="5.0"'],
            "model.cutoff must be a number > 0 (Å), got the text '5.0'; write --set model.cutoff=5.0 instead",
        ),
    ]
    for extra, message in cases:
        assert _error_line(["train", config, "--quiet", *extra], capsys) == message
    assert not (tmp_path / "runs").exists()


def test_a_key_set_in_the_wrong_section_names_its_section(tmp_path, data_dir, capsys):
    config = write_config(tmp_path, str(data_dir / "cu.xyz"))
    assert _error_line(["train", config, "--set", "training.start_lr=abc"], capsys) == (
        f"{config}: unknown key 'training.start_lr'; valid keys in [training]: epochs, batch_size, max_time_min, "
        "checkpoint_every, early_stopping_patience, progress, val_batch_size, schedule_by_time, "
        "refit_energy_shift, readout_refit, readout_ridge; start_lr belongs in [learning_rate] "
        "(learning_rate.start_lr)"
    )


@pytest.mark.parametrize("architecture", ["deeppot_se", "behler_parrinello"])
def test_build_model_refuses_a_quoted_cutoff(architecture):
    from mdval.nn import build_model

    with pytest.raises(
        ValueError,
        match=re.escape("model option cutoff must be a number > 0 (Å), got the text '5.0'; write cutoff = 5.0 instead"),
    ):
        build_model({"architecture": architecture, "type_names": ["Cu"], "cutoff": "5.0"})


def test_build_model_refuses_an_empty_embedding():
    from mdval.nn import build_model

    with pytest.raises(
        ValueError,
        match=re.escape(
            "DeepPot-SE needs at least one embedding layer, got embedding = []; e.g. embedding = [25, 25, 25]"
        ),
    ):
        build_model({"type_names": ["Cu"], "embedding": []})


# --------------------------------------------------------------------------- resume


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory, data_dir):
    """A finished one-epoch run; tests copy it before they touch it."""
    folder = tmp_path_factory.mktemp("one_epoch")
    config = write_config(folder, str(data_dir / "cu.xyz"), training={"epochs": 1})
    assert mdval_main(["train", str(config), "--quiet"]) == 0
    return folder


def _copy_run(one_epoch_run, tmp_path, data_dir, **sections) -> tuple[Path, Path]:
    """(config, run folder) of a copy of the one-epoch run, its config rewritten with ``sections``."""
    shutil.copytree(one_epoch_run / "runs", tmp_path / "runs")
    sections.setdefault("training", {}).setdefault("epochs", 1)
    config = write_config(tmp_path, sections.pop("data_file", str(data_dir / "cu.xyz")), **sections)
    return config, tmp_path / "runs" / "t"


def test_resume_refuses_a_changed_model_or_loss(one_epoch_run, tmp_path, data_dir, capsys):
    config, run = _copy_run(
        one_epoch_run, tmp_path, data_dir, model={"fitting": [16, 16]}, loss={"start_pref_f": 100.0}
    )
    last = (run / "checkpoints" / "last.pt").read_bytes()
    assert _error_line(["train", config, "--quiet", "--resume"], capsys) == (
        f"cannot resume {run}: loss.start_pref_f was 1000.0, now 100.0; model.fitting was [8, 8], now [16, 16]; "
        "put it back (--set loss.start_pref_f=1000.0 --set model.fitting=[8,8]) or start a new run (another "
        f"run.name or run.dir); --resume may change only {RESUME_ALLOWED}"
    )
    assert (run / "checkpoints" / "last.pt").read_bytes() == last  # the run is untouched


def test_resume_refuses_a_changed_activation_by_the_key_written(one_epoch_run, tmp_path, data_dir, capsys):
    config, run = _copy_run(one_epoch_run, tmp_path, data_dir)
    assert _error_line(["train", config, "--quiet", "--resume", "--set", "model.activation=silu"], capsys) == (
        f'cannot resume {run}: model.activation was "tanh", now "silu"; put it back (--set model.activation="tanh") '
        f"or start a new run (another run.name or run.dir); --resume may change only {RESUME_ALLOWED}"
    )


def test_resume_refuses_other_data_but_not_a_moved_file(one_epoch_run, tmp_path, data_dir, capsys):
    other = write_emt_data(tmp_path / "other.xyz", seed=1)
    config, run = _copy_run(one_epoch_run, tmp_path, data_dir, data_file=str(other))

    def sha(path):
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]

    assert _error_line(["train", config, "--quiet", "--resume"], capsys) == (
        f"cannot resume {run}: the data files differ from those the run started with ({data_dir / 'cu.xyz'} "
        f"(sha256 {sha(data_dir / 'cu.xyz')}) then, {other} (sha256 {sha(other)}) now); give the same data.train "
        "and data.test files, or start a new run (another run.name or run.dir)"
    )
    moved = shutil.copy(data_dir / "cu.xyz", tmp_path / "moved.xyz")  # same bytes, another path: allowed
    code, out, err = _run_cli(
        ["train", config, "--quiet", "--resume", "--set", f"data.train='{moved}'", "--set", "training.epochs=2"], capsys
    )
    assert code == 0, err
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] == 2 * 4


def test_resume_without_a_run_says_how_to_start_it(tmp_path, data_dir, capsys):
    config = write_config(tmp_path, str(data_dir / "cu.xyz"))
    run = tmp_path / "runs" / "t"
    assert _error_line(["train", config, "--quiet", "--resume"], capsys) == (
        f"nothing to resume in {run}: {run / 'checkpoints' / 'last.pt'} does not exist; train without --resume "
        "to start the run (or check run.name and run.dir)"
    )
    assert not run.exists()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_a_damaged_last_checkpoint_resumes_from_best(one_epoch_run, tmp_path, data_dir, capsys):
    """last.pt cut to half its size (killed or disk full while written): --resume warns, naming
    the file, continues from best.pt's step, and the finished run has every epoch once."""
    config, run = _copy_run(one_epoch_run, tmp_path, data_dir)
    last, best = run / "checkpoints" / "last.pt", run / "checkpoints" / "best.pt"
    best_epoch_1 = best.read_bytes()
    assert _run_cli(["train", config, "--quiet", "--resume", "--set", "training.epochs=2"], capsys)[0] == 0
    best.write_bytes(best_epoch_1)  # best.pt stays at epoch 1 (step 4); last.pt is at epoch 2 (step 8)
    _truncate(last)
    code, out, err = _run_cli(["train", config, "--quiet", "--resume", "--set", "training.epochs=3"], capsys)
    assert code == 0, err
    warning = out.splitlines()[0]
    assert re.fullmatch(
        re.escape(f"warning: {last} is not a readable mdval checkpoint (")
        + r".+"
        + re.escape(f"); resuming from {best} (epoch 1, step 4), the steps after it are done again"),
        warning,
    ), warning
    assert f"resumed {run} at epoch 1, step 4" in out
    assert torch.load(last, weights_only=True)["step"] == 3 * 4
    epochs = [line.split('"epoch": ')[1].split(",")[0] for line in (run / "log.jsonl").read_text().splitlines()]
    assert epochs == ["1", "2", "3"]


def test_no_usable_checkpoint_says_how_to_recover(one_epoch_run, tmp_path, data_dir, capsys):
    config, run = _copy_run(one_epoch_run, tmp_path, data_dir)
    last, best = run / "checkpoints" / "last.pt", run / "checkpoints" / "best.pt"
    _truncate(last)
    best.unlink()
    message = _error_line(["train", config, "--quiet", "--resume"], capsys)
    assert re.fullmatch(
        re.escape(f"cannot resume {run}: {last} is not a readable mdval checkpoint (")
        + r".+"
        + re.escape(
            f"), and {best} is missing or unreadable too; move the run aside (mv {run} "
            f"{run}.damaged) and train again without --resume"
        ),
        message,
    ), message


def test_a_damaged_best_checkpoint_still_exports(one_epoch_run, tmp_path, data_dir, capsys):
    """best.pt damaged at the end of a run: model.pt is written from the last weights, with a warning."""
    config, run = _copy_run(one_epoch_run, tmp_path, data_dir)
    best = run / "checkpoints" / "best.pt"
    _truncate(best)
    (run / "model.pt").unlink()
    code, out, err = _run_cli(["train", config, "--quiet", "--resume"], capsys)
    assert code == 0, err
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and re.fullmatch(
        re.escape(f"warning: {best} is not a readable mdval checkpoint (")
        + r".+"
        + re.escape("); exporting the weights of epoch 1, step 4 instead of the best ones"),
        warnings[0],
    ), warnings
    assert (run / "model.pt").is_file()


# --------------------------------------------------------------------------- help

WORKFLOW_ORDER = [
    "data",
    "train",
    "test",
    "export",
    "compress",
    "check",
    "fisher",
    "lammps",
    "md",
    "run",
    "select",
    "report",
    "compare",
    "demo",
]
OUR_COMMANDS = [
    ("train",),
    ("test",),
    ("export",),
    ("compress",),
    ("check",),
    ("fisher",),
    ("data", "generate"),
    ("data", "info"),
    ("lammps", "build"),
    ("lammps", "check"),
    ("select",),
]
MARKUP = re.compile(r"``|::|:(?:func|data|class|mod|meth):|`")


def _subparser(parser, path):
    for name in path:
        parser = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices[name]
    return parser


def test_mdval_help_is_plain_text_in_workflow_order():
    text = build_parser().format_help()
    assert not MARKUP.search(text), MARKUP.search(text)
    listed = re.findall(r"^    (\w+)  ", text, flags=re.MULTILINE)
    assert listed == WORKFLOW_ORDER, listed


@pytest.mark.parametrize("path", OUR_COMMANDS, ids=[" ".join(p) for p in OUR_COMMANDS])
def test_each_option_shows_its_default_once(path):
    """Every option has a help line; one whose default is a value (not None, False or an empty
    list) names it once."""
    parser = _subparser(build_parser(), path)
    text = parser.format_help()
    assert not MARKUP.search(text), MARKUP.search(text)
    formatter = parser._get_formatter()
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        shown = formatter._expand_help(action) if action.help else ""
        assert shown, f"{action.option_strings} has no help"
        if action.default not in (None, False, []):
            assert shown.count("default") == 1, (action.option_strings, shown)
