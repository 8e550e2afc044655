"""``mdval compress``: tabulate the embedding nets of a DeepPot-SE model file (like ``dp compress``).

The compressed file keeps ABI v1 and the same metadata, plus a ``compression`` entry (method,
grid, the measured interpolation error). The ASE calculator and ``pair_style taafs`` read it like
any other model file. See mdval/nn/tabulated.py for the method and its accuracy.
"""

from __future__ import annotations

import os
from pathlib import Path

from mdval.argtypes import HelpFormatter

# torch is imported inside the functions, so that `mdval --help` stays fast.


def compress_model(model, *, r_min: float = 0.5, tolerance: float = 1e-10):
    """(tabulated eager model, report dict) of an eager DeepPot-SE model."""
    from mdval.nn.tabulated import tabulate

    return tabulate(model, r_min=r_min, tolerance=tolerance)


def compress_file(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    r_min: float = 0.5,
    tolerance: float = 1e-10,
    compute_dtype: str | None = None,
) -> tuple[Path, dict]:
    """Write the compressed model of the model file ``path`` to ``out``; returns (out, report).

    ``compute_dtype`` defaults to that of the input file; the input must be a float64 file (the
    table is built from float64 weights).
    """
    from mdval.deploy.model_file import ModelFileError, export, load
    from mdval.nn.build import build_model

    model_file = load(path)
    meta = dict(model_file.metadata)
    if "compression" in meta:
        raise ModelFileError(f"{path} is already compressed ({meta['compression'].get('method')})")
    if meta.get("architecture") != "deeppot_se":
        raise ModelFileError(
            f"{path}: only DeepPot-SE models can be compressed (they have an embedding net), "
            f"this one is {meta.get('architecture')!r}"
        )
    if meta["compute_dtype"] != "float64":
        raise ModelFileError(
            f"{path} runs in {meta['compute_dtype']}; compress the float64 model file instead "
            "and pass --dtype float32 to `mdval compress`"
        )
    if "config" not in meta:
        raise ModelFileError(f"{path}: metadata has no model config, so the model cannot be rebuilt")
    model = build_model(meta["config"])
    missing, unexpected = model.load_state_dict(model_file.module.state_dict(), strict=False)
    if missing or unexpected:
        raise ModelFileError(
            f"{path}: its weights do not match its config (missing {missing}, unexpected "
            f"{unexpected}); re-export it with `mdval export CHECKPOINT`"
        )
    tabulated, report = compress_model(model, r_min=r_min, tolerance=tolerance)
    meta["compression"] = report
    written = export(tabulated, out, meta, compute_dtype=compute_dtype or meta["compute_dtype"])
    return written, report


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compress",
        help="tabulate the embedding nets of a DeepPot-SE model file (faster MD, any activation)",
        description="Tabulate the embedding nets of a DeepPot-SE model file (like dp compress). The "
        "compressed file keeps ABI v1 and the same metadata, plus a 'compression' entry (method, "
        "grid, the measured interpolation error); the ASE calculator and pair_style taafs read it "
        "like any other model file. Method and accuracy: mdval/nn/tabulated.py.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("model", help="model file (.pt) written by mdval export")
    p.add_argument("-o", "--out", required=True, help="compressed model file to write")
    p.add_argument("--r-min", type=float, default=0.5, help="pairs closer than this distance in Å use the exact nets")
    p.add_argument("--tolerance", type=float, default=1e-10, help="largest interpolation error, relative to max |G|")
    p.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        help="compute dtype of the written model (default: that of the input)",
    )
    p.set_defaults(func=_compress)


def _compress(args) -> int:
    written, report = compress_file(
        args.model, args.out, r_min=args.r_min, tolerance=args.tolerance, compute_dtype=args.dtype
    )
    print(
        f"{written}: {report['n_intervals']} intervals of {report['step_per_angstrom']:.3g} 1/Å "
        f"up to r_min {report['r_min_angstrom']} Å, max relative error "
        f"{report['max_relative_error']:.1e}, table {report['table_megabytes']:.1f} MB"
    )
    return 0
