"""``anatosynth benchmark train-step``: one AnatoMaskGAN training step (D + G) per ablation variant.

Times the four variants of the paper's Table II (SPADE; +GNN-SIF; +3D-SNI; +G-TC) at the same size
in one run, each in its own child process (so peak memory is per variant), and prints the median
step time (wall clock and CPU time of all threads), the ratios to the SPADE baseline, parameter
counts and peak resident memory.  On a shared machine the wall clock drifts between runs by tens
of per cent; the CPU-time ratio is the steadier figure.  The VGG
term is off for every variant (its weights cannot be downloaded here, and it costs the same in all
four).  Target: full AnatoMaskGAN <= 1.25 x SPADE at n = 16 slices, 128 x 128, on CPU.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import time

HELP = "time one AnatoMaskGAN training step (D + G) per ablation variant against the SPADE baseline"

VARIANTS = {
    "spade": {"use_gnn_sif": False, "use_noise3d": False, "lambda_gtc": 0.0},
    "+gnn_sif": {"use_gnn_sif": True, "use_noise3d": False, "lambda_gtc": 0.0},
    "+noise3d": {"use_gnn_sif": True, "use_noise3d": True, "lambda_gtc": 0.0},
    "+gtc (AnatoMaskGAN)": {"use_gnn_sif": True, "use_noise3d": True, "lambda_gtc": 10.0},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-slices", type=int, default=16, help="slices per stack n (default 16)")
    parser.add_argument("--size", type=int, default=128, help="slice size H = W (default 128)")
    parser.add_argument("--classes", type=int, default=36, help="mask classes incl. background (default 36)")
    parser.add_argument("--base-channels", type=int, default=64, help="generator channel unit (default 64)")
    parser.add_argument("--batch", type=int, default=1, help="stacks per batch (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per variant (default 3)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")


def _measure(name: str, args: argparse.Namespace, queue: mp.Queue) -> None:
    import torch

    from anatosynth_components.anatomask import (
        AnatoMaskDiscriminator,
        AnatoMaskGenerator,
        AnatoMaskLoss,
        GTCClassifier,
        GTCLoss,
        anatomask_train_step,
    )

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg, k, n, s = VARIANTS[name], args.classes, args.num_slices, args.size
    g = AnatoMaskGenerator(k, n, (s, s), args.base_channels, use_gnn_sif=cfg["use_gnn_sif"],
                           use_noise3d=cfg["use_noise3d"])  # fmt: skip
    d = AnatoMaskDiscriminator(k)
    gtc = GTCLoss(GTCClassifier(k)) if cfg["lambda_gtc"] else None
    loss = AnatoMaskLoss(lambda_vgg=0.0, lambda_gtc=cfg["lambda_gtc"], gtc=gtc)
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.1, 0.9))
    opt_d = torch.optim.Adam(
        list(d.parameters()) + (list(gtc.parameters()) if gtc else []), 2e-4, betas=(0.1, 0.9)
    )
    labels = (
        torch.randint(0, k, (args.batch, n, s // 16, s // 16))
        .repeat_interleave(16, -1)
        .repeat_interleave(16, -2)
    )
    masks = torch.nn.functional.one_hot(labels, k).permute(0, 4, 1, 2, 3).float()
    images = torch.rand(args.batch, 1, n, s, s)
    z = torch.arange(n).repeat(args.batch, 1)
    times, cpu = [], []
    for i in range(args.repeats + 1):  # the first step warms up
        start, start_cpu = time.perf_counter(), time.process_time()
        anatomask_train_step(masks, images, z, g, d, loss, opt_g, opt_d)
        if i:
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    params = (sum(p.numel() for p in g.parameters()), sum(p.numel() for p in d.parameters()))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(
        (name, statistics.median(times), statistics.median(cpu), params, peak_mb, torch.get_num_threads())
    )


def run(args: argparse.Namespace) -> int:
    ctx = mp.get_context("spawn")
    print(
        f"one D + G step, n = {args.num_slices} slices, {args.size} x {args.size}, {args.classes} classes, "
        f"base channels {args.base_channels}, batch {args.batch}, median of {args.repeats} steps, no VGG",
        flush=True,
    )
    results = {}
    for name in VARIANTS:
        queue = ctx.Queue()
        proc = ctx.Process(target=_measure, args=(name, args, queue))
        proc.start()
        results[name] = queue.get()
        proc.join()
        _, t, c, (pg, pd), mem, threads = results[name]
        base, base_cpu = results["spade"][1:3]
        line = f"  {name:20s} wall {t:6.1f} s x{t / base:5.2f}   CPU {c:6.1f} s x{c / base_cpu:5.2f}   "
        line += f"G {pg / 1e6:6.1f} M  D {pd / 1e6:4.1f} M  peak RSS {mem:6.0f} MB  ({threads} threads)"
        print(line, flush=True)
    full, spade = results["+gtc (AnatoMaskGAN)"], results["spade"]
    print(
        f"AnatoMaskGAN / SPADE step: wall {full[1] / spade[1]:.2f}, CPU {full[2] / spade[2]:.2f} "
        "(target <= 1.25)"
    )
    return 0
