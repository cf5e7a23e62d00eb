"""Nothing lost: an output never replaces an input, and an output that cannot be written is named
before any work, by its own path (never a temporary name).

``anatosynth pseudomask`` runs in a subprocess, as users type it; its exit status is 2 and its error
one line.  "Before any work" is shown with an input that cannot be used (a 4-D file): the output's
error comes first, so the input was not even read.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from anatosynth_components.atomic import atomic_path, write_nifti
from anatosynth_components.bundle import synthesis_items
from anatosynth_components.data import LoadVolumed, SaveSynthesisd
from anatosynth_components.data.output_path import check_output_folder
from anatosynth_components.errors import DataError

CLI = (sys.executable, "-m", "anatosynth_components.cli", "pseudomask")
FAST = ("--num-points", "20", "--seed", "0")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pseudomask(*args: str, cwd: Path, as_user: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``anatosynth pseudomask ARGS --num-points 20 --seed 0`` in ``cwd``, behind the ``as_user``
    command prefix when given (``setpriv ...``: then HOME and matplotlib's cache are ``cwd``)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    if as_user:
        env |= {"HOME": str(cwd), "MPLCONFIGDIR": str(cwd / ".mpl")}
    cmd = [*as_user, *CLI, *args, *FAST]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The single stderr line of a refused run (exit status 2), without its ``anatosynth ...:`` prefix."""
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr and ".part" not in proc.stderr, proc.stderr
    prefix = "anatosynth pseudomask: error: "
    assert lines[0].startswith(prefix), lines[0]
    return lines[0][len(prefix) :]


@pytest.fixture
def folder(tmp_path) -> Path:
    """A small CT-like volume ``ct.nii.gz``, a hard link and a symbolic link to it, and a 4-D file."""
    rng = np.random.default_rng(0)
    write_nifti(tmp_path / "ct.nii.gz", (rng.random((20, 22, 10)) * 1000 - 500).astype(np.int16),
                np.diag([0.8, 0.8, 2.0, 1.0]))  # fmt: skip
    os.link(tmp_path / "ct.nii.gz", tmp_path / "hard.nii.gz")
    os.symlink("ct.nii.gz", tmp_path / "sym.nii.gz")
    write_nifti(tmp_path / "four_d.nii.gz", np.zeros((4, 4, 4, 2), np.float32), np.eye(4))
    return tmp_path


@pytest.mark.parametrize(
    ("output", "kind"),
    [("ct.nii.gz", "the input file"), ("./sub/../ct.nii.gz", "the input file"),
     ("hard.nii.gz", "a link to the input file"), ("sym.nii.gz", "a link to the input file")],
)  # fmt: skip
def test_output_that_is_the_input_is_refused_and_the_input_kept(folder, output, kind):
    (folder / "sub").mkdir()
    before = {p.name: digest(p) for p in folder.glob("*.nii.gz")}
    proc = pseudomask("ct.nii.gz", output, cwd=folder)
    assert one_line_error(proc) == (
        f"{output}: the pseudo-mask output is {kind} ct.nii.gz; refusing to overwrite the input "
        "(choose another path)"
    )
    assert {p.name: digest(p) for p in folder.glob("*.nii.gz")} == before
    assert (folder / "sym.nii.gz").is_symlink() and os.path.samefile(
        folder / "hard.nii.gz", folder / "ct.nii.gz"
    )


def test_outputs_without_a_writer_are_refused_before_reading_the_input(folder):
    """The input is a 4-D file the pseudo-mask refuses: each error below is about the output, so the
    output was checked first."""
    cases = {
        ("pm.png",): "pm.png: no writer for '.png' files; name the file *.nii.gz, *.nii, *.nrrd or *.mha "
        "(a PNG montage is written by --png)",
        ("pm",): "pm: no file suffix to choose a writer; name the file *.nii.gz, *.nii, *.nrrd or *.mha",
        ("pm.nhdr",): "pm.nhdr: no writer for '.nhdr' files; name the file *.nii.gz, *.nii, *.nrrd or *.mha",
        ("pm.nii.gz", "--png", "m.jpg"): "m.jpg: no writer for '.jpg' files; name the file *.png",
        ("pm.nii.gz", "--seeds-out", "s.txt"): "s.txt: no writer for '.txt' files; name the file *.npy",
        ("pm.nii.gz", "--seeds-out", "pm.nii.gz"): "pm.nii.gz: given as both the pseudo-mask and the "
        "--seeds-out output; give each its own file",
        ("ct.nii.gz/pm.nii.gz",): "ct.nii.gz: is a file, not a folder; outputs cannot be written into it",
    }
    for (output, *extra), message in cases.items():
        assert one_line_error(pseudomask("four_d.nii.gz", output, *extra, cwd=folder)) == message
    assert sorted(p.name for p in folder.iterdir()) == [
        "ct.nii.gz",
        "four_d.nii.gz",
        "hard.nii.gz",
        "sym.nii.gz",
    ]


def test_read_only_output_folder_is_named_before_the_work():
    """Run as an unprivileged user ("nobody" through ``setpriv`` when the tests run as root, who writes
    anywhere), in a folder that user can read."""
    as_user: tuple[str, ...] = ()
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: no folder is read-only")
        as_user = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
    top = Path(tempfile.mkdtemp(prefix="anatosynth_ro_"))
    try:
        top.chmod(0o755)
        write_nifti(top / "four_d.nii.gz", np.zeros((4, 4, 4, 2), np.float32), np.eye(4))
        (top / "ro").mkdir()
        (top / "ro").chmod(0o555)
        (top / ".mpl").mkdir(mode=0o777)
        (top / ".mpl").chmod(0o777)
        if (
            subprocess.run([*as_user, "touch", str(top / "ro" / "probe")], capture_output=True).returncode
            == 0
        ):
            pytest.skip("this user can write into a read-only folder here")
        assert one_line_error(pseudomask("four_d.nii.gz", "ro/pm.nii.gz", cwd=top, as_user=as_user)) == (
            "ro: the output folder is not writable (Permission denied)"
        )
        assert one_line_error(pseudomask("four_d.nii.gz", "ro/new/pm.nii.gz", cwd=top, as_user=as_user)) == (
            "ro/new: cannot create the output folder (Permission denied)"
        )
        assert list((top / "ro").iterdir()) == []
    finally:
        (top / "ro").chmod(0o755)
        shutil.rmtree(top)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_nrrd_and_mha_outputs_are_written_with_the_input_grid(folder, suffix):
    proc = pseudomask("ct.nii.gz", f"out/pm{suffix}", cwd=folder)
    assert proc.returncode == 0, proc.stderr
    image = LoadVolumed("image", dtype=None)({"image": str(folder / "ct.nii.gz")})["image"]
    mask = LoadVolumed("image", dtype=None)({"image": str(folder / "out" / f"pm{suffix}")})["image"]
    assert mask.dtype == image.dtype and mask.shape == image.shape
    np.testing.assert_allclose(mask.affine.numpy(), image.affine.numpy(), atol=1e-5)
    assert 1 < len(torch.unique(mask)) <= 20  # 20 cells
    assert [p.name for p in (folder / "out").iterdir()] == [f"pm{suffix}"]


def test_a_failed_write_names_the_file_not_the_temporary(tmp_path):
    target = tmp_path / "vol.nii.gz"
    with pytest.raises(DataError) as info, atomic_path(target) as tmp:
        raise ValueError(f'Cannot work out file type of "{tmp}"')  # what nibabel says of a bad suffix
    assert str(info.value) == f'{target}: cannot write the file (Cannot work out file type of "{target}")'
    with pytest.raises(DataError) as info, atomic_path(target) as tmp:
        raise PermissionError(13, "Permission denied", str(tmp))
    assert str(info.value) == f"{target}: cannot write the file (Permission denied)"
    with pytest.raises(RuntimeError, match="^a bug$"), atomic_path(target):
        raise RuntimeError("a bug")  # an error that does not name the file stays what it is
    assert list(tmp_path.iterdir()) == []


def test_save_synthesis_checks_its_folder_and_never_writes_over_its_input(tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(
        DataError, match=r"^.*taken: is a file, not a folder; outputs cannot be written into it$"
    ):
        SaveSynthesisd("pred", tmp_path / "taken")
    source = tmp_path / "labels" / "case.nii.gz"
    write_nifti(source, np.ones((4, 5, 6), np.uint8), np.eye(4))
    before = digest(source)
    out = tmp_path / "synth"
    save = SaveSynthesisd("pred", out)
    assert out.is_dir()  # created before any work
    os.link(source, out / "case_synth.nii.gz")  # the output name is a hard link to the input
    meta = {
        "filename_or_obj": str(source),
        "original_affine": np.eye(4),
        "spatial_shape": np.array([4, 5, 6]),
    }
    item = {"image": MetaTensor(torch.zeros(1, 4, 5, 6), meta=meta), "pred": torch.full((1, 4, 5, 6), 0.5)}
    with pytest.raises(DataError) as info:
        save(item)
    assert str(info.value) == (
        f"{out / 'case_synth.nii.gz'}: the synthesized volume is a link to the input file {source}; "
        "refusing to overwrite the input (choose another path)"
    )
    assert digest(source) == before and digest(out / "case_synth.nii.gz") == before


def test_output_dir_in_the_dataset_folder_is_refused(tmp_path):
    labels = tmp_path / "labels"
    write_nifti(labels / "a.nii.gz", np.ones((4, 4, 4), np.uint8), np.eye(4))
    for output_dir, where in ((labels, "is"), (labels / "synth", "lies inside")):
        with pytest.raises(DataError) as info:
            synthesis_items(labels, output_dir=output_dir)
        assert str(info.value) == (
            f"{output_dir}: output_dir {where} the dataset folder {labels}; outputs would mix with the "
            "inputs (choose a path outside it)"
        )
    with pytest.raises(DataError, match=r"output_dir is the dataset folder .*labels"):
        synthesis_items(labels / "a.nii.gz", output_dir=labels)  # one file: its folder is the dataset's
    assert len(synthesis_items(labels, output_dir=tmp_path / "synth")) == 1
    assert not (labels / "synth").exists() and not (tmp_path / "synth").exists()


def test_output_folder_is_created(tmp_path):
    assert check_output_folder(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir() and list((tmp_path / "a" / "b").iterdir()) == []
