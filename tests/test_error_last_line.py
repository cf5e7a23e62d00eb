"""The cause is the last thing a user sees (issue 17, item 5).

A bundle run that fails on a ``DataError`` / ``ConfigError`` ends its output with the file or key and
the problem, not with MONAI's ``RuntimeError: Failed to evaluate ConfigExpression ...``: importing
``anatosynth_components.bundle`` (every bundle config does) installs an exception hook that prints
the full traceback, then ``Caused by <Kind>: <message>`` last.  Other errors print unchanged."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from bundle_runs import run_bundle
from test_publish_conformance import tiny_bundle

import anatosynth_components.bundle  # noqa: F401  (installs the hook, as the bundle configs do)
from anatosynth_components.errors import ConfigError, DataError, print_cause_last


def last_line(text: str) -> str:
    return [line for line in text.splitlines() if line.strip()][-1]


@pytest.fixture(scope="module")
def abdomen(tmp_path_factory) -> Path:
    """anatomask_abdomen with a tiny random network in ``models/model.pt``."""
    return tiny_bundle("anatomask_abdomen", tmp_path_factory.mktemp("bundle"))


def run_inference(bundle: Path, cwd: Path, labels: np.ndarray, **overrides: str):
    (cwd / "in").mkdir()
    nib.save(nib.Nifti1Image(labels, np.eye(4)), cwd / "in" / "bad_case.nii.gz")
    proc = run_bundle(cwd, str(bundle / "configs" / "inference.json"), "run", bundle, check=False,
                      dataset_dir=str(cwd / "in"), output_dir=str(cwd / "out"), **overrides)  # fmt: skip
    assert proc.returncode != 0
    assert "RuntimeError: Failed to " in proc.stderr  # MONAI's wrappers (evaluate / instantiate) stay above
    return proc


def test_bad_label_map_is_the_last_line(abdomen, tmp_path):
    labels = np.zeros((24, 24, 6), np.uint8)
    labels[4:20, 4:20, 1:5] = 3
    labels[0, 0, 0] = 99
    proc = run_inference(abdomen, tmp_path, labels)
    last = last_line(proc.stderr)
    assert f"{tmp_path / 'in' / 'bad_case.nii.gz'}: label ids [99] are not in the configured set" in last
    after_monai = proc.stderr[proc.stderr.rindex("RuntimeError: Failed to ") :]
    assert "\n\nCaused by DataError: " in after_monai  # the cause follows MONAI's wrapper


def test_bad_key_is_the_last_line(abdomen, tmp_path):
    labels = np.zeros((24, 24, 6), np.uint8)
    labels[4:20, 4:20, 1:5] = 3
    proc = run_inference(abdomen, tmp_path, labels, output_range="[250, -175]")
    assert last_line(proc.stderr) == (
        "Caused by ConfigError: output_range must be [low, high] with low < high, got [250, -175]"
    )


def raised(make) -> BaseException:
    try:
        make()
    except BaseException as err:  # noqa: BLE001 - the test inspects it
        return err
    raise AssertionError("nothing raised")


def hook_output(err: BaseException, capsys) -> str:
    print_cause_last(type(err), err, err.__traceback__)
    return capsys.readouterr().err


def wrapped(inner: Exception) -> BaseException:
    def make():
        try:
            raise inner
        except Exception as err:
            raise RuntimeError("applying transform <ValidateVolumed>") from err

    return raised(make)


def test_hook_adds_the_cause_and_keeps_the_traceback(capsys):
    assert sys.excepthook.__name__ == "anatosynth_excepthook"
    err = wrapped(DataError("labelsTr/a.nii.gz: 2-D file, expected one channel and 3 spatial dimensions"))
    text = hook_output(err, capsys)
    default = "".join(traceback.format_exception(err))
    assert text.startswith(default)  # the full traceback stays above, unchanged
    assert text[len(default) :] == (
        "\nCaused by DataError: labelsTr/a.nii.gz: 2-D file, expected one channel and 3 spatial dimensions\n"
    )


def test_hook_leaves_other_errors_alone(capsys):
    for err in (
        wrapped(KeyError("image")),  # not ours: printed exactly as Python prints it
        raised(
            lambda: (_ for _ in ()).throw(ConfigError("seed must be an integer, got 'x'"))
        ),  # ours, on top
    ):
        assert hook_output(err, capsys) == "".join(traceback.format_exception(err))


def test_hook_finds_a_cause_that_crossed_a_process_as_text(capsys):
    """A DataLoader worker re-raises its error as text inside ``RuntimeError("Caught ...")``."""
    worker = (
        "Caught RuntimeError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n'
        "anatosynth_components.errors.DataError: labelsTr/b.nii.gz: label ids [40] are not in the configured "
        "set 0..35\n\nThe above exception was the direct cause of the following exception:\n\n"
        "RuntimeError: applying transform <ValidateVolumed>\n"
    )
    text = hook_output(wrapped(RuntimeError(worker)), capsys)
    assert last_line(text) == (
        "Caused by DataError: labelsTr/b.nii.gz: label ids [40] are not in the configured set 0..35"
    )
