"""The data of a training run: its files (written first when ``data.generate`` asks), the frames
of its train/validation/test split and the description that goes into checkpoints and model
metadata (file names, sha256 of their bytes, split sizes).

The split is drawn once, seeded by ``data.split_seed``, and kept in ``<run folder>/splits.json``
(frame indices into the data files); a resumed run reads it back, and is refused when the files'
content changed since the run started (:func:`check_same_data`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from mdval.train.config import resolve_path


@dataclass
class RunData:
    """The frames of a run's split and their description (``training_data`` in metadata)."""

    train: list
    validation: list
    test: list
    description: dict


def hash_paths(paths) -> str:
    """sha256 over the bytes of the data files (a folder: its files in sorted order)."""
    digest = hashlib.sha256()
    for path in paths:
        path = Path(path)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            with open(f, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()


def _files_text(training_data: dict) -> str:
    """ "a.xyz, b.xyz (sha256 0123456789ab)": the data files of a run, for messages."""
    return f"{', '.join(training_data.get('files', []))} (sha256 {training_data['sha256'][:12]})"


def data_paths(cfg: dict, *, log=print, progress: bool = False) -> tuple[list[Path], list[Path]]:
    """The training and test files of the config ``cfg``; generates the training file first when
    ``data.generate`` asks for it and the file does not exist yet."""
    data = cfg["data"]
    train = [resolve_path(cfg, p) for p in data["train"] or []]
    if data["generate"] is not None:
        if len(train) != 1:
            raise ValueError("data.generate needs exactly one data.train file to write to")
        if not train[0].exists():
            from mdval.data.generate import GenerateSettings, generate

            gen = dict(data["generate"])
            try:
                settings = GenerateSettings(**gen)
            except TypeError as error:
                raise ValueError(f"data.generate: {error}; see mdval data generate --help") from None
            log(f"generating {train[0]} ({settings.n_frames} frames, {settings.reference})")
            generate(settings, train[0], progress=progress)
    test = [resolve_path(cfg, p) for p in data["test"] or []]
    for p in train + test:
        if not p.exists():
            raise FileNotFoundError(
                f"data file not found: {p} (data.train/data.test are read "
                "relative to the config file, the current folder or the repo)"
            )
    return train, test


def load_run_data(cfg: dict, run_dir: Path, *, resume: bool, log=print, progress: bool = False) -> RunData:
    """Read the data files of ``cfg`` and split them (the split of ``run_dir/splits.json`` when
    resuming, else a new one, written there)."""
    from mdval.data.readers import read_many
    from mdval.data.splits import load_splits, save_splits, split_frames

    data = cfg["data"]
    type_names = cfg["model"]["type_names"]
    train_paths, test_paths = data_paths(cfg, log=log, progress=progress)
    frames = read_many(train_paths, data["format"], type_names=type_names)
    test_frames = read_many(test_paths, data["format"], type_names=type_names) if test_paths else []
    fractions = list(data["fractions"])
    if test_frames:  # separate test files: split the training files into train/validation
        total = fractions[0] + fractions[1]
        fractions = [fractions[0] / total, fractions[1] / total, 0.0]
    splits_path = run_dir / "splits.json"
    if resume and splits_path.exists():
        splits = load_splits(splits_path)
    else:
        splits = split_frames(len(frames), fractions, int(data["split_seed"]))
        save_splits(
            splits_path,
            splits,
            seed=int(data["split_seed"]),
            fractions=fractions,
            data={"train": [str(p) for p in train_paths], "test": [str(p) for p in test_paths]},
        )
    train = [frames[i] for i in splits["train"]]
    validation = [frames[i] for i in splits["validation"]]
    test = test_frames or [frames[i] for i in splits["test"]]
    if not train:
        raise ValueError(
            f"no training frames after the split {fractions} of {len(frames)} frames; "
            "add data or raise data.fractions[0]"
        )
    description = {
        "name": data["name"] or "+".join(p.stem for p in train_paths),
        "files": [str(p) for p in train_paths + test_paths],
        "sha256": hash_paths(train_paths + test_paths),
        "n_train": len(train),
        "n_val": len(validation),
        "n_test": len(test),
    }
    return RunData(train, validation, test, description)


def check_same_data(run_dir: Path, stored: dict, current: dict) -> None:
    """Refuse to resume on other data: splits.json holds frame indices into the old files
    (``stored``/``current``: the description in the checkpoint and of the files now)."""
    if stored.get("sha256") in (None, current["sha256"]):
        return
    raise ValueError(
        f"cannot resume {run_dir}: the data files differ from those the run started "
        f"with ({_files_text(stored)} then, {_files_text(current)} now); give "
        "the same data.train and data.test files, or start a new run (another run.name "
        "or run.dir)"
    )
