"""The streaming data path of the reconstruction experiment (``experiments/slice_stream.py``,
``ReconstructionData``): lazy slices equal the eager loader's, only the scans an arm uses are read,
the cache stays within its bytes, the test degradations are reproducible per slice, the upper bound
is nested and capped, and the Wilcoxon tests pair by test scan."""

from __future__ import annotations

import copy

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import Resized
from scipy.stats import wilcoxon

from anatosynth_components.atomic import write_nifti
from anatosynth_components.data import LoadVolumed, ResizeSlicesd, read_dataset
from anatosynth_components.data.degradations import degrade, parse_task
from anatosynth_components.data.demo.generate import generate_demo
from anatosynth_components.data.penet import PENetReader, PENetSlices
from anatosynth_components.errors import ConfigError
from anatosynth_components.experiments import reconstruction
from anatosynth_components.experiments.datasets import to_unit_range
from anatosynth_components.experiments.slice_stream import (
    SliceDataset,
    SliceRef,
    SliceStore,
    degrade_slices,
    degraded_batches,
    slice_seed,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = (16, 24)  # not square, not the volumes' in-plane size: every slice is resized


@pytest.fixture(scope="module")
def penet(tmp_path_factory):
    root = tmp_path_factory.mktemp("penet")
    return generate_demo("penet", root / "penet", subjects=8, seed=3, shape=(32, 40, 18), progress=False)


def eager_slices(image: str, stride: int, intensity: str = "chest") -> list[torch.Tensor]:
    """The pre-streaming loader (HEAD's ``load_slices``): the whole volume loaded, scaled, resized
    with ``ResizeSlicesd``, then every ``stride``-th slice; a 2-D image resized with ``Resized``."""
    volume = LoadVolumed("image")({"image": image})["image"]
    volume = to_unit_range(intensity)({"image": volume})["image"]
    if volume.ndim == 4 and volume.shape[-1] == 1:
        volume = volume[..., 0]
    if volume.ndim == 3:
        out = Resized("image", SIZE, mode="bilinear", anti_aliasing=True)({"image": volume})["image"]
        return [torch.as_tensor(out).float()]
    volume = torch.as_tensor(ResizeSlicesd("image", SIZE, axis=2)({"image": volume})["image"]).float()
    return [volume[..., z] for z in range(0, volume.shape[-1], stride)]


def test_penet_slices_match_the_reader(penet):
    address = read_dataset(penet).items[0]["image"]
    whole = PENetReader().get_data(PENetReader().read(address))[0]
    slices = PENetSlices()
    assert slices.depth(address) == whole.shape[2] == 18
    for z in (0, 7, 17):
        np.testing.assert_array_equal(slices.read(address, z), whole[..., z].astype(np.float32))
    slices.close()


@pytest.mark.parametrize("stride", [1, 3])
def test_lazy_slices_equal_the_eager_loader(penet, stride):
    items = read_dataset(penet).items[:3]
    store = SliceStore(SIZE, cache_bytes=0)
    refs = store.index(items, stride)
    expected = [(it["subject"], s) for it in items for s in eager_slices(it["image"], stride)]
    assert [r.scan for r in refs] == [s for s, _ in expected]
    assert [r.z for r in refs] == [z for it in items for z in range(0, 18, stride)]
    dataset = SliceDataset(refs, store)
    for i, (_, reference) in enumerate(expected):
        got = dataset[i]["image"]
        assert got.shape == (1, *SIZE) and got.dtype == torch.float32
        # 2-D bilinear per slice vs trilinear over the volume (slice axis kept): float rounding only
        torch.testing.assert_close(got, reference, rtol=0, atol=1e-6)
    assert store.stats()["slice_reads"] == len(refs)  # one HDF5 slice read each, no volume load


def test_lazy_files_2d_and_3d_equal_the_eager_loader(tmp_path):
    rng = np.random.default_rng(0)
    volume = rng.uniform(-1000, 600, (20, 28, 7)).astype(np.float32)
    paths = {
        "vol": write_nifti(tmp_path / "vol.nii.gz", volume, np.eye(4)),
        "flat": write_nifti(tmp_path / "flat.nii.gz", volume[:, :, 2], np.eye(4)),
        "thin": write_nifti(tmp_path / "thin.nii.gz", volume[:, :, 3:4], np.eye(4)),
    }
    items = [{"image": str(p), "subject": f"synthetic:{k}"} for k, p in paths.items()]
    store = SliceStore(SIZE, cache_bytes=1 << 20)
    refs = store.index(items, stride=2)
    assert [(r.scan, r.z) for r in refs] == [("synthetic:vol", z) for z in (0, 2, 4, 6)] + [
        ("synthetic:flat", None),
        ("synthetic:thin", None),
    ]
    assert store.stats()["file_loads"] == 0  # the index came from the NIfTI headers
    expected = [s for it in items for s in eager_slices(it["image"], 2)]
    for ref, reference in zip(refs, expected, strict=True):
        torch.testing.assert_close(store.get(ref), reference, rtol=0, atol=1e-6)
    # the volume was loaded once and all its indexed slices cached
    assert store.stats()["file_loads"] == 3 and store.stats()["hits"] == 3


def test_cache_is_bounded_and_lru(penet):
    items = read_dataset(penet).items[:2]
    slice_bytes = SIZE[0] * SIZE[1] * 4
    store = SliceStore(SIZE, cache_bytes=3 * slice_bytes)
    refs = store.index(items, 1)
    for ref in refs[:10]:
        store.get(ref)
        assert store.stats()["cached_bytes"] <= 3 * slice_bytes
    assert store.stats()["cached_slices"] == 3
    a, b, c, d = refs[10:14]
    for ref in (a, b, c, a, d):  # d evicts b, the least recently used, not a
        store.get(ref)
    reads = store.stats()["slice_reads"]
    store.get(a)
    store.get(c)
    assert store.stats()["slice_reads"] == reads
    store.get(b)
    assert store.stats()["slice_reads"] == reads + 1


def test_test_degradations_are_per_slice_and_reproducible(penet):
    items = read_dataset(penet).items[:2]
    store = SliceStore(SIZE, cache_bytes=0)
    refs = store.index(items, 2)
    task = parse_task("noise0.2")

    def inputs(batch_size: int, seed: int = 0, task=task) -> torch.Tensor:
        return torch.cat([d for _, _, d in degraded_batches(store, refs, task, seed, batch_size)])

    first = inputs(4)
    assert torch.equal(first, inputs(4))  # a second evaluation: bit-identical inputs
    assert torch.equal(first, inputs(3))  # whatever the batching
    clean = torch.stack([store.get(r) for r in refs])
    noise = first - clean
    # each slice's noise is N(0, 0.2^2) from its own generator: different for different slices
    assert not torch.allclose(noise[0], noise[1]) and not torch.allclose(noise[0], noise[len(refs) // 2])
    for i in (0, 5):
        own = torch.Generator().manual_seed(slice_seed(0, "noise0.2", refs[i].scan, refs[i].z))
        torch.testing.assert_close(first[i : i + 1], degrade(clean[i : i + 1], task, generator=own))
    assert not torch.equal(first, inputs(4, seed=1))
    assert not torch.equal(noise, inputs(4, task=parse_task("noise0.1")) - clean)  # seeded per task
    sr = parse_task("sr2")
    torch.testing.assert_close(degrade_slices(clean, sr, [0] * len(clean)), degrade(clean, sr))
    assert slice_seed(0, "noise0.2", "1", 3) != slice_seed(0, "noise0.2", "13", None)


def config_for(penet, **extra):
    config = copy.deepcopy(reconstruction.SCALES["demo"])
    config.update(
        dataset_dir=str(penet),
        spatial_size=list(SIZE),
        slice_stride=3,
        arms=["baseline", "augment", "upper_bound"],
        baseline_scans=2,
        upper_bound_scans=4,
        tasks=["sr2"],
        scale="test",
    )
    config.update(extra)
    return reconstruction.resolve_config(config)


class Recorder:
    """Wraps a ``PENetSlices`` to record which studies are read."""

    def __init__(self, inner: PENetSlices) -> None:
        self.inner, self.studies = inner, set()

    def accepts(self, address):
        return self.inner.accepts(address)

    def depth(self, address):
        return self.inner.depth(address)

    def read(self, address, z):
        self.studies.add(address.rsplit("::", 1)[1])
        return self.inner.read(address, z)

    def close(self):
        self.inner.close()


def test_only_the_scans_an_arm_uses_are_read(penet):
    config = config_for(penet)
    data = reconstruction.ReconstructionData(config, penet)
    recorder = data.store._penet = Recorder(data.store._penet)
    split = data.split
    assert recorder.studies == set()  # building it read metadata only
    for arm, scans in (("baseline", split["baseline"]), ("augment", split["baseline"])):
        dataset = data.train_dataset(arm)
        assert len(dataset) == len(scans) * 6  # 18 slices, every 3rd
        for i in range(len(dataset)):
            assert dataset[i]["image"].shape == (1, *SIZE)
        assert recorder.studies == set(scans)
    upper = data.train_dataset("upper_bound")
    for i in range(len(upper)):
        upper[i]
    assert recorder.studies == set(split["upper_bound"])
    recorder.studies.clear()
    scores = data.evaluate(None, parse_task("sr2"))
    assert recorder.studies == set(split["test"])
    assert len(scores["per_slice"]["psnr"]) == len(split["test"]) * 6
    assert scores["per_scan"]["scan"] == split["test"] and scores["per_scan"]["n_slices"] == [6] * len(
        split["test"]
    )


def test_augment_arm_changes_the_slices_reproducibly(penet):
    data = reconstruction.ReconstructionData(config_for(penet), penet)
    plain, augmented = data.train_dataset("baseline"), data.train_dataset("augment")
    again = data.train_dataset("augment")
    a = torch.stack([augmented[i]["image"] for i in range(len(augmented))])
    assert torch.equal(a, torch.stack([again[i]["image"] for i in range(len(again))]))
    p = torch.stack([plain[i]["image"] for i in range(len(plain))])
    assert a.shape == p.shape and not torch.equal(a, p)


def test_upper_bound_is_nested_and_capped(penet):
    items = read_dataset(penet).items
    split = reconstruction.split_scans(items, {"seed": 0, "baseline_scans": 2, "upper_bound_scans": 4})
    assert set(split["baseline"]) <= set(split["upper_bound"]) <= set(split["training"])
    assert len(split["baseline"]) == 2 and len(split["upper_bound"]) == 4
    capped = reconstruction.split_scans(items, {"seed": 0, "baseline_scans": 2, "upper_bound_scans": 80})
    assert capped["upper_bound"] == capped["training"] and capped["baseline"] == split["baseline"]
    with pytest.raises(ConfigError, match="upper_bound_scans"):
        config_for(penet, upper_bound_scans=1)


def test_wilcoxon_pairs_by_test_scan():
    """The row statistics test the per-scan means (scipy on hand-computed means), not the slices."""
    rng = np.random.default_rng(1)
    scans = [f"s{i}" for i in range(7)]
    refs = [SliceRef(s, f"x::{s}", z) for s in scans for z in range(int(rng.integers(2, 6)))]
    arms = ["baseline", "acis_minus", "acis", "upper_bound"]
    offsets = {"baseline": 0.0, "acis_minus": 0.3, "acis": 0.5, "upper_bound": 2.0}
    cells = {}
    for arm in arms:
        psnr = list(20 + offsets[arm] + rng.normal(0, 1, len(refs)))
        ssim = list(0.8 + offsets[arm] / 100 + rng.normal(0, 0.01, len(refs)))
        cells[arm] = {
            "per_slice": {"psnr": psnr, "ssim": ssim},
            "per_scan": reconstruction.per_scan_means(refs, psnr, ssim),
        }
    by_hand = {
        arm: {
            m: [
                np.mean([v for r, v in zip(refs, cells[arm]["per_slice"][m], strict=True) if r.scan == s])
                for s in scans
            ]
            for m in ("psnr", "ssim")
        }
        for arm in arms
    }
    for arm in arms:
        assert cells[arm]["per_scan"]["scan"] == scans
        np.testing.assert_allclose(cells[arm]["per_scan"]["psnr"], by_hand[arm]["psnr"])
    stats = reconstruction._row_stats(cells, arms)
    for m in ("psnr", "ssim"):
        for arm in ("acis_minus", "acis", "upper_bound"):
            entry = stats[arm][f"p_{m}"]
            diff = np.subtract(by_hand[arm][m], by_hand["baseline"][m])
            assert entry["vs_baseline"]["n"] == len(scans)  # paired by scan, not by slice
            assert entry["vs_baseline"]["p"] == pytest.approx(wilcoxon(diff, alternative="greater").pvalue)
            other = entry["vs_best_other"]["arm"]
            assert other != "upper_bound" and other != arm  # the upper bound is no competitor
            best = max(
                (a for a in arms if a not in (arm, "upper_bound")), key=lambda a: np.mean(by_hand[a][m])
            )
            assert other == best
            diff = np.subtract(by_hand[arm][m], by_hand[best][m])
            assert entry["vs_best_other"]["p"] == pytest.approx(wilcoxon(diff, alternative="greater").pvalue)
        assert stats["acis"][m]["n"] == len(scans) and stats["acis"][f"{m}_slices"]["n"] == len(refs)
    assert "p_psnr" not in stats["baseline"]


def test_hu_synthetic_images_declared_unit_are_refused_up_front(penet, tmp_path):
    volume = np.full((20, 20, 4), -1000.0, dtype=np.float32)
    path = write_nifti(tmp_path / "hu.nii.gz", volume, np.eye(4))
    data = reconstruction.ReconstructionData(config_for(penet, synthetic_intensity="unit"), penet)
    with pytest.raises(Exception, match="hu.nii.gz: synthetic image values span"):
        data.synthetic_dataset([{"image": str(path), "subject": "synthetic:hu"}])
    assert nib.load(str(path)).shape == (20, 20, 4)
