"""The built wheel works on its own, outside the repository checkout.

The wheel is built as a user builds it (``pip wheel --no-deps --no-build-isolation``, from a copy of
the sources so that the checkout gets no ``build/`` or ``*.egg-info``) and installed into a fresh
virtual environment that sees the project's dependencies (a ``.pth`` file naming this environment's
site-packages, whose own ``.pth`` files, the editable install's among them, are not run) but not the
checkout.  From a folder outside the checkout, with no workspace folder beside it, the ``anatosynth``
command of that environment then:

- packages a copy of a bundle, validating its metadata against the schema inside the wheel, and
  refuses a copy whose metadata breaks that schema;
- computes a pseudo-mask of a small NIfTI;
- shows the ablation configuration for a bundle given by its folder, and refuses a bare bundle name
  (there is no checkout to look it up in) with the way out;
- runs the pseudo-mask benchmark on a generated phantom, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import REPO

SOURCE_FILES = ("pyproject.toml", "README.md", "LICENSE")
SCHEMA_IN_WHEEL = "anatosynth_components/packaging/schemas/meta_schema_20240725.json"


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"{' '.join(proc.args)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("wheel")
    checkout_before = sorted(p.name for p in REPO.iterdir())
    src = tmp / "src"
    shutil.copytree(
        REPO / "anatosynth_components",
        src / "anatosynth_components",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    for name in SOURCE_FILES:
        shutil.copy2(REPO / name, src / name)
    _ok(
        _run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
             "--disable-pip-version-check", "-q", "-w", str(tmp / "dist"), str(src)],
            cwd=tmp,
        )
    )  # fmt: skip
    assert sorted(p.name for p in REPO.iterdir()) == checkout_before  # no build/, no new egg-info
    (wheel,) = (tmp / "dist").glob("anatosynth_components-*.whl")

    venv = tmp / "venv"
    _ok(_run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp))
    python = venv / "bin" / "python"
    _ok(
        _run(
            [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
             "--disable-pip-version-check", "-q", str(wheel)],
            cwd=tmp,
        )
    )  # fmt: skip
    site = Path(
        _ok(
            _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp)
        ).stdout.strip()
    )
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "project_dependencies.pth").write_text("\n".join(deps) + "\n")

    work = tmp / "outside" / "work"
    work.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"PYTHONNOUSERSITE": "1", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return {"wheel": wheel, "venv": venv, "python": python, "site": site, "work": work, "env": env}


def anatosynth(wheel_env: dict, *args: str) -> subprocess.CompletedProcess:
    return _run([str(wheel_env["venv"] / "bin" / "anatosynth"), *args], wheel_env["work"], wheel_env["env"])


def test_the_wheel_ships_the_schema_and_the_environment_imports_it(wheel_env):
    with zipfile.ZipFile(wheel_env["wheel"]) as zf:
        assert zf.read(SCHEMA_IN_WHEEL) == (REPO / SCHEMA_IN_WHEEL).read_bytes()
    work = wheel_env["work"]
    assert REPO not in work.parents and not (work.parent / "shared").exists()
    code = (
        "import json, anatosynth_components as a; from anatosynth_components.packaging import META_SCHEMA; "
        "from anatosynth_components.experiments.bundle_runner import checkout_bundles; "
        "print(json.dumps([a.__file__, str(META_SCHEMA), checkout_bundles()]))"
    )
    module, schema, bundles = json.loads(
        _ok(_run([str(wheel_env["python"]), "-c", code], work, wheel_env["env"])).stdout
    )
    assert Path(module) == wheel_env["site"] / "anatosynth_components" / "__init__.py"
    assert Path(schema) == wheel_env["site"] / SCHEMA_IN_WHEEL
    assert bundles is None  # an installed wheel runs from no checkout


def test_package_validates_with_the_shipped_schema(wheel_env):
    work = wheel_env["work"]
    bundle = shutil.copytree(REPO / "bundles" / "acis_penet", work / "bundle_copy" / "acis_penet")
    assert not (bundle / "models" / "model.pt").exists()  # weights are never committed
    proc = _ok(anatosynth(wheel_env, "package", str(bundle), "--out", "dist", "--no-wheel"))
    assert (
        "bundle folder: dist/acis_penet\n" in proc.stdout
        and "metadata is verified with no error" in proc.stdout
    )
    version = json.loads((bundle / "configs" / "metadata.json").read_text())["version"]
    assert (work / "dist" / f"acis_penet_v{version}.zip").is_file()
    meta = json.loads((work / "dist" / "acis_penet" / "configs" / "metadata.json").read_text())
    assert meta == json.loads((bundle / "configs" / "metadata.json").read_text())
    # the same bundle with a metadata.json that breaks the zoo schema: refused, naming the shipped schema
    meta_file = bundle / "configs" / "metadata.json"
    meta_file.write_text(json.dumps({**meta, "references": "not a list"}))
    proc = anatosynth(wheel_env, "package", str(bundle), "--out", "dist2", "--no-wheel")
    assert proc.returncode == 2
    assert f"{meta_file}: does not validate against {wheel_env['site'] / SCHEMA_IN_WHEEL}" in proc.stderr
    assert not (work / "dist2").exists()
    # rebuilding the pinned wheel needs a source checkout: said before anything is written
    meta_file.write_text(json.dumps(meta))
    proc = anatosynth(wheel_env, "package", str(bundle), "--out", "dist3")
    assert proc.returncode == 2 and "needs a source checkout" in proc.stderr and "--no-wheel" in proc.stderr
    assert not (work / "dist3").exists()


def test_pseudomask_of_a_small_nifti(wheel_env):
    work = wheel_env["work"]
    rng = np.random.default_rng(0)
    image = np.zeros((24, 20, 12), np.int16) - 1000
    image[4:20, 4:16, 2:10] = 40
    image[8:14, 6:12, 4:8] = 300
    image += rng.integers(-5, 5, image.shape, dtype=np.int16)
    affine = np.diag([1.5, 1.5, 3.0, 1.0])
    nib.save(nib.Nifti1Image(image, affine), str(work / "small.nii.gz"))
    proc = anatosynth(
        wheel_env, "pseudomask", "small.nii.gz", "out.nii.gz", "--num-points", "64", "--seed", "0"
    )
    _ok(proc)
    out = nib.load(str(work / "out.nii.gz"))
    mask = np.asarray(out.dataobj)
    assert mask.shape == image.shape and mask.dtype == image.dtype
    assert np.allclose(out.affine, affine)
    assert len(np.unique(mask)) <= 64 and set(np.unique(mask)) <= set(np.unique(image))


def test_tables_take_a_bundle_folder_and_refuse_a_bare_name(wheel_env):
    work = wheel_env["work"]
    bundle = shutil.copytree(REPO / "bundles" / "anatomask_oasis", work / "bundles_here" / "oasis_copy")
    proc = _ok(anatosynth(wheel_env, "tables", "ablation", "--bundle", str(bundle), "--show-config"))
    shown = json.loads(proc.stdout)
    assert shown["bundle"] == str(bundle.resolve()) and shown["scale"] == "demo"
    proc = anatosynth(wheel_env, "tables", "ablation", "--show-config")  # default: anatomask_oasis
    assert proc.returncode == 2
    assert proc.stderr.startswith(
        "anatosynth tables: error: --bundle 'anatomask_oasis': not a folder, and this installation of "
        "anatosynth-components runs from no repository checkout"
    )
    assert "pass the bundle folder's path (--bundle /path/to/<bundle>)" in proc.stderr


def test_benchmark_generates_its_volume_without_one(wheel_env):
    proc = anatosynth(
        wheel_env, "benchmark", "pseudomask", "--phantom-shape", "20", "20", "16", "--resampled-shape",
        "24", "20", "16", "--num-points", "32", "--repeats", "1", "--naive-voxels", "100",
    )  # fmt: skip
    _ok(proc)
    assert "volume: no --volume given, so a generated chest CT phantom (20 x 20 x 16, seed 0;" in proc.stdout
    assert "FAILED" not in proc.stdout
