"""Every bundle served by MONAI Label's own ``monaibundle`` sample app, for real.

MONAI Label runs in its own environment (``scripts/monailabel_env.sh``: monailabel pins numpy < 2;
built on first use, about a minute, then reused).  The test takes the sample app out of the installed
monailabel wheel (``monailabel apps --download``, which copies it from the wheel: no network), puts
the four bundles, packaged by ``anatosynth package`` and shrunk to tiny random networks, under the
app's ``model/`` folder, starts ``monailabel start_server`` on 127.0.0.1, asks ``/info/`` and one
``/infer/<bundle>`` per bundle for a label volume of the studies folder, checks that each returned
NIfTI has the label volume's shape and affine and holds what the bundle's own ``inference.json``
pipeline gives in this environment, and stops the server.

``ANATOSYNTH_SKIP_MONAILABEL=1`` skips it (for a machine that cannot reach a package index)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
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

from anatosynth_components.packaging import package_bundle
from anatosynth_components.packaging.export import load_network, parse_inference

pytestmark = pytest.mark.skipif(
    os.environ.get("ANATOSYNTH_SKIP_MONAILABEL") == "1", reason="ANATOSYNTH_SKIP_MONAILABEL=1"
)
HOST = "127.0.0.1"
SHAPE = (40, 44, 12)


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


def label_volume(path: Path) -> np.ndarray:
    """A label volume with ids 0..3 (valid in all four label sets) on an anisotropic, shifted grid."""
    labels = np.zeros(SHAPE, np.uint8)
    labels[6:34, 8:36, 1:11] = 1
    labels[10:30, 12:22, 3:9] = 2
    labels[14:26, 26:34, 4:8] = 3
    affine = np.array([[0.0, -1.2, 0.0, 30.0], [0.9, 0.0, 0.0, -12.0], [0.0, 0.0, 2.5, 4.0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(labels, affine), path)
    return affine


def reference(bundle: Path, label_file: Path) -> np.ndarray:
    """What the bundle's inference.json pipeline (preprocessing -> inferer -> postprocessing) gives here."""
    parser = parse_inference(bundle, {"device": "cpu"})
    net, _ = load_network(bundle, bundle / "models" / "model.pt")
    data = parser.get_parsed_content("preprocessing")({"image": str(label_file)})
    with torch.no_grad():
        data["pred"] = parser.get_parsed_content("inferer")(data["image"][None], net)[0]
    return np.asarray(parser.get_parsed_content("postprocessing")(data)["pred"][0])


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
            served = tmp_path / f"{name}.nii.gz"
            served.write_bytes(body)
            image = nib.load(served)
            assert image.shape == SHAPE, name
            assert np.allclose(image.affine, affine, atol=1e-4), f"{name}: affine {image.affine}"
            values = np.asarray(image.dataobj, dtype=np.float32)
            assert np.isfinite(values).all() and 0 <= values.min() and values.max() <= 1 and values.std() > 0
            expected = reference(app / "model" / name, studies / "case1.nii.gz")
            assert np.allclose(values, expected, atol=1e-4), (
                f"{name}: max |diff| {np.abs(values - expected).max()}"
            )
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
