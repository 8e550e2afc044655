"""The 0 K lattice constant and density of the reference and of every zoo model (issue 17).

    .venv/bin/python benchmarks/lattice_check.py [--reference lammps:Cu_u3.eam] [--models models/cu/*.pt] [--quick]

For each potential, mdval.md.lattice.equilibrium_lattice fits E(V) of perfect fcc Cu (Birch-
Murnaghan, ±1 % strain, 21 points) and gives a0 (Å), the 0 K density ρ0 (g/cm³), the bulk
modulus B (GPa) and E0 (eV/atom); each model's relative density error at 0 K against the
reference, 100·(ρ0 − ρ0_ref)/ρ0_ref (%), is the number an NPT run at low temperature must
reproduce (tests/test_lattice.py). Every ± is the fit's grid sensitivity (mdval/md/lattice.py),
not a statistical error: the numbers are deterministic. Writes results/lattice_check.json and
.md (``--quick``: the reference and the first model, results/lattice_check_quick.*).
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mdval.md.lattice import equilibrium_lattice  # noqa: E402
from mdval.md.observables import relative_difference_percent  # noqa: E402

import common  # noqa: E402

REFERENCE = "lammps:Cu_u3.eam"
MODELS = str(common.ROOT / "models" / "cu" / "*.pt")


def row(label: str, fit, reference) -> dict:
    error = relative_difference_percent(fit.density, reference.density) if reference is not None else None
    return {
        **fit.as_json(),
        "potential": label,
        "density_error_percent": error.as_json() if error is not None else None,
    }


def markdown(report: dict) -> str:
    lines = [
        "# 0 K lattice constant and density (lattice_check.py)",
        "",
        common.header_line(report),
        "",
        f"fcc Cu, Birch-Murnaghan fit of E(V) over ±1 % strain (21 points); reference {report['reference']}. "
        "Each ± is the largest change of the fit with twice the grid spacing or half the range "
        "(deterministic numbers: no sampling error).",
        "",
        "| potential | a0 (Å) | ρ0 (g/cm³) | Δρ0 vs reference (%) | B (GPa) | E0 (eV/atom) |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        error = r["density_error_percent"]
        lines.append(
            f"| {r['potential']} | {r['a0_A']['value']:.5f} ± {r['a0_A']['stderr']:.1g} "
            f"| {r['density_g_cm3']['value']:.5f} "
            f"| {'–' if error is None else format(error['value'], '+.3f')} "
            f"| {r['bulk_modulus_GPa']['value']:.1f} ± {r['bulk_modulus_GPa']['stderr']:.1g} "
            f"| {r['energy_eV_per_atom']['value']:.4f} |"
        )
    lines += [
        "",
        f"Largest fit error of a0: {max(r['a0_A']['stderr'] for r in report['rows']):.1g} Å "
        f"(required: < 1e-4 Å); {report['seconds']:.0f} s in all.",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default=REFERENCE, help="the reference potential spec (default %(default)s)")
    parser.add_argument("--models", default=MODELS, help="a glob of model files (default: the zoo)")
    parser.add_argument("--quick", action="store_true", help="the reference and the first model only")
    args = parser.parse_args(argv)
    models = sorted(glob.glob(args.models))
    if not models:
        parser.error(f"--models {args.models} matches no file; give a glob of model files, e.g. models/cu/*.pt")
    models = models[:1] if args.quick else models
    report = {
        "benchmark": "lattice_check",
        "created": common.now(),
        "machine": common.machine(),
        "versions": common.versions(),
        "load_before": common.load(),
        "reference": args.reference,
    }
    start = time.perf_counter()
    reference = equilibrium_lattice(args.reference)
    rows = []
    print(f"{'potential':<20} {'a0 (Å)':>11} {'rho0 (g/cm3)':>13} {'drho0 (%)':>10} {'B (GPa)':>8} {'E0 (eV)':>9}")
    for label, spec in [(args.reference, None)] + [(Path(m).stem, m) for m in models]:
        fit = reference if spec is None else equilibrium_lattice(spec)
        rows.append(row(label, fit, None if spec is None else reference))
        error = rows[-1]["density_error_percent"]
        print(
            f"{label:<20} {fit.a0.value:11.5f} {fit.density.value:13.5f} "
            f"{'–' if error is None else format(error['value'], '+.3f'):>10} {fit.bulk_modulus.value:8.1f} "
            f"{fit.energy_per_atom.value:9.4f}",
            flush=True,
        )
    report.update(rows=rows, seconds=time.perf_counter() - start, load_after=common.load())
    common.write_results("lattice_check", report, markdown(report), quick=args.quick, section=False)
    suffix = "_quick" if args.quick else ""
    print(f"wrote {common.RESULTS_DIR / f'lattice_check{suffix}.json'} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
