"""``anatosynth benchmark inference`` at a tiny size: the report's structure, the equivalence of the
pipeline's output with the blend of the bare outputs, and the stack arithmetic.  No timing asserts
(timing belongs to the benchmark itself)."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from anatosynth_components.benchmarks import inference
from anatosynth_components.cli import main

TINY = ["--size", "32", "--depth", "12", "--base-channels", "4", "--channel-mults", "4", "2", "1",
        "--spade-hidden", "16", "--repeats", "1"]  # fmt: skip


def expected_stacks(depth: int, n: int, stride: int) -> int:
    """Stacks every ``stride`` slices, plus one aligned to the end when the last does not reach it."""
    count = (depth - n) // stride + 1
    return count + (1 if (depth - n) % stride else 0)


def check_report(result: dict, depth: int, n: int, stride: int) -> None:
    stacks = result["stacks"]
    count = expected_stacks(depth, n, stride)
    assert stacks["count"] == count == len(stacks["starts"])
    assert stacks["slices_computed"] == count * n and stacks["output_slices"] == depth
    assert stacks["overlap_factor"] == pytest.approx(count * n / depth)
    assert stacks["starts"][0] == 0 and stacks["starts"][-1] == depth - n
    assert result["check"]["ok"] and result["check"]["affine_equal"]
    assert result["check"]["max_abs_diff"] < 1e-5
    timing = result["timing"]
    assert timing["output_shape"][2] == depth
    for mode in ("pipeline", "bare"):
        assert len(timing["wall"][mode]) == len(timing["cpu"][mode]) == 1
        assert all(t > 0 for t in timing["wall"][mode])
    assert {"wall_best", "wall_median", "cpu_best", "split_wall", "split_cpu"} <= set(result["overhead"])
    assert (
        timing["network_calls"]["pipeline"]
        == timing["network_calls"]["bare"]
        == [result["stacks"]["batches"]]
    )
    assert result["throughput"]["pipeline_output_slices_per_s"] == pytest.approx(
        depth / timing["wall"]["pipeline"][0]
    )
    assert isinstance(result["targets"]["overhead"], bool)


def test_cli_runs_children_and_writes_json(tmp_path, capsys):
    """Through the command line, with the real child process for timing (no memory children)."""
    out = tmp_path / "bench.json"
    assert main(["benchmark", "inference", *TINY, "--memory-multiples", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    check_report(result, depth=12, n=5, stride=3)
    assert result["config"]["threads"] == result["timing"]["threads"] == 1
    assert "overlap factor 1.667" in printed
    assert "-> OK" in printed and "pipeline / bare - 1 (separate runs)" in printed
    assert "split of the (best) pipeline run" in printed
    summary = [line for line in printed.splitlines() if line.startswith("summary:")]
    assert len(summary) == 1 and "equivalence: OK" in summary[0]
    assert "memory growth: not measured" in summary[0]
    assert ("PASS" in summary[0]) != ("FAIL" in summary[0])


@pytest.fixture
def inline_children(monkeypatch):
    """Run the children in this process (the tiny run then takes seconds, not process start-ups)."""

    class Inline:
        def __init__(self, fn, *args, env=None):
            self.value = fn(*args)

        def result(self):
            return self.value

    threads = torch.get_num_threads()
    monkeypatch.setattr(inference, "Child", Inline)
    yield
    torch.set_num_threads(threads)


def test_resized_volume_and_memory_report(tmp_path, inline_children):
    """Another in-plane size (the inferer resizes to the network and back), another stride and batch,
    and the memory section with two depths."""
    parser = argparse.ArgumentParser()
    inference.add_arguments(parser)
    args = parser.parse_args(
        [*TINY, "--volume-size", "40", "--stride", "2", "--batch-size", "3", "--memory-multiples", "2", "1"]
    )
    cfg = inference.config_from_args(args)
    lines: list[str] = []
    result = inference.benchmark(cfg, tmp_path, echo=lines.append)
    json.dumps(result)  # every number is JSON-serialisable
    check_report(result, depth=12, n=5, stride=2)
    assert result["timing"]["output_shape"] == [40, 40, 12]
    assert result["stacks"]["batches"] == -(-result["stacks"]["count"] // 3)
    memory = result["memory"]
    assert memory["depths"] == [12, 24]
    assert memory["slice_bytes_output"] == memory["slice_bytes_input"] == 40 * 40 * 4
    assert memory["allowed_bytes_per_slice"] == 2 * 40 * 40 * 4
    for run in memory["runs"]:
        assert run["peak_rss_mib"] > 0 and run["seconds"] > 0
        if all(v is not None for v in run["phases_mib"].values()):
            assert set(run["phases_mib"]) == set(inference.PHASES)
            assert run["peak_rss_mib"] == max(run["phases_mib"].values())
    assert memory["growth_ratio"] == pytest.approx(
        memory["growth_bytes_per_slice"] / memory["allowed_bytes_per_slice"]
    )
    assert "memory" in result["targets"]
    text = "\n".join(lines)
    assert "resized to 32 x 32 and back" in text and "growth of the peak from depth 12 to 24" in text
    assert text.splitlines()[-1].startswith("summary:")


def test_bad_settings_are_config_errors():
    parser = argparse.ArgumentParser()
    inference.add_arguments(parser)
    with pytest.raises(inference.ConfigError, match="smaller than --num-slices"):
        inference.config_from_args(parser.parse_args(["--depth", "3"]))
    with pytest.raises(inference.ConfigError, match="--stride"):
        inference.config_from_args(parser.parse_args(["--stride", "9"]))
