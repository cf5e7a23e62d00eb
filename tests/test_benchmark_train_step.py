"""``anatosynth benchmark train-step --paper-size``: its options, its sizes (the bundles' defaults) and, at
a tiny size, the report's columns and targets.  No timing asserts (timing belongs to the benchmark)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO

from anatosynth_components.benchmarks import train_step
from anatosynth_components.cli import main


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    train_step.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_paper_size_is_the_bundles_default_training_step():
    cfg = train_step.paper_config(parse("--paper-size", "--device", "cpu", "--repeats", "1"))
    assert cfg["device"] == "cpu" and cfg["repeats"] == 1 and cfg["warmup"] == 1
    for bundle in ("anatomask_oasis", "anatomask_abdomen"):
        train = json.loads((REPO / "bundles" / bundle / "configs" / "train.json").read_text())
        assert cfg["batch"] == train["batch_size"] and cfg["num_slices"] == train["num_slices"]
        assert [cfg["size"]] * 2 == train["spatial_size"] and cfg["base_channels"] == train["base_channels"]
        assert (
            list(cfg["channel_mults"]) == train["channel_mults"]
            and cfg["spade_hidden"] == train["spade_hidden"]
        )
        assert (cfg["disc_channels"], cfg["disc_layers"]) == (train["disc_channels"], train["disc_layers"])
        assert cfg["lambda_vgg"] == train["lambda_vgg"]
    assert cfg["classes"] == 36  # OASIS, the larger label set
    tiny = train_step.paper_config(parse("--paper-size", "--batch", "2", "--channel-mults", "2", "1"))
    assert tiny["batch"] == 2 and tiny["channel_mults"] == (2, 1) and tiny["size"] == 224


def test_default_mode_keeps_its_own_defaults():
    args = parse()
    assert not args.paper_size and args.batch is None and args.amp == "both"
    assert train_step._option(args, "size", train_step.DEFAULTS["size"]) == 128


def test_tiny_paper_size_run_prints_the_columns_and_targets(capsys):
    argv = ["benchmark", "train-step", "--paper-size", "--size", "32", "--num-slices", "3", "--classes", "4",
            "--base-channels", "4", "--channel-mults", "2", "1", "--spade-hidden", "4", "--disc-channels",
            "4", "--disc-layers", "1", "--batch", "2", "--repeats", "1", "--warmup", "0", "--vgg", "off",
            "--device", "cpu", "--amp", "on", "--threads", "1"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "batch 2 stacks x 3 slices, 32 x 32" in out and "VGG off (--vgg off)" in out
    header = next(line for line in out.splitlines() if "network" in line)
    assert all(col in header for col in ("amp", "step s", "peak MiB", "memory", "noise %"))
    rows = [line.split() for line in out.splitlines() if line.startswith(("  SPADE ", "  AnatoMaskGAN "))]
    assert [r[0] for r in rows] == ["SPADE", "AnatoMaskGAN"] and all(r[1] == "bfloat16" for r in rows)
    assert (
        all(float(r[2]) > 0 for r in rows)
        and rows[0][4:7] == ["RSS", "growth", "-"]
        and rows[1][6].endswith("%")
    )
    assert "RSS growth" in out
    assert "3D-SNI noise share, amp bfloat16:" in out and "(target <= 5%):" in out
    assert "AnatoMaskGAN / SPADE step, amp bfloat16:" in out and "(target <= 1.25):" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the check itself would run (8 minutes)")
def test_gpu_check_script_refuses_clearly_without_cuda():
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh")], capture_output=True, text=True,
                          timeout=300, env=env)  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "gpu_check: no CUDA device" in proc.stderr and "GPU_CHECK_TINY=1" in proc.stderr
