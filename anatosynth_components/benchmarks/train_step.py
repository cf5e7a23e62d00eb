"""``anatosynth benchmark train-step``: one AnatoMaskGAN training step (D + G) against SPADE's.

Default mode: the four variants of the paper's Table II (SPADE; +GNN-SIF; +3D-SNI; +G-TC) at the
same size in one run, each in its own child process (so peak memory is per variant), with the
median step time (wall clock and CPU time of all threads), the ratios to the SPADE baseline,
parameter counts and peak resident memory.  On a shared machine the wall clock drifts between runs
by tens of per cent; the CPU-time ratio is the steadier figure.  The VGG term is off for every
variant (it costs the same in all four).  Target: full AnatoMaskGAN <= 1.25 x SPADE at n = 16
slices, 128 x 128, on CPU.

``--paper-size``: the step users train, at the bundles' defaults (224 x 224, n = 5 slices, 36
classes, 64 base channels, channel_mults (16, 16, 8, 4, 2, 1), SPADE hidden 128, discriminator 64
channels x 3 layers, a batch of the bundles' ``batch_size`` stacks) for SPADE (no GNN-SIF, no 3D-SNI,
no G-TC) and the full AnatoMaskGAN, each with ``amp`` off and on (the trainer's
:class:`~anatosynth_components.engines.precision.Precision`: bfloat16 autocast on a CPU and on GPUs
that support it), every configuration in its own child process.  Printed per configuration: the
median step time, the peak memory (CUDA: ``torch.cuda.max_memory_allocated``, everything the step
holds; CPU: the growth of the resident set during the steps over what the process held before
them, i.e. activations, gradients, optimizer state and allocator slack: an upper-bound proxy of
what the step adds on a GPU), and the share of the step spent drawing 3D-SNI noise (every
``NoiseInjection3D.noise`` call timed, synchronised on CUDA); then AnatoMaskGAN / SPADE per ``amp``.  Targets,
printed with PASS / FAIL: noise <= 5% of a step, AnatoMaskGAN <= 1.25 x SPADE.  The VGG19 term is on
when torchvision's weights are cached (``--vgg auto``); ``--vgg random`` runs it with random weights
of the same architecture (the same time and memory, for sizing a GPU without the download).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import queue as queue_module
import resource
import statistics
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

HELP = (
    "time one AnatoMaskGAN training step (D + G) against the SPADE baseline (--paper-size: the bundles' size)"
)

VARIANTS = {
    "spade": {"use_gnn_sif": False, "use_noise3d": False, "lambda_gtc": 0.0},
    "+gnn_sif": {"use_gnn_sif": True, "use_noise3d": False, "lambda_gtc": 0.0},
    "+noise3d": {"use_gnn_sif": True, "use_noise3d": True, "lambda_gtc": 0.0},
    "+gtc (AnatoMaskGAN)": {"use_gnn_sif": True, "use_noise3d": True, "lambda_gtc": 10.0},
}

#: the two networks of ``--paper-size``
PAPER_VARIANTS = {
    "SPADE": {"use_gnn_sif": False, "use_noise3d": False, "lambda_gtc": 0.0},
    "AnatoMaskGAN": {"use_gnn_sif": True, "use_noise3d": True, "lambda_gtc": 10.0},
}

#: the defaults of the anatomask bundles' train.json (tests keep them equal); ``batch`` is ``batch_size``
PAPER = {
    "num_slices": 5,
    "size": 224,
    "classes": 36,
    "base_channels": 64,
    "channel_mults": (16, 16, 8, 4, 2, 1),
    "spade_hidden": 128,
    "disc_channels": 64,
    "disc_layers": 3,
    "batch": 4,
    "lambda_vgg": 5.0,
}

#: the default mode's values of the options both modes share
DEFAULTS = {"num_slices": 16, "size": 128, "classes": 36, "base_channels": 64, "batch": 1}

#: targets of --paper-size
NOISE_SHARE_TARGET = 0.05
RATIO_TARGET = 1.25


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--paper-size",
        action="store_true",
        help="the bundles' default size and batch, SPADE vs AnatoMaskGAN, amp off and on",
    )
    parser.add_argument("--num-slices", type=int, help="slices per stack n (default 16; paper size 5)")
    parser.add_argument("--size", type=int, help="slice size H = W (default 128; paper size 224)")
    parser.add_argument("--classes", type=int, help="mask classes incl. background (default 36)")
    parser.add_argument("--base-channels", type=int, help="generator channel unit (default 64)")
    parser.add_argument(
        "--batch",
        type=int,
        help=f"stacks per step (default 1; paper size: the bundles' batch_size {PAPER['batch']})",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per configuration (default 3)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    paper = parser.add_argument_group("--paper-size options")
    paper.add_argument(
        "--channel-mults", type=int, nargs="+", help="channels per level (default 16 16 8 4 2 1)"
    )
    paper.add_argument("--spade-hidden", type=int, help="SPADE hidden channels (default 128)")
    paper.add_argument("--disc-channels", type=int, help="discriminator channels (default 64)")
    paper.add_argument("--disc-layers", type=int, help="discriminator layers (default 3)")
    paper.add_argument(
        "--warmup", type=int, default=1, help="untimed steps before the timed ones (default 1)"
    )
    paper.add_argument(
        "--amp", choices=("both", "off", "on"), default="both", help="amp settings to run (default both)"
    )
    paper.add_argument(
        "--variants",
        choices=("both", "spade", "anatomaskgan"),
        default="both",
        help="networks to run (default both)",
    )
    paper.add_argument(
        "--vgg",
        choices=("auto", "off", "random"),
        default="auto",
        help="VGG19 term: on when its weights are cached (auto), off, or random weights of the "
        "same architecture (time and memory only)",
    )
    paper.add_argument("--device", help="cuda or cpu (default: cuda when available)")


def _option(args: argparse.Namespace, key: str, default: Any) -> Any:
    value = getattr(args, key, None)
    return default if value is None else value


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
    cfg = VARIANTS[name]
    k, n, s = (_option(args, key, DEFAULTS[key]) for key in ("classes", "num_slices", "size"))
    batch, base = (
        _option(args, "batch", DEFAULTS["batch"]),
        _option(args, "base_channels", DEFAULTS["base_channels"]),
    )
    g = AnatoMaskGenerator(k, n, (s, s), base, use_gnn_sif=cfg["use_gnn_sif"], use_noise3d=cfg["use_noise3d"])
    d = AnatoMaskDiscriminator(k)
    gtc = GTCLoss(GTCClassifier(k)) if cfg["lambda_gtc"] else None
    loss = AnatoMaskLoss(lambda_vgg=0.0, lambda_gtc=cfg["lambda_gtc"], gtc=gtc)
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.1, 0.9))
    opt_d = torch.optim.Adam(
        list(d.parameters()) + (list(gtc.parameters()) if gtc else []), 2e-4, betas=(0.1, 0.9)
    )
    masks, images, z = _batch(batch, k, n, s, torch.device("cpu"))
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


def _batch(batch: int, k: int, n: int, s: int, device: Any) -> tuple[Any, Any, Any]:
    """Random label stacks of blocks (one-hot), random images and contiguous z indices."""
    import torch

    block = max(1, s // 14)
    labels = torch.randint(0, k, (batch, n, -(-s // block), -(-s // block)))
    labels = labels.repeat_interleave(block, -1).repeat_interleave(block, -2)[..., :s, :s]
    masks = torch.nn.functional.one_hot(labels, k).permute(0, 4, 1, 2, 3).float().to(device)
    images = torch.rand(batch, 1, n, s, s).to(device)
    z = (torch.randint(0, 150, (batch, 1)) + torch.arange(n)).to(device)
    return masks, images, z


def run(args: argparse.Namespace) -> int:
    if getattr(args, "paper_size", False):
        return run_paper_size(args)
    ctx = mp.get_context("spawn")
    k, n, s = (_option(args, key, DEFAULTS[key]) for key in ("classes", "num_slices", "size"))
    batch, base = (
        _option(args, "batch", DEFAULTS["batch"]),
        _option(args, "base_channels", DEFAULTS["base_channels"]),
    )
    print(
        f"one D + G step, n = {n} slices, {s} x {s}, {k} classes, "
        f"base channels {base}, batch {batch}, median of {args.repeats} steps, no VGG",
        flush=True,
    )
    results = {}
    for name in VARIANTS:
        queue = ctx.Queue()
        proc = ctx.Process(target=_measure, args=(name, args, queue))
        proc.start()
        proc.join()
        try:
            results[name] = queue.get(timeout=10)
        except queue_module.Empty:
            print(f"  {name:20s} FAILED: the child process exited with {proc.exitcode}", flush=True)
            return 1
        _, t, c, (pg, pd), mem, threads = results[name]
        base_t, base_cpu = results["spade"][1:3]
        line = f"  {name:20s} wall {t:6.1f} s x{t / base_t:5.2f}   CPU {c:6.1f} s x{c / base_cpu:5.2f}   "
        line += f"G {pg / 1e6:6.1f} M  D {pd / 1e6:4.1f} M  peak RSS {mem:6.0f} MB  ({threads} threads)"
        print(line, flush=True)
    full, spade = results["+gtc (AnatoMaskGAN)"], results["spade"]
    print(
        f"AnatoMaskGAN / SPADE step: wall {full[1] / spade[1]:.2f}, CPU {full[2] / spade[2]:.2f} "
        "(target <= 1.25)"
    )
    return 0


# --- --paper-size ------------------------------------------------------------------------------------


def paper_config(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--paper-size`` settings: :data:`PAPER`, with any size option given on the command line."""
    import torch

    cfg = dict(PAPER)
    for key in (
        "num_slices",
        "size",
        "classes",
        "base_channels",
        "channel_mults",
        "spade_hidden",
        "disc_channels",
        "disc_layers",
        "batch",
    ):
        value = getattr(args, key, None)
        if value is not None:
            cfg[key] = tuple(value) if key == "channel_mults" else int(value)
    cfg["device"] = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cfg["repeats"], cfg["warmup"] = max(1, int(args.repeats)), max(0, int(args.warmup))
    cfg["threads"] = args.threads
    return cfg


def _vgg_weights(mode: str, folder: Path) -> tuple[str | None, str]:
    """(weights file for ``VGG19Loss`` or None, what the header says about VGG)."""
    from anatosynth_components.anatomask.vgg import vgg19_weights_path

    cached = vgg19_weights_path()
    if mode == "off":
        return None, "VGG off (--vgg off)"
    if mode == "auto":
        if cached.is_file():
            return str(cached), f"VGG on ({cached})"
        return None, f"VGG off: its weights are not cached at {cached} (--vgg random sizes the step with it)"
    import torch
    from torchvision.models import vgg19

    path = folder / "vgg19_random.pth"
    torch.save(vgg19(weights=None).state_dict(), path)
    return str(path), "VGG on with random weights (--vgg random: time and memory only)"


def _measure_paper(
    variant: str, amp: bool, cfg: dict[str, Any], vgg_path: str | None, queue: mp.Queue
) -> None:
    try:
        queue.put(_paper_step(variant, amp, cfg, vgg_path))
    except BaseException as err:  # noqa: BLE001 - reported by the parent (out of memory, most often)
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        queue.put({"error": f"{type(err).__name__}: {first}", "trace": traceback.format_exc()})


def _paper_step(variant: str, amp: bool, cfg: dict[str, Any], vgg_path: str | None) -> dict[str, Any]:
    import torch

    from anatosynth_components.anatomask import (
        AnatoMaskDiscriminator,
        AnatoMaskGenerator,
        AnatoMaskLoss,
        GTCClassifier,
        GTCLoss,
        NoiseInjection3D,
        VGG19Loss,
        anatomask_train_step,
    )
    from anatosynth_components.benchmarks.inference import PeakMeter
    from anatosynth_components.engines.precision import Precision

    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    device = torch.device(cfg["device"])
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.manual_seed(0)
    net, k, n, s = PAPER_VARIANTS[variant], cfg["classes"], cfg["num_slices"], cfg["size"]
    g = AnatoMaskGenerator(
        k,
        n,
        (s, s),
        base_channels=cfg["base_channels"],
        channel_mults=cfg["channel_mults"],
        use_gnn_sif=net["use_gnn_sif"],
        use_noise3d=net["use_noise3d"],
        spade_hidden=cfg["spade_hidden"],
    ).to(device)
    d = AnatoMaskDiscriminator(k, num_layers_d=cfg["disc_layers"], channels=cfg["disc_channels"]).to(device)
    gtc = GTCLoss(GTCClassifier(k)).to(device) if net["lambda_gtc"] else None
    vgg = VGG19Loss(vgg_path) if vgg_path else None
    loss = AnatoMaskLoss(
        lambda_vgg=cfg["lambda_vgg"] if vgg else 0.0, lambda_gtc=net["lambda_gtc"], gtc=gtc, vgg=vgg
    )
    loss = loss.to(device)
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.1, 0.9))
    opt_d = torch.optim.Adam(
        list(d.parameters()) + (list(gtc.parameters()) if gtc else []), 2e-4, betas=(0.1, 0.9)
    )
    precision = Precision(device, ("bf16" if not cuda else True) if amp else False)
    masks, images, z = _batch(cfg["batch"], k, n, s, device)
    seeds = torch.randint(0, 2**31 - 1, (cfg["batch"],)).to(device)

    drawn, noise_time = NoiseInjection3D.noise, [0.0]

    def timed_noise(*a: Any, **kw: Any) -> Any:  # every 3D-SNI noise draw of the step, synchronised
        sync()
        start = time.perf_counter()
        out = drawn(*a, **kw)
        sync()
        noise_time[0] += time.perf_counter() - start
        return out

    NoiseInjection3D.noise = timed_noise
    meter = PeakMeter() if not cuda else None
    baseline = PeakMeter.status("VmRSS") if not cuda else None
    if cuda:
        sync()
        torch.cuda.reset_peak_memory_stats(device)
    times, noise = [], []
    for i in range(cfg["warmup"] + cfg["repeats"]):
        sync()
        noise_time[0], start = 0.0, time.perf_counter()
        anatomask_train_step(masks, images, z, g, d, loss, opt_g, opt_d, seeds, precision)
        sync()
        if i >= cfg["warmup"]:
            times.append(time.perf_counter() - start)
            noise.append(noise_time[0])
    NoiseInjection3D.noise = drawn
    if cuda:
        peak, kind = torch.cuda.max_memory_allocated(device) / 2**20, "CUDA max allocated"
    elif meter is not None and meter.available and baseline is not None:
        peak, kind = meter.lap() - baseline, "RSS growth"
    else:
        peak, kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "peak RSS"
    step = statistics.median(times)
    return {
        "variant": variant,
        "amp": str(precision.dtype).removeprefix("torch.") if precision.enabled else "off",
        "step_s": step,
        "noise_share": sum(noise) / sum(times),
        "peak_mib": peak,
        "memory_kind": kind,
        "params_g": sum(p.numel() for p in g.parameters()),
        "threads": torch.get_num_threads(),
    }


def run_paper_size(args: argparse.Namespace, echo: Any = print) -> int:
    """``--paper-size``: every (network, amp) configuration in its own child; returns 0 (1 if one failed)."""
    cfg = paper_config(args)
    variants = [v for v in PAPER_VARIANTS if args.variants in ("both", v.lower())]
    amps = {"both": [False, True], "off": [False], "on": [True]}[args.amp]
    ctx = mp.get_context("spawn")
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        vgg_path, vgg_note = _vgg_weights(args.vgg, Path(tmp))
        echo(
            f"paper-size D + G step on {cfg['device']}: batch {cfg['batch']} stacks x {cfg['num_slices']} "
            f"slices, {cfg['size']} x {cfg['size']}, {cfg['classes']} classes, base channels "
            f"{cfg['base_channels']}, "
            f"channel_mults {list(cfg['channel_mults'])}, SPADE hidden {cfg['spade_hidden']}, discriminator "
            f"{cfg['disc_channels']} x {cfg['disc_layers']}; {vgg_note}; median of {cfg['repeats']} step(s) "
            f"after {cfg['warmup']} warm-up"
        )
        echo(
            f"  {'network':13s} {'amp':8s} {'step s':>8s} {'peak MiB':>10s}  {'memory':18s} "
            f"{'noise %':>8s}  G params"
        )
        results: dict[tuple[str, bool], dict[str, Any]] = {}
        for amp in amps:
            for variant in variants:
                queue = ctx.Queue()
                proc = ctx.Process(target=_measure_paper, args=(variant, amp, cfg, vgg_path, queue))
                proc.start()
                proc.join()
                try:
                    r = queue.get(timeout=10)
                except queue_module.Empty:
                    r = {"error": f"the child process exited with {proc.exitcode} (killed: out of memory?)"}
                if "error" in r:
                    failed = True
                    echo(f"  {variant:13s} {'on' if amp else 'off':8s} FAILED: {r['error']}")
                    continue
                results[(variant, amp)] = r
                noise = (
                    f"{100 * r['noise_share']:7.2f}%"
                    if PAPER_VARIANTS[variant]["use_noise3d"]
                    else "       -"
                )
                echo(
                    f"  {variant:13s} {r['amp']:8s} {r['step_s']:8.2f} {r['peak_mib']:10.0f}  "
                    f"{r['memory_kind']:18s} {noise}  {r['params_g'] / 1e6:.1f} M ({r['threads']} threads)"
                )
        for amp in amps:
            full, spade = results.get(("AnatoMaskGAN", amp)), results.get(("SPADE", amp))
            label = "amp " + (full or spade or {"amp": "on" if amp else "off"})["amp"]
            if full is not None:
                share = full["noise_share"]
                verdict = "PASS" if share <= NOISE_SHARE_TARGET else "FAIL"
                echo(
                    f"3D-SNI noise share, {label}: {100 * share:.2f}% of the step "
                    f"(target <= {100 * NOISE_SHARE_TARGET:.0f}%): {verdict}"
                )
            if full is not None and spade is not None:
                ratio = full["step_s"] / spade["step_s"]
                verdict = "PASS" if ratio <= RATIO_TARGET else "FAIL"
                echo(f"AnatoMaskGAN / SPADE step, {label}: {ratio:.2f} (target <= {RATIO_TARGET}): {verdict}")
    return 1 if failed else 0
