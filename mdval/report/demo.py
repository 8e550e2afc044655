"""``mdval demo`` (what ``make demo`` runs): the compare workflow on the model zoo.

Runs workflows/cu_demo.toml (packaged: mdval.resources) through
:func:`mdval.report.compare.run_compare`: every zoo model (models/cu/*.pt: tanh, TAAFS
Chebyshev/B-spline/Fourier, IReLU and LAAF activations, trained with Adam or RLEKF) and the
reference (EMT in ASE, Cu_u3.eam in LAMMPS) through NVE, NVT and NPT in the ASE and LAMMPS
engines, two runs at a time. Prints the summary table and the path of the HTML report
(reports/demo/index.html by default) and the wall time.
"""

from __future__ import annotations

import time
from pathlib import Path

from mdval import resources


def run_demo(*, workflow=None, out_dir="reports/demo", jobs: int = 2, resume: bool = True, log=print) -> int:
    """Run the demo; returns the exit code (0 when every run and the report succeeded)."""
    from mdval.md.workflow import load_workflow
    from mdval.report.compare import run_compare

    workflow = Path(workflow) if workflow else resources.path("workflows", "cu_demo.toml")
    wf = load_workflow(workflow)
    if not wf.models:
        raise FileNotFoundError(f"no model files matched {wf.raw.get('models')} in {workflow}; the zoo ships in "
                                "models/cu/*.pt (rebuild it with `make models`)")
    t0 = time.perf_counter()
    log(f"mdval demo: {len(wf.models)} zoo models ({', '.join(Path(m).stem for m in wf.models)}) "
        f"+ reference, {', '.join(s.kind.upper() for s in wf.protocols)} in {' and '.join(wf.engines)}")
    report = run_compare(workflow, out_dir=out_dir, jobs=jobs, resume=resume, log=log)
    wall = time.perf_counter() - t0
    log("")
    log(report["table_text"])
    bad = [p for p in report["parity"] if p["error"]]
    if report["parity"]:
        worst = max((p["force_max_abs_diff_eV_per_A"] or 0.0) for p in report["parity"])
        log(f"\nASE vs LAMMPS single point: max |ΔF| {worst:.2g} eV/Å over {len(report['parity'])} models"
            + (f", {len(bad)} parity check(s) failed" if bad else ""))
    log(f"\nreport: {Path(report['files']['html']).resolve()}")
    log(f"wall time: {wall:.0f} s")
    return 0
