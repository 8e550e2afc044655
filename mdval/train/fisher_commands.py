"""``mdval fisher MODEL DATA``: eigenvalue spectrum of the empirical Fisher matrix of the L1 loss
(Shao et al. 2021) as a histogram (PNG) and summary statistics (JSON)."""

from __future__ import annotations

from mdval.argtypes import HelpFormatter, non_negative_float, non_negative_int, positive_int


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fisher",
        help="Fisher-information spectrum of a model on a data set (PNG histogram + JSON summary)",
        description="Empirical Fisher matrix F = (1/N) sum_n grad l_n grad l_n^T of the per-frame L1 "
        "loss l_n = w_E |dE|/N_atoms + w_F mean|dF| (Shao et al., J. Chem. Phys. 155, 204108); "
        "writes PREFIX.png and PREFIX.json.\n"
        "Example:  mdval fisher runs/cu/model.pt data/cu_emt.xyz --max-frames 200",
        formatter_class=HelpFormatter,
    )
    p.add_argument("model", help="model file (mdval export)")
    p.add_argument("data", help="data file (any format mdval reads)")
    p.add_argument("--format", help="force the data format (default: detected from the file)")
    p.add_argument(
        "--max-frames",
        type=non_negative_int,
        default=200,
        help="use at most this many frames, drawn at random; 0 = all",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=1,
        help="frames per forward pass; 1 = one backward pass per frame's gradient",
    )
    p.add_argument("--seed", type=non_negative_int, default=0, help="frame sampling seed")
    p.add_argument(
        "--energy-weight",
        type=non_negative_float,
        default=1.0,
        help="w_E, weight of the energy error per atom |dE|/N_atoms in eV/atom",
    )
    p.add_argument(
        "--force-weight",
        type=non_negative_float,
        default=1.0,
        help="w_F, weight of the mean force error mean|dF| in eV/Å; 0 = energy only",
    )
    p.add_argument("--out", help="output prefix (default: the model path without suffix + '.fisher')")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_fisher)


def _fisher(args) -> int:
    import datetime as dt
    from pathlib import Path

    import numpy as np

    from mdval import __version__
    from mdval.data.batch import make_batch
    from mdval.data.readers import read_frames
    from mdval.deploy import load
    from mdval.train.fisher import fisher_report

    model = load(args.model)
    if "compression" in model.metadata:
        raise ValueError(
            f"{args.model} is a compressed model (its embedding is a table, not trainable weights); "
            "run mdval fisher on the uncompressed model file"
        )
    frames = read_frames(args.data, args.format, require_forces=args.force_weight != 0, type_names=model.type_names)
    if args.max_frames and len(frames) > args.max_frames:
        pick = np.sort(np.random.default_rng(args.seed).choice(len(frames), args.max_frames, replace=False))
        frames = [frames[i] for i in pick]
    bs = args.batch_size
    batches = (make_batch(frames[k : k + bs], model.type_names, model.cutoff) for k in range(0, len(frames), bs))
    batches = list(batches)
    prefix = (
        Path(args.out)
        if args.out
        else Path(args.model).with_suffix("").with_name(Path(args.model).with_suffix("").name + ".fisher")
    )
    meta = model.metadata
    title = f"{Path(args.model).name}: {meta.get('activation', '')} / {meta.get('optimizer', '?')}"
    summary = fisher_report(
        model,
        batches,
        prefix,
        energy_weight=args.energy_weight,
        force_weight=args.force_weight,
        title=title,
        progress=not args.quiet,
        extra={
            "mdval_version": __version__,
            "date": dt.datetime.now(dt.timezone.utc).isoformat(),
            "seed": args.seed,
            "max_frames": args.max_frames,
            "batch_size": bs,
            "model": str(args.model),
            "data": str(args.data),
            "activation": meta.get("activation"),
            "optimizer": meta.get("optimizer"),
        },
    )
    print(
        f"{summary['n_params']} parameters, {summary['n_samples']} frames: rank {summary['rank']}, "
        f"trace {summary['trace']:.4g}, largest {summary['largest']:.4g}, "
        f"{100 * summary['fraction_near_zero']:.1f}% near zero"
    )
    print(f"wrote {summary['png']} and {summary['json']}")
    return 0
