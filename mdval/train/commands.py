"""``mdval train``, ``mdval test`` and ``mdval export``.

Bad input (missing files, unknown keys, bad activation specs, empty or NaN data) is reported as
``mdval: error: ...`` on stderr with exit code 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mdval.argtypes import HelpFormatter, positive_int
from mdval.train.config import resume_may_change_text

EXIT_BAD_INPUT: int = 2


def _fail(error: Exception) -> int:
    message = str(error)
    if isinstance(error, KeyError):
        message = f"missing key {message}"
    print(f"mdval: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


class _ExamplesHelpFormatter(argparse.RawDescriptionHelpFormatter, HelpFormatter):
    """Keeps the line breaks of the examples in a description; shows each default once."""


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train",
        help="train a model from a TOML config",
        description="Train a model from a TOML config (examples in models/configs/).\n"
        "  mdval train models/configs/cu_emt_tanh_adam.toml\n"
        "  mdval train cfg.toml --set training.epochs=5 --set model.activation='\"taafs:basis=chebyshev1\"'\n"
        "  mdval train cfg.toml --resume      # continue a killed run from runs/NAME/checkpoints/last.pt\n"
        "  mdval train cfg.toml --committee 4 --jobs 2   # 4 seeds into runs/NAME/member-1..4, "
        "models in runs/NAME/committee/",
        formatter_class=_ExamplesHelpFormatter,
    )
    train.add_argument("config", help="TOML config file")
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        metavar="SECTION.KEY=VALUE",
        help="override a config value (value read as TOML; repeatable)",
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run from its last checkpoint, optimizer state included (from "
        "best.pt if last.pt is damaged); of the config only "
        f"{resume_may_change_text()} may change",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument(
        "--committee",
        type=int,
        metavar="N",
        help="train N members (run.seed, run.seed + 1, ...; same data split) into <run folder>/member-K "
        "and export them to <run folder>/committee/model-K.pt; running it again resumes unfinished "
        "members and skips finished ones, so --resume is implied (mdval.train.committee)",
    )
    train.add_argument(
        "--jobs", type=int, default=1, metavar="J", help="committee members trained at a time (one torch thread each)"
    )
    train.set_defaults(func=_train)

    test = subparsers.add_parser(
        "test",
        help="errors of a model file on labelled data (JSON + parity plot)",
        description="Energy (meV/atom), force (eV/Å) and virial (meV/atom) MAE and RMSE of MODEL on "
        "DATA; writes JSON and a parity plot (PNG).",
        formatter_class=HelpFormatter,
    )
    test.add_argument("model", help="exported model file (.pt)")
    test.add_argument("data", nargs="+", help="labelled data file(s) (extxyz, mlearn JSON, DeePMD, ...)")
    test.add_argument(
        "--format", help="force a data format (extxyz, mlearn, deepmd/npy, ...; default: detected from the file)"
    )
    test.add_argument(
        "--out",
        help="output prefix: writes PREFIX.json and PREFIX_parity.png (default: <model stem>_test next to the model)",
    )
    test.add_argument("--batch-size", type=positive_int, default=8, help="frames per evaluation batch")
    test.set_defaults(func=_test)

    export = subparsers.add_parser(
        "export", help="write the model file (ABI v1) of a training checkpoint", formatter_class=HelpFormatter
    )
    export.add_argument("checkpoint", help="checkpoint (runs/NAME/checkpoints/best.pt or last.pt)")
    export.add_argument("-o", "--out", help="output model file (default: model.pt in the run folder)")
    export.add_argument(
        "--dtype", choices=("float64", "float32"), default="float64", help="compute dtype of the exported network"
    )
    export.add_argument(
        "--compress",
        action="store_true",
        help="tabulate the embedding nets (DeepPot-SE only; see mdval compress --help)",
    )
    export.set_defaults(func=_export)


def _train(args) -> int:
    if args.committee is not None:
        return _train_committee(args)
    from mdval.train.config import load_config
    from mdval.train.trainer import Trainer

    try:
        cfg = load_config(args.config, args.overrides or [])
        if args.quiet:
            cfg["training"]["progress"] = False
        summary = Trainer(cfg, resume=args.resume, log=lambda m: print(m, flush=True)).train()
    except (ValueError, FileNotFoundError, KeyError) as error:
        return _fail(error)
    print(json.dumps({k: summary[k] for k in ("model", "stopped_by", "epochs", "steps")}))
    return 0


def _train_committee(args) -> int:
    from mdval.train.committee import train_committee

    try:
        record = train_committee(
            args.config,
            args.committee,
            jobs=args.jobs,
            overrides=args.overrides or [],
            log=lambda m: print(m, flush=True),
        )
    except (ValueError, FileNotFoundError, KeyError) as error:
        return _fail(error)
    models = [str(Path(record["run_dir"]) / member["model"]) for member in record["members"]]
    print(json.dumps({"run_dir": record["run_dir"], "models": models}))
    return 0


def _test(args) -> int:
    from mdval.deploy.evaluate import evaluate_model_file
    from mdval.fileio import write_json
    from mdval.train.parity_plot import parity_plot

    try:
        metrics, pred, meta = evaluate_model_file(args.model, args.data, format=args.format, batch_size=args.batch_size)
    except (ValueError, FileNotFoundError) as error:
        return _fail(error)
    prefix = Path(args.out) if args.out else Path(args.model).with_name(Path(args.model).stem + "_test")
    record = {
        "model": str(args.model),
        "data": [str(d) for d in args.data],
        "activation": meta.get("activation"),
        "optimizer": meta.get("optimizer"),
        **metrics,
    }
    json_path = prefix.with_name(prefix.name + ".json")
    write_json(json_path, record)
    png = parity_plot(
        pred,
        prefix.with_name(prefix.name + "_parity.png"),
        metrics=metrics,
        title=f"{Path(args.model).name} on {', '.join(Path(d).name for d in args.data)}",
    )
    print(f"{metrics['n_frames']} frames, {metrics['n_atoms']} atoms")
    print(
        f"energy  MAE {metrics['energy_mae_meV_per_atom']:.4g}  RMSE "
        f"{metrics['energy_rmse_meV_per_atom']:.4g}  meV/atom"
    )
    if "force_mae_eV_per_A" in metrics:
        print(f"force   MAE {metrics['force_mae_eV_per_A']:.4g}  RMSE {metrics['force_rmse_eV_per_A']:.4g}  eV/Å")
    if "virial_mae_meV_per_atom" in metrics:
        print(
            f"virial  MAE {metrics['virial_mae_meV_per_atom']:.4g}  RMSE "
            f"{metrics['virial_rmse_meV_per_atom']:.4g}  meV/atom"
        )
    print(f"wrote {json_path} and {png}")
    return 0


def _export(args) -> int:
    from mdval.deploy.model_file import export
    from mdval.train.checkpoint import load_checkpoint, model_from_checkpoint

    try:
        state = load_checkpoint(args.checkpoint)
        model = model_from_checkpoint(state)
    except (ValueError, FileNotFoundError, KeyError) as error:
        return _fail(error)
    out = Path(args.out) if args.out else Path(args.checkpoint).resolve().parent.parent / "model.pt"
    meta = {
        "optimizer": state.get("optimizer_name", "none"),
        "training_data": state.get("training_data", {}),
        "metrics": {},
        "training": {"epochs": state.get("epoch"), "steps": state.get("step"), "checkpoint": str(args.checkpoint)},
    }
    if args.compress:
        from mdval.deploy.compress import compress_model

        model, meta["compression"] = compress_model(model)
    path = export(model, out, meta, compute_dtype=args.dtype)
    print(path)
    return 0
