"""Every bundle served by MONAI Label's own ``monaibundle`` sample app, for real.

MONAI Label runs in its own environment (``scripts/monailabel_env.sh``: monailabel pins numpy < 2;
built on first use, about a minute, then reused).  The test takes the sample app out of the installed
monailabel wheel (``monailabel apps --download``, which copies it from the wheel: no network), puts
the four bundles, packaged by ``anatosynth package`` and shrunk to tiny random networks, under the
app's ``model/`` folder, starts ``monailabel start_server`` on 127.0.0.1, asks ``/info/`` and one
``/infer/<bundle>`` per bundle for a label volume of the studies folder, checks that each returned
NIfTI has the label volume's shape and affine and holds what the bundle's own ``inference.json``
pipeline gives in this environment (for CT in Hounsfield units: the inverse of the training window,
issue 17 item 8), asks each bundle for a label volume with an unknown label id and gets HTTP 422 with
the file and the problem in the body (item 7), then a valid volume again, and stops the server.

``ANATOSYNTH_SKIP_MONAILABEL=1`` skips it (for a machine that cannot reach a package index)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import types
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import REPO
from test_publish_conformance import NAMES, tiny_bundle

from anatosynth_components.bundle import ReportErrors, client_error
from anatosynth_components.errors import ConfigError, DataError
from anatosynth_components.packaging import package_bundle
from anatosynth_components.packaging.export import load_network, parse_inference

needs_monailabel = pytest.mark.skipif(
    os.environ.get("ANATOSYNTH_SKIP_MONAILABEL") == "1", reason="ANATOSYNTH_SKIP_MONAILABEL=1"
)
HOST = "127.0.0.1"
SHAPE = (40, 44, 12)
#: the training window each CT bundle's output undoes (train.json: intensity, hu_window); None: [0, 1]
WINDOWS = {
    "anatomask_oasis": None,
    "anatomask_abdomen": (-175.0, 250.0),
    "acis_penet": (-1000.0, 600.0),
    "acis_tlobes": (-1000.0, 600.0),
}
BAD_LABELS = "label ids [99] are not in the configured set"


@pytest.fixture(scope="module")
def monailabel_python() -> Path:
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "monailabel_env.sh")], capture_output=True, text=True, timeout=1200
    )
    assert proc.returncode == 0, f"scripts/monailabel_env.sh failed:\n{proc.stderr[-4000:]}"
    return Path(proc.stdout.strip().splitlines()[-1]) / "bin" / "python"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def infer(url: str, params: dict) -> bytes:
    """POST a multipart form with one ``params`` field (MONAI Label's /infer form) and return the body."""
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="params"\r\n\r\n'
        f"{json.dumps(params)}\r\n--{boundary}--\r\n"
    ).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    with urllib.request.urlopen(request, timeout=300) as r:
        return r.read()


def label_volume(path: Path, unknown_id: int | None = None) -> np.ndarray:
    """A label volume with ids 0..3 (valid in all four label sets) on an anisotropic, shifted grid;
    ``unknown_id`` puts that id in one voxel."""
    labels = np.zeros(SHAPE, np.uint8)
    labels[6:34, 8:36, 1:11] = 1
    labels[10:30, 12:22, 3:9] = 2
    labels[14:26, 26:34, 4:8] = 3
    if unknown_id is not None:
        labels[0, 0, 0] = unknown_id
    affine = np.array([[0.0, -1.2, 0.0, 30.0], [0.9, 0.0, 0.0, -12.0], [0.0, 0.0, 2.5, 4.0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(labels, affine), path)
    return affine


def reference(bundle: Path, label_file: Path, **overrides) -> np.ndarray:
    """What the bundle's inference.json pipeline (preprocessing -> inferer -> postprocessing) gives here."""
    parser = parse_inference(bundle, {"device": "cpu", **overrides})
    net, _ = load_network(bundle, bundle / "models" / "model.pt")
    data = parser.get_parsed_content("preprocessing")({"image": str(label_file)})
    with torch.no_grad():
        data["pred"] = parser.get_parsed_content("inferer")(data["image"][None], net)[0]
    return np.asarray(parser.get_parsed_content("postprocessing")(data)["pred"][0])


def check_served(name: str, body: bytes, app: Path, studies: Path, affine: np.ndarray, out: Path) -> None:
    """The served NIfTI: the label volume's grid, the bundle pipeline's values, CT in HU."""
    out.write_bytes(body)
    image = nib.load(out)
    assert image.shape == SHAPE, name
    assert np.allclose(image.affine, affine, atol=1e-4), f"{name}: affine {image.affine}"
    values = np.asarray(image.dataobj, dtype=np.float64)
    unit = reference(app / "model" / name, studies / "case1.nii.gz", output_range=None)  # network's [0, 1]
    assert np.isfinite(values).all() and 0 <= unit.min() and unit.max() <= 1 and unit.std() > 0, name
    low, high = WINDOWS[name] or (0.0, 1.0)
    # the inverse window, voxel by voxel: a network output of 0 is `low` HU, 1 is `high` HU
    assert np.allclose(values, low + unit * (high - low), atol=1e-4 * (high - low)), (
        f"{name}: max |diff| {np.abs(values - (low + unit * (high - low))).max()}"
    )
    expected = reference(app / "model" / name, studies / "case1.nii.gz")  # the config's own output_range
    assert np.allclose(values, expected, atol=1e-4 * (high - low)), name


class FakeHTTPException(Exception):
    """starlette's ``HTTPException``, as far as FastAPI's handler uses it."""

    def __init__(self, status_code: int, detail: str | None = None, headers=None) -> None:
        self.status_code, self.detail, self.headers = status_code, detail, headers

    def __str__(self) -> str:
        return f"{self.status_code}: {self.detail}"


def test_client_error_is_both_the_error_and_an_http_exception(monkeypatch, tmp_path):
    """Without a server: with ``starlette.exceptions`` importable (a stand-in here), ``ReportErrors``
    re-raises an AnatoSynth error as one FastAPI answers with 422 / 500 and the message; without it,
    errors pass unchanged."""
    module = types.ModuleType("starlette.exceptions")
    module.HTTPException = FakeHTTPException
    monkeypatch.setitem(sys.modules, "starlette", types.ModuleType("starlette"))
    monkeypatch.setitem(sys.modules, "starlette.exceptions", module)
    err = DataError(f"{tmp_path}/bad.nii.gz: {BAD_LABELS} 0..13")
    served = client_error(err)
    assert isinstance(served, DataError) and isinstance(served, FakeHTTPException)
    assert (served.status_code, served.detail, str(served)) == (422, str(err), str(err))
    assert type(served).__name__ == "DataError" and served.args == err.args
    assert client_error(ConfigError("output_range must be [low, high]")).status_code == 500

    def check(d):
        raise DataError(f"{d['image']}: {BAD_LABELS} 0..13")

    with pytest.raises(FakeHTTPException) as info:
        ReportErrors([check])({"image": "bad.nii.gz"})
    assert info.value.status_code == 422 and info.value.detail == f"bad.nii.gz: {BAD_LABELS} 0..13"
    with pytest.raises(RuntimeError, match="applying transform") as other:  # not ours: unchanged
        ReportErrors([lambda d: d["missing"]])({"image": "a.nii.gz"})
    assert not isinstance(other.value, FakeHTTPException)
    monkeypatch.setitem(sys.modules, "starlette.exceptions", None)  # no starlette: the error itself
    assert client_error(err) is err


@needs_monailabel
def test_monaibundle_app_serves_every_bundle(monailabel_python, tmp_path):
    torch.set_num_threads(1)
    apps = tmp_path / "apps"
    copy = subprocess.run(
        [str(monailabel_python), "-m", "monailabel.main", "apps", "--download", "--name", "monaibundle",
         "--output", str(apps)], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    app = apps / "monaibundle"
    assert copy.returncode == 0 and (app / "main.py").is_file(), copy.stdout + copy.stderr
    for name in NAMES:
        package_bundle(tiny_bundle(name, tmp_path / "src"), app / "model", wheel=False)
    studies = tmp_path / "studies"
    studies.mkdir()
    affine = label_volume(studies / "case1.nii.gz")
    label_volume(studies / "bad1.nii.gz", unknown_id=99)

    port = free_port()
    log = open(tmp_path / "server.log", "w")
    conf = {"models": ",".join(NAMES), "zoo_source": "local", "sam2": "false", "skip_trainers": "true"}
    cmd = [str(monailabel_python), "-m", "monailabel.main", "start_server", "--app", str(app),
           "--studies", str(studies), "--host", HOST, "--port", str(port)]  # fmt: skip
    cmd += [arg for key, value in conf.items() for arg in ("--conf", key, value)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
    base = f"http://{HOST}:{port}"
    try:
        deadline, info = time.time() + 180, None
        while info is None and time.time() < deadline and server.poll() is None:
            try:
                info = get(f"{base}/info/")
            except (urllib.error.URLError, ConnectionError):
                time.sleep(1)
        assert info is not None, (
            f"the server did not come up:\n{(tmp_path / 'server.log').read_text()[-5000:]}"
        )
        assert set(info["models"]) == set(NAMES)
        for name in NAMES:
            meta = json.loads((REPO / "bundles" / name / "configs" / "metadata.json").read_text())
            assert info["models"][name]["version"] == meta["version"]
            try:
                body = infer(f"{base}/infer/{name}?image=case1&output=image", {"device": "cpu"})
            except urllib.error.HTTPError as err:
                log_text = (tmp_path / "server.log").read_text()[-6000:]
                raise AssertionError(f"{name}: HTTP {err.code}\n{log_text}") from err
            check_served(name, body, app, studies, affine, tmp_path / f"{name}.nii.gz")
        for name in NAMES:  # a volume that fails validation: 422, the file and the problem in the body
            with pytest.raises(urllib.error.HTTPError) as info:
                infer(f"{base}/infer/{name}?image=bad1&output=image", {"device": "cpu"})
            detail = json.loads(info.value.read())["detail"]
            assert info.value.code == 422 and "bad1.nii.gz: " in detail and BAD_LABELS in detail, (
                f"{name}: HTTP {info.value.code} {detail!r}"
            )
        body = infer(f"{base}/infer/anatomask_abdomen?image=case1&output=image", {"device": "cpu"})
        check_served(
            "anatomask_abdomen", body, app, studies, affine, tmp_path / "again.nii.gz"
        )  # still serving
        assert not (app / "model" / "anatomask_oasis" / "synth").exists(), (
            "serving must not write into the bundle"
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    shutil.rmtree(apps, ignore_errors=True)
