"""Where one DeepPot-SE energy+forces call spends its time, and what three changes would save.

Runs the exported (serving-mode) TorchScript model on fcc Cu (``--cells`` cubic cells, 864 atoms
by default; peer size: embedding [25, 50, 100], axis 16, fitting [240, 240, 240], rcut 6 Å) with
1 thread and the plain TorchScript interpreter (as pair_style taafs does), and reports:

1. the torch.profiler table of one call (top ops by self CPU time);
2. CPU time per call (process time, robust to machine load) of
   - V0: mdval's DeepPotSE as is;
   - V1: V0 with the DeePMD residual ``y + cat([x, x])`` written as a broadcast add (no cat);
   - V2: V1 with the embedding net run directly on the padded [n_local, width] layout, so G is
     never scattered into a padded tensor (no zeros + index_put of [n_local, width, M1], and no
     gather in the backward pass);
   all with identical weights (energies and forces are checked equal);
3. whether the malloc settings of common.MALLOC_ENV help (run the script twice, once under
   ``env MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=17179869184``; ``--malloc`` re-executes itself so).

    .venv/bin/python benchmarks/profile_deeppot.py [--activation tanh] [--cells 6] [--malloc]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

NAME = "profile_deeppot"


def variants(cfg: dict):
    import torch

    from mdval.nn import deeppot as dpmod
    from mdval.nn import mlp as mlpmod
    from mdval.nn.activations import set_first_derivative_only
    from mdval.nn.common import edge_slots

    class DenseV1(mlpmod.Dense):
        def forward(self, x):
            y = self.activation(self.linear(x))
            if self.residual == 1:
                y = y + x
            elif self.residual == 2:
                n = x.shape[-1]
                y = (y.view(-1, 2, n) + x.unsqueeze(1)).view(-1, 2 * n)
            return y

    class DeepPotV2(dpmod.DeepPotSE):
        def forward(self, species, edge_index, edge_vectors, n_local: int):
            centers = edge_index[0]
            r = torch.linalg.vector_norm(edge_vectors, dim=1)
            s = dpmod.smooth_switch(r, self.cutoff_smooth, self.cutoff) / r
            center_species = species[centers]
            rows = torch.cat([s.unsqueeze(1), (s / r).unsqueeze(1) * edge_vectors], dim=1)
            rows = rows / self.row_std[center_species]
            slots, width = edge_slots(centers, n_local)
            # s = 0 in empty slots: their rows are zero, whatever G is there
            s_pad = torch.zeros(n_local, width, dtype=s.dtype).index_put((centers, slots), s)
            sp = species[:n_local].unsqueeze(1)
            s_in = ((s_pad - self.s_mean[sp]) / self.s_std[sp]).reshape(n_local * width, 1)
            m1 = self.embedding_nets[0].n_out
            g = torch.zeros(0)
            for net in self.embedding_nets:  # one species (a sketch: several need masking)
                g = net(s_in)
            g_pad = g.view(n_local, width, m1)
            rows_pad = torch.zeros(n_local, width, 4, dtype=rows.dtype).index_put((centers, slots), rows)
            t = torch.bmm(rows_pad.transpose(1, 2), g_pad) / self.neighbor_norm
            d = torch.bmm(t.transpose(1, 2), t[:, :, : self.axis_neuron])
            return self.fitting(d.reshape(n_local, m1 * self.axis_neuron), species[:n_local])

    out = {}
    for v in range(3):
        saved = mlpmod.Dense.forward
        if v >= 1:
            mlpmod.Dense.forward = DenseV1.forward
        try:
            m = (DeepPotV2 if v == 2 else dpmod.DeepPotSE)(cfg)
            set_first_derivative_only(m, True)
            for p in m.parameters():
                p.requires_grad_(False)
            out[f"V{v}"] = torch.jit.script(m)
        finally:
            mlpmod.Dense.forward = saved
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--activation", default="tanh", help="tanh or a TAAFS family name or spec")
    parser.add_argument("--cells", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--malloc", action="store_true", help="re-run under common.MALLOC_ENV")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.malloc and os.environ.get("MALLOC_MMAP_MAX_") != "0":
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **common.MALLOC_ENV})
    if args.quick:
        args.cells, args.repeats = 3, 2
    import numpy as np
    import torch
    from ase.build import bulk
    from torch.profiler import ProfilerActivity, profile

    from mdval.data.neighbors import neighbor_list

    torch.set_num_threads(1)
    torch._C._set_graph_executor_optimize(False)  # the plugin's plain interpreter
    spec = common.ACTIVATIONS.get(args.activation, args.activation)
    cfg = {**common.PEER_MODEL, "activation": spec}
    models = variants(cfg)
    atoms = bulk("Cu", "fcc", a=common.FCC_CU_A, cubic=True).repeat((args.cells,) * 3)
    atoms.positions += np.random.default_rng(0).normal(0, 0.05, atoms.positions.shape)
    nl = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, cfg["cutoff"])
    ei = torch.from_numpy(np.stack([nl.centers, nl.neighbors])).long()
    vec0 = torch.from_numpy(nl.vectors)
    species = torch.zeros(len(atoms), dtype=torch.long)
    n = len(atoms)

    def step(m):
        v = vec0.clone().requires_grad_(True)
        e = m(species, ei, v, n)
        (g,) = torch.autograd.grad(e.sum(), v)
        return e.detach(), g

    ref = step(models["V0"])
    check = {}
    for k, m in models.items():
        e, g = step(m)
        check[k] = {"max_abs_dE": float((e - ref[0]).abs().max()), "max_abs_dgrad": float((g - ref[1]).abs().max())}
    cpu = {k: [] for k in models}
    for _ in range(args.repeats):
        for k, m in models.items():
            t = time.process_time()
            step(m)
            cpu[k].append(time.process_time() - t)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step(models["V0"])
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
    med = {k: statistics.median(v) for k, v in cpu.items()}
    report = {
        "benchmark": NAME,
        "created": common.now(),
        "machine": common.machine(),
        "versions": common.versions(),
        "load_before": common.load(),
        "load_after": common.load(),
        "activation": spec,
        "atoms": n,
        "edges": int(ei.shape[1]),
        "malloc_env": os.environ.get("MALLOC_MMAP_MAX_") == "0",
        "check": check,
        "cpu_s_per_call": med,
        "samples": cpu,
        "profile_table": table,
    }
    lines = [
        f"# DeepPot-SE call profile: {spec}, {n} atoms ({report['created']})",
        "",
        common.header_line(report),
        "",
        f"Peer-size model, serving mode, 1 thread, plain TorchScript interpreter; "
        f"{'with' if report['malloc_env'] else 'without'} MALLOC_MMAP_MAX_=0. CPU time per "
        f"energy+forces call, median of {args.repeats}, variants interleaved.",
        "",
        "| variant | CPU ms/call | CPU µs/atom | vs V0 | max |ΔE| | max |Δgrad| |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for k, v in med.items():
        lines.append(
            f"| {k} | {v * 1e3:.0f} | {v / n * 1e6:.0f} | {v / med['V0']:.2f} | "
            f"{check[k]['max_abs_dE']:.1e} | {check[k]['max_abs_dgrad']:.1e} |"
        )
    lines += [
        "",
        "V1: residual as broadcast add (no cat). V2: V1 + embedding on the padded layout (no index_put of G).",
        "",
        "Top ops of one V0 call (torch.profiler, self CPU):",
        "",
        "```",
        table.strip(),
        "```",
    ]
    text = "\n".join(lines)
    common.write_results(NAME + ("_malloc" if report["malloc_env"] else ""), report, text, quick=args.quick)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
