"""LAMMPS speed against the peers, side by side in one run (issue 9, item 1).

Subjects, all on the same fcc Cu boxes (300 K, NVE, ``neighbor 1.0 bin``), 1 thread per rank:
- ``pair_style taafs`` with a DeepPot-SE se_e2_a of DeePMD-kit's default size (rcut 6 Å,
  embedding [25, 50, 100], axis 16, fitting [240, 240, 240], float64, tanh; untrained weights,
  which do not change the cost);
- DeePMD-kit 3.2.0 ``pair_style deepmd`` (TensorFlow backend) with the same sizes, trained briefly
  on the same EMT-Cu data (benchmarks/deepmd_model.py), frozen; and the ``dp compress`` model;
- the same taafs models after ``mdval compress`` (embedding nets tabulated, as ``dp compress``
  does for DeePMD-kit), with tanh and with a per-layer Chebyshev TAAFS;
- ``pair_style eam`` (Cu_u3.eam) as the floor.
Cases: 864 and 4000 atoms, 1 and 2 MPI ranks. Within a case the subjects are run interleaved
(A B C D A B C D ...), ``--repeats`` rounds, and the median time per step is reported, as
timesteps/s and µs/atom/step (wall time x ranks is not used: µs/atom/step is wall time per step
per atom, all ranks together).

Target: taafs (tanh) >= 1.0x the throughput of uncompressed DeePMD-kit on the same case.

    .venv/bin/python benchmarks/bench_lammps_peers.py [--quick] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import deepmd_model  # noqa: E402

import common  # noqa: E402

EAM_FILE = Path(metadata.distribution("lammps").locate_file("lammps/share/lammps/potentials/Cu_u3.eam"))
NAME = "lammps_peers"
MALLOC_ENV, tuned_env = common.MALLOC_ENV, common.tuned_env


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 864 atoms, 1 rank, 1 round")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--atoms", type=int, nargs="+", default=[864, 4000])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dp-steps", type=int, default=300, help="DeePMD training steps")
    parser.add_argument(
        "--no-tuned",
        action="store_true",
        help="skip the taafs run in the tuned environment (tuned_env: LD_PRELOAD torch, malloc)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.atoms, args.ranks, args.repeats = [864], [1], 1
    # MD steps per timed run (~5-20 s each on this machine); EAM is ~500x cheaper.
    nn_steps = {864: 3 if args.quick else 10, 4000: 4}
    from mdval.deploy import lammps_plugin

    lammps_plugin.build()
    work = common.RUNS / NAME
    load_before = common.load()
    taafs_model = common.export_model(common.PEER_MODEL, work / "taafs_tanh.pt")
    taafs_pair = f"pair_style taafs threads 1\npair_coeff * * {taafs_model} Cu"
    pairs = {"taafs (tanh)": (taafs_pair, common.LMP, common.MPIRUN, 1)}
    if not args.no_tuned:
        pairs["taafs (tanh), tuned env"] = (taafs_pair, common.LMP, common.MPIRUN, 1)
    cheb = common.export_model(
        {**common.PEER_MODEL, "activation": "taafs:basis=chebyshev1,scope=layer"}, work / "taafs_cheb1.pt"
    )
    for label, model in (("tanh", taafs_model), ("chebyshev1 TAAFS", cheb)):
        compressed = common.compressed_model(model)
        pairs[f"taafs ({label}, compressed)" + ("" if args.no_tuned else ", tuned env")] = (
            f"pair_style taafs threads 1\npair_coeff * * {compressed} Cu",
            common.LMP,
            common.MPIRUN,
            1,
        )
    dp_status, dp_error = None, None
    try:
        dp_status = deepmd_model.prepare(args.dp_steps)
        dp_bin = deepmd_model.DEEPMD_VENV / "bin"
        pairs["deepmd"] = (
            f"pair_style deepmd {dp_status['frozen']}\npair_coeff * *",
            str(dp_bin / "lmp"),
            str(dp_bin / "mpirun"),
            1,
        )
        if dp_status.get("compressed"):
            pairs["deepmd (compressed)"] = (
                f"pair_style deepmd {dp_status['compressed']}\npair_coeff * *",
                str(dp_bin / "lmp"),
                str(dp_bin / "mpirun"),
                1,
            )
    except Exception as exc:  # noqa: BLE001 - reported in the results
        dp_error = f"{type(exc).__name__}: {exc}"
        print("DeePMD-kit unavailable:", dp_error, flush=True)
    pairs["eam (Cu_u3)"] = (f"pair_style eam\npair_coeff 1 1 {EAM_FILE}", common.LMP, common.MPIRUN, 100)

    rows, errors = [], {}
    for n_atoms in args.atoms:
        cells = common.fcc_cells(n_atoms)
        for nprocs in args.ranks:
            print(f"case {n_atoms} atoms, {nprocs} rank(s)", flush=True)
            subjects = {}
            for label, (pair, lmp, mpirun, mult) in pairs.items():
                steps = nn_steps.get(n_atoms, 4) * mult
                script = common.cu_script(pair, cells, steps, warmup=2)
                slug = "".join(c if c.isalnum() else "_" for c in label).strip("_")
                d = work / f"{slug}_{n_atoms}_{nprocs}"
                env = tuned_env() if "tuned" in label else None
                subjects[label] = lambda s=script, d=d, lmp=lmp, mpirun=mpirun, env=env, n=n_atoms, p=nprocs: (
                    common.lmp_per_step(s, d, n, nprocs=p, lmp=lmp, mpirun=mpirun, env=env)
                )
            samples, errs = common.interleaved(subjects, args.repeats)
            errors.update({f"{k} @ {n_atoms} atoms, {nprocs} ranks": v for k, v in errs.items()})
            for label, xs in samples.items():
                wall, cpu = common.median(common.pick(xs, "wall")), common.median(common.pick(xs, "cpu"))
                if wall is None:
                    continue
                rows.append(
                    {
                        "pair_style": label,
                        "atoms": n_atoms,
                        "ranks": nprocs,
                        "steps": nn_steps.get(n_atoms, 4) * pairs[label][3],
                        "samples_s_per_step": xs,
                        "timesteps_per_s": 1.0 / wall,
                        "us_per_atom_step": wall / n_atoms * 1e6,
                        "cpu_timesteps_per_s": 1.0 / cpu if cpu else None,
                        "cpu_us_per_atom_step": cpu / n_atoms * 1e6 if cpu else None,
                        "spread": common.spread(common.pick(xs, "wall")),
                    }
                )
    # ratios against uncompressed DeePMD-kit, per case
    for r in rows:
        ref = next(
            (x for x in rows if x["pair_style"] == "deepmd" and x["atoms"] == r["atoms"] and x["ranks"] == r["ranks"]),
            None,
        )
        r["throughput_vs_deepmd"] = (r["timesteps_per_s"] / ref["timesteps_per_s"]) if ref else None
        r["cpu_throughput_vs_deepmd"] = (
            r["cpu_timesteps_per_s"] / ref["cpu_timesteps_per_s"]
            if ref and ref["cpu_timesteps_per_s"] and r["cpu_timesteps_per_s"]
            else None
        )
    report = {
        "benchmark": NAME,
        "created": common.now(),
        "machine": common.machine(),
        "versions": common.versions(),
        "deepmd_versions": common.deepmd_versions(),
        "load_before": load_before,
        "load_after": common.load(),
        "threads_per_rank": 1,
        "repeats": args.repeats,
        "model": common.PEER_MODEL,
        "taafs_weights": "untrained",
        "deepmd": dp_status,
        "deepmd_error": dp_error,
        "errors": errors,
        "results": rows,
        "target": "taafs (tanh) >= 1.0x deepmd throughput",
    }
    md = markdown(report)
    common.write_results(NAME, report, md, quick=args.quick)
    print(md)
    return 0


def markdown(rep: dict) -> str:
    dv = rep["deepmd_versions"]
    lines = [
        f"# LAMMPS speed: pair_style taafs vs DeePMD-kit vs EAM ({rep['created']})",
        "",
        common.header_line(rep)
        + (
            f"; DeePMD-kit {dv.get('deepmd-kit')} (TF {dv.get('tensorflow-cpu')}, its LAMMPS {dv.get('lammps')})"
            if dv
            else "; DeePMD-kit not available"
        ),
        "",
        "se_e2_a, rcut 6 Å, embedding [25, 50, 100], axis 16, fitting [240, 240, 240], float64; "
        "fcc Cu 300 K NVE; 1 thread per rank; subjects interleaved, median of "
        f"{rep['repeats']} runs. mdval weights untrained; DeePMD trained "
        f"{(rep['deepmd'] or {}).get('steps', '?')} steps on EMT Cu (speed only).",
        "",
        "| pair_style | atoms | ranks | timesteps/s | µs/atom/step | vs deepmd | CPU µs/atom/step "
        "| vs deepmd (CPU) | spread |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rep["results"]:
        lines.append(
            f"| {r['pair_style']} | {r['atoms']} | {r['ranks']} | {common.fmt(r['timesteps_per_s'])} | "
            f"{common.fmt(r['us_per_atom_step'])} | {common.fmt(r['throughput_vs_deepmd'])}× | "
            f"{common.fmt(r['cpu_us_per_atom_step'])} | {common.fmt(r['cpu_throughput_vs_deepmd'])}× | "
            f"{common.fmt(r['spread'], 2)} |"
        )
    lines += [
        "",
        "Target: taafs (tanh) ≥ 1.0× uncompressed DeePMD-kit throughput. µs/atom/step is wall time; "
        "'CPU µs/atom/step' is wall × LAMMPS' 'CPU use' of rank 0, i.e. the time on a core of its own "
        "(robust to the machine's load; with 2 ranks it assumes 2 free cores). 'spread' = (max − min)/median "
        "of the wall times. 'tuned env': the same model and lmp with LD_PRELOAD=<torch>/lib/libtorch_cpu.so "
        "(the lammps wheel's liblammps.so exports a reference BLAS whose dgemm_ otherwise shadows torch's "
        "MKL dgemm_ inside lmp) and "
        + " ".join(f"{k}={v}" for k, v in MALLOC_ENV.items())
        + " (glibc keeps freed blocks, so the model's ~50 MB intermediates are not page-faulted in every step).",
    ]
    if rep["deepmd"] and rep["deepmd"].get("compress_error"):
        lines += ["", "dp compress failed: `" + rep["deepmd"]["compress_error"].strip().splitlines()[-1] + "`"]
    if rep["deepmd_error"]:
        lines += ["", f"DeePMD-kit not run: {rep['deepmd_error']}"]
    for k, v in rep["errors"].items():
        lines += ["", f"Error, {k}: `{v.splitlines()[0][:300]}`"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
