"""Publishing bundles to the MONAI model zoo: which files go, the zoo's rules, ``large_files.yml``,
TorchScript / ONNX export, the pinned component wheel, and ``anatosynth package``."""

from anatosynth_components.packaging.bundle_files import bundle_files, keep, training_state
from anatosynth_components.packaging.conformance import META_SCHEMA, bundle_problems, metadata_problems
from anatosynth_components.packaging.large_files import ZOO_FILE_LIMIT, read_large_files
from anatosynth_components.packaging.package import PackageResult, package_bundle
from anatosynth_components.packaging.wheel import build_wheel

__all__ = [
    "META_SCHEMA",
    "ZOO_FILE_LIMIT",
    "PackageResult",
    "build_wheel",
    "bundle_files",
    "bundle_problems",
    "keep",
    "metadata_problems",
    "package_bundle",
    "read_large_files",
    "training_state",
]
