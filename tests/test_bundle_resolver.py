"""``resolve_bundle``: what ``anatosynth tables --bundle`` / ``--acis-bundle`` accept (a bundle folder's
path anywhere; a bare name only where the package runs from a checkout holding ``bundles/<name>``),
and the errors that name the value otherwise."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import REPO

from anatosynth_components import cli
from anatosynth_components.errors import ConfigError
from anatosynth_components.experiments import bundle_runner
from anatosynth_components.experiments.bundle_runner import checkout_bundles, resolve_bundle


def test_a_bundle_folder_path_is_used_as_it_is(tmp_path, monkeypatch):
    root = tmp_path / "elsewhere" / "my_oasis"
    shutil.copytree(REPO / "bundles" / "anatomask_oasis" / "configs", root / "configs")
    assert resolve_bundle(root) == root.resolve()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert resolve_bundle("my_oasis") == root.resolve()  # a relative path, even without a slash
    assert resolve_bundle("./my_oasis", "--acis-bundle") == root.resolve()


def test_a_bare_name_is_the_checkouts_bundle(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert checkout_bundles() == REPO / "bundles"
    assert resolve_bundle("anatomask_abdomen") == (REPO / "bundles" / "anatomask_abdomen").resolve()
    with pytest.raises(ConfigError) as err:
        resolve_bundle("anatomask_nowhere")
    assert str(err.value).startswith(
        f"--bundle 'anatomask_nowhere': not a folder, nor a bundle in {REPO / 'bundles'}. "
        "Bundles ship in the AnatoSynth repository (bundles/<name>) and the MONAI model zoo"
    )


def test_a_bare_name_without_a_checkout_asks_for_the_folder(tmp_path, monkeypatch):
    # an installed wheel: site-packages holds no pyproject.toml and no bundles/
    monkeypatch.setattr(bundle_runner, "REPO_BUNDLES", tmp_path / "site-packages" / "bundles")
    monkeypatch.chdir(tmp_path)
    assert checkout_bundles() is None
    with pytest.raises(ConfigError) as err:
        resolve_bundle("acis_tlobes", "--acis-bundle")
    assert str(err.value) == (
        "--acis-bundle 'acis_tlobes': not a folder, and this installation of anatosynth-components runs "
        "from no repository checkout whose bundles/ could hold it. Bundles ship in the AnatoSynth "
        "repository (bundles/<name>) and the MONAI model zoo, not in the package: pass the bundle "
        "folder's path (--acis-bundle /path/to/<bundle>)"
    )


def test_paths_that_are_not_bundles(tmp_path):
    with pytest.raises(ConfigError, match=r"^--bundle '/no/such/bundle': no such folder\. Bundles ship"):
        resolve_bundle("/no/such/bundle")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ConfigError, match=r"is not a bundle folder \(no configs/ inside\)"):
        resolve_bundle(tmp_path / "plain")


def test_tables_resolve_the_bundles_they_name(tmp_path, capsys, monkeypatch):
    root = tmp_path / "abdomen_copy"
    shutil.copytree(REPO / "bundles" / "anatomask_abdomen" / "configs", root / "configs")
    assert cli.main(["tables", "ablation", "--bundle", str(root), "--show-config"]) == 0
    assert json.loads(capsys.readouterr().out)["bundle"] == str(root.resolve())
    assert cli.main(["tables", "ablation", "--show-config"]) == 0  # default: the checkout's bundle
    assert json.loads(capsys.readouterr().out)["bundle"] == str(REPO / "bundles" / "anatomask_oasis")
    assert cli.main(["tables", "segmentation", "--acis-bundle", "acis_tlobes", "--show-config"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["synthetic"]["acis_bundle"] == str(REPO / "bundles" / "acis_tlobes")
    # without the synthetic arm the ACIS bundle is not needed, so not looked up
    monkeypatch.setattr(bundle_runner, "REPO_BUNDLES", tmp_path / "no_checkout" / "bundles")
    args = ["tables", "segmentation", "--show-config", "--set", 'arms=["baseline"]']
    assert cli.main(args) == 0
    assert json.loads(capsys.readouterr().out)["synthetic"]["acis_bundle"] == "acis_tlobes"
    assert cli.main(["tables", "reconstruction", "--show-config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("anatosynth tables: error: --acis-bundle 'acis_penet': not a folder, and this")
    assert "pass the bundle folder's path" in err
