"""Pretrained VGG19 (Eq. 5's VGG term) and AlexNet (LPIPS) weights come by torchvision's mechanism.

Each test gets its own empty ``TORCH_HOME``; the weights files are real torchvision state dicts of
the right architecture with seeded random values, saved under the names torchvision gives them.
No test touches the network: ``torch.hub``'s download and ``urlopen`` raise unless a test replaces
the download by a copy of the local file.
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from urllib.error import URLError

import pytest
import torch

from anatosynth_components.anatomask import AnatoMaskLoss, VGG19Loss
from anatosynth_components.errors import ConfigError
from anatosynth_components.metrics import LPIPSMetric, lpips_status, unavailable_metrics
from anatosynth_components.metrics.lpips_metric import BACKBONE_FILES, BACKBONE_WEIGHTS
from anatosynth_components.pretrained import (
    ALEXNET,
    NO_DOWNLOAD_ENV,
    SQUEEZENET1_1,
    VGG16,
    VGG19,
    downloads_forbidden,
    pretrained_weights_file,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RELU_X_1 = (1, 6, 11, 20, 29)  # relu1_1 ... relu5_1 in torchvision's vgg19.features
VGG_LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


class NetworkTouched(OSError):
    pass


def _no_network(*args, **kwargs):
    raise NetworkTouched(f"a test tried the network: {args[:1]}")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Any download raises, as on a machine without network (tests replace it where they mean to)."""
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    monkeypatch.setattr(torch.hub, "urlopen", _no_network)
    monkeypatch.setattr("urllib.request.urlopen", _no_network)


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty torchvision cache, downloads allowed (the variable unset)."""
    home = tmp_path / "torch_home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.delenv(NO_DOWNLOAD_ENV, raising=False)
    return home


def _state_file(directory: Path, builder: str, file_name: str) -> tuple[Path, dict]:
    from torchvision import models

    torch.manual_seed(0)
    state = getattr(models, builder)(weights=None).state_dict()  # every key torchvision's file has
    path = directory / file_name
    torch.save(state, path)
    return path, state


@pytest.fixture(scope="module")
def vgg19_file(tmp_path_factory) -> tuple[Path, dict]:
    return _state_file(tmp_path_factory.mktemp("vgg19"), "vgg19", VGG19.file_name)


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory) -> tuple[Path, dict]:
    return _state_file(tmp_path_factory.mktemp("alexnet"), "alexnet", ALEXNET.file_name)


def _install(source: Path, torch_home: Path) -> Path:
    """Put the weights file in the cache as torchvision would have (a link: no 500 MB copies)."""
    target = torch_home / "hub" / "checkpoints" / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source)
    return target


def _fake_download(source: Path, calls: list):
    def download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, hash_prefix))
        Path(dst).symlink_to(source)

    return download


# --- the table of weights is torchvision's ---------------------------------------------------------


def test_weights_table_is_torchvisions_and_the_hash_is_checked_only_on_download():
    from torchvision.models import get_weight

    for weights in (VGG19, ALEXNET, VGG16, SQUEEZENET1_1):
        assert get_weight(weights.enum).url == weights.url
    assert VGG19.file_name == "vgg19-dcbb9e9d.pth"
    assert BACKBONE_FILES == {net: w.file_name for net, w in BACKBONE_WEIGHTS.items()}
    assert BACKBONE_FILES["alex"] == "alexnet-owt-7be5be79.pth"
    # torch.hub checks the hash prefix of the name only when asked, and only when downloading;
    # torchvision's builders ask (check_hash=True), and so does pretrained_weights_file
    load = inspect.signature(torch.hub.load_state_dict_from_url)
    assert load.parameters["check_hash"].default is False
    import torchvision.models.vgg as tv_vgg

    assert "check_hash=True" in inspect.getsource(tv_vgg._vgg)


@pytest.mark.parametrize(
    ("value", "forbidden"),
    [(None, False), ("", False), ("0", False), ("false", False), ("No", False), ("off", False)]
    + [("1", True), ("true", True), ("YES", True), ("on", True)],
)
def test_no_download_variable_values(monkeypatch, value, forbidden):
    if value is None:
        monkeypatch.delenv(NO_DOWNLOAD_ENV, raising=False)
    else:
        monkeypatch.setenv(NO_DOWNLOAD_ENV, value)
    assert downloads_forbidden() is forbidden


# --- VGG19: the success path from the cache ------------------------------------------------------


def _brute_force_vgg_loss(state: dict, fake: torch.Tensor, real: torch.Tensor, normalise: bool = True):
    """SPADE's VGG loss written out: grey -> RGB, ImageNet mean / std per channel, VGG19 relu*_1."""
    from torchvision.models import vgg19

    net = vgg19(weights=None)
    net.load_state_dict(state)
    mean, std = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)) if normalise else ((0, 0, 0), (1, 1, 1))

    def relus(x):
        rgb = torch.cat([(x - mean[c]) / std[c] for c in range(3)], dim=1)
        out = []
        for i, layer in enumerate(net.features[: RELU_X_1[-1] + 1]):
            rgb = layer(rgb)
            if i in RELU_X_1:
                out.append(rgb)
        return out

    with torch.no_grad():
        pairs = zip(relus(fake), relus(real), strict=True)
        return sum(w * (f - r).abs().mean() for w, (f, r) in zip(VGG_LAYER_WEIGHTS, pairs, strict=True))


def test_vgg_loss_reads_the_cache_normalises_and_matches_brute_force(torch_home, vgg19_file, monkeypatch):
    from torchvision.models import VGG19_Weights, vgg19

    source, state = vgg19_file
    _install(source, torch_home)
    monkeypatch.setenv(NO_DOWNLOAD_ENV, "1")  # the cache alone is enough
    loss = VGG19Loss()
    loaded = {key: value for block in loss.slices for key, value in block.state_dict().items()}
    assert len(loaded) == 26  # the 13 convolutions up to relu5_1 (conv5_1), with torchvision's indices
    for key, value in loaded.items():
        torch.testing.assert_close(value, state[f"features.{key}"], rtol=0, atol=0)
    # torchvision's own builder reads the same cached file (our name is its name; no hash check)
    tv = vgg19(weights=VGG19_Weights.IMAGENET1K_V1)
    torch.testing.assert_close(tv.features[0].weight, loss.slices[0][0].weight, rtol=0, atol=0)

    torch.manual_seed(1)
    fake, real = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    expected = _brute_force_vgg_loss(state, fake, real)
    got = loss(fake, real)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
    # the normalisation matters: without it (raw [0, 1] grey replicated to RGB) the value differs
    raw = _brute_force_vgg_loss(state, fake, real, normalise=False)
    assert abs(got.item() - raw.item()) > 0.05 * raw.item()
    # the first feature map is relu1_1 of the normalised RGB image
    rgb = (fake.repeat(1, 3, 1, 1) - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]
    ).view(1, 3, 1, 1)
    torch.testing.assert_close(loss.features(fake)[0], torch.relu(tv.features[0](rgb)), rtol=1e-5, atol=1e-6)
    # a differentiable loss that is zero for identical images
    assert loss(real, real).item() == 0.0
    fake.requires_grad_(True)
    loss(fake, real).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in loss.parameters())


# --- downloads when allowed, never when forbidden --------------------------------------------------


def test_vgg_loss_downloads_by_torchvision_when_allowed(torch_home, vgg19_file, monkeypatch):
    source, state = vgg19_file
    calls: list = []
    monkeypatch.setattr(torch.hub, "download_url_to_file", _fake_download(source, calls))
    loss = AnatoMaskLoss(lambda_vgg=10.0, lambda_gtc=0.0).vgg
    assert calls == [(VGG19.url, "dcbb9e9d")]  # torchvision's URL, hash prefix checked on download
    assert (torch_home / "hub" / "checkpoints" / VGG19.file_name).is_file()
    torch.testing.assert_close(loss.slices[-1][-2].weight, state["features.28.weight"], rtol=0, atol=0)
    VGG19Loss()  # now cached: no second download
    assert len(calls) == 1


def test_lpips_downloads_alexnet_when_allowed_and_matches_lpips_own_loading(
    torch_home, alexnet_file, monkeypatch
):
    import lpips

    source, state = alexnet_file
    calls: list = []
    monkeypatch.setattr(torch.hub, "download_url_to_file", _fake_download(source, calls))
    ok, reason = lpips_status("alex")
    assert ok, reason
    assert calls == [(ALEXNET.url, "7be5be79")]
    assert unavailable_metrics(stlpips=False) == {}
    metric = LPIPSMetric(net="alex")
    assert len(calls) == 1
    for key, value in metric.network.net.state_dict().items():  # slice<k>.<i>.* <- features.<i>.*
        torch.testing.assert_close(value, state[f"features.{key.split('.', 1)[1]}"], rtol=0, atol=0)
    # lpips' own pretrained path (torchvision's alexnet(pretrained=True)) reads the same cache file
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=True`
        warnings.simplefilter("ignore", UserWarning)
        reference = lpips.LPIPS(net="alex", pnet_rand=False, verbose=False).eval()
    assert len(calls) == 1
    torch.manual_seed(2)
    x, y = torch.rand(3, 3, 40, 40), torch.rand(3, 3, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(metric.network(x, y, normalize=True), reference(x, y, normalize=True))


def test_no_download_variable_gives_the_clear_error_naming_the_file(torch_home, monkeypatch):
    monkeypatch.setenv(NO_DOWNLOAD_ENV, "1")
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    vgg_file = torch_home / "hub" / "checkpoints" / VGG19.file_name
    with pytest.raises(ConfigError) as err:
        AnatoMaskLoss(lambda_vgg=10.0, lambda_gtc=0.0)
    message = str(err.value)
    for part in (str(vgg_file), f"{NO_DOWNLOAD_ENV}=1", "cannot be downloaded", VGG19.url, "lambda_vgg: 0"):
        assert part in message, part

    alex_file = torch_home / "hub" / "checkpoints" / ALEXNET.file_name
    ok, reason = lpips_status("alex")
    assert not ok
    for part in (str(alex_file), f"{NO_DOWNLOAD_ENV}=1", "cannot be downloaded", ALEXNET.url):
        assert part in reason, part
    assert unavailable_metrics(stlpips=False) == {"lpips": reason}
    with pytest.raises(ConfigError, match=f"LPIPS unavailable: .*{ALEXNET.file_name}.*{NO_DOWNLOAD_ENV}"):
        LPIPSMetric()
    assert list(torch_home.iterdir()) == []  # nothing fetched, not even a folder made


def test_failed_download_is_the_clear_error_and_lpips_is_reported_unavailable(torch_home, monkeypatch):
    def unreachable(url, dst, hash_prefix=None, progress=True):
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", unreachable)
    with pytest.raises(ConfigError) as err:
        VGG19Loss()
    message = str(err.value)
    for part in (
        VGG19.file_name,
        VGG19.url,
        "cannot be downloaded",
        "URLError",
        NO_DOWNLOAD_ENV,
        "lambda_vgg: 0",
    ):
        assert part in message, part
    ok, reason = lpips_status("alex")
    assert not ok and ALEXNET.file_name in reason and "Name or service not known" in reason
    assert unavailable_metrics(stlpips=False) == {"lpips": reason}
    assert not any(p.is_file() for p in torch_home.rglob("*"))  # no partial file left in the cache


def test_explicit_paths_are_never_downloaded(tmp_path, torch_home, monkeypatch):
    calls: list = []
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: calls.append(a))
    missing = tmp_path / "elsewhere.pth"
    with pytest.raises(ConfigError, match=r"elsewhere.pth.*lambda_vgg: 0"):
        VGG19Loss(missing)
    ok, reason = lpips_status("alex", backbone_path=missing)
    assert not ok and str(missing) in reason
    assert calls == []
    monkeypatch.setenv(NO_DOWNLOAD_ENV, "yes")
    with pytest.raises(
        ConfigError, match=rf"a test needs .*squeezenet1_1-b8a52dc0.pth.*{NO_DOWNLOAD_ENV}=yes"
    ):
        pretrained_weights_file(SQUEEZENET1_1, "a test")
