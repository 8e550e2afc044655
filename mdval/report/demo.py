"""``mdval demo`` (what ``make demo`` runs): the compare workflow on the model zoo.

The demo is workflows/cu_demo.toml (packaged: mdval.resources): every zoo model (models/cu/*.pt:
tanh, TAAFS Chebyshev/B-spline/Fourier, IReLU and LAAF activations, trained with Adam or RLEKF)
and the reference (their teacher Cu_u3.eam, in both engines) through NVE, NVT and NPT in the ASE and
LAMMPS engines, two runs at a time. mdval/report/commands.py runs it (mdval.md.matrix.run_matrix)
and renders it (mdval.report.compare.write_report); this module holds what only the demo says:
which workflow, the opening line, and the closing summary (the table and "At a glance", the
ASE/LAMMPS parity, the paths of the HTML report, reports/demo/index.html by default, and of its
summary JSON, report.json beside it, and the wall time).
"""

from __future__ import annotations

from pathlib import Path

from mdval import resources


def workflow_path(given=None) -> Path:
    """The demo's workflow spec: ``given``, or the packaged cu_demo.toml."""
    return Path(given) if given else resources.path("workflows", "cu_demo.toml")


def check_models(workflow, path) -> None:
    """Raise FileNotFoundError (with the fix) when the workflow's model patterns matched no file."""
    if not workflow.models:
        raise FileNotFoundError(
            f"no model files matched {workflow.raw.get('models')} in {path}; the zoo ships in "
            "models/cu/*.pt (rebuild it with `make models`)"
        )


def opening_line(workflow) -> str:
    return (
        f"mdval demo: {len(workflow.models)} zoo models ({', '.join(Path(m).stem for m in workflow.models)}) "
        f"+ reference, {', '.join(s.kind.upper() for s in workflow.protocols)} in {' and '.join(workflow.engines)}"
    )


def closing_text(report: dict, wall_s: float) -> str:
    """The table and verdicts, the worst ASE/LAMMPS force difference, the paths of the report and
    of its summary JSON, and the wall time in s."""
    lines = ["", report["table_text"]]
    parity = [p for p in report["parity"] if p.get("role") != "reference"]
    if parity:
        bad = [p for p in parity if p["error"]]
        worst = max((p["force_max_abs_diff_eV_per_A"] or 0.0) for p in parity)
        lines.append(
            f"\nASE vs LAMMPS single point: max |ΔF| {worst:.2g} eV/Å over {len(parity)} models"
            + (f", {len(bad)} parity check(s) failed" if bad else "")
        )
    for p in report["parity"]:
        if p.get("role") == "reference":
            lines.append(
                "the reference's own ASE vs LAMMPS check: "
                + (
                    p["error"]
                    or f"max |ΔF| {p['force_max_abs_diff_eV_per_A']:.2g} eV/Å, |ΔE| {p['energy_abs_diff_eV']:.2g} eV"
                )
            )
    lines += [
        f"\nreport: {Path(report['files']['html']).resolve()}",
        f"summary JSON: {Path(report['files']['json']).resolve()}",
        f"wall time: {wall_s:.0f} s",
    ]
    return "\n".join(lines)
