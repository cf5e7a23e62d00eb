"""Publishing bundles to the MONAI model zoo: which files go, the zoo's rules, ``large_files.yml``,
TorchScript / ONNX export, the pinned component wheel, and ``anatosynth package``."""

from anatosynth_components.packaging.bundle_files import bundle_files, keep
from anatosynth_components.packaging.conformance import bundle_problems, metadata_problems
from anatosynth_components.packaging.large_files import ZOO_FILE_LIMIT, read_large_files
from anatosynth_components.packaging.package import PackageResult, package_bundle
from anatosynth_components.packaging.wheel import build_wheel

__all__ = [
    "ZOO_FILE_LIMIT",
    "PackageResult",
    "build_wheel",
    "bundle_files",
    "bundle_problems",
    "keep",
    "metadata_problems",
    "package_bundle",
    "read_large_files",
]
