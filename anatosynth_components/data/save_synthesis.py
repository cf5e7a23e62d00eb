"""``SaveSynthesisd``: write synthesized volumes with the input label volume's grid, atomically.

MONAI's ``SaveImaged`` writes straight to the final file name (a crash leaves a truncated file
that looks valid) and names files with one fixed postfix; inference writes several samples per
input and must never leave half-written volumes, so this writes through ``atomic.write_nifti``.
The output folder is created (or found writable) when the transform is built, before any work, and
a file that would be the input volume itself (or a link to it) is refused.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from anatosynth_components.atomic import write_nifti
from anatosynth_components.data.file_names import image_stem
from anatosynth_components.data.output_path import check_not_input, check_output_folder
from anatosynth_components.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


class SaveSynthesisd(MapTransform):
    """Save ``d[key]`` (1, X, Y, Z) as ``<output_dir>/<input stem>_<postfix>[_s<k>].nii.gz``.

    The grid comes from the input volume ``d[source_key]`` (its file's original affine and shape,
    which MONAI's loader records); a prediction of another shape is an error (invert the
    preprocessing first, ``Invertd``).  ``_s<k>`` names sample ``d[sample_key]`` when
    ``num_samples > 1``.  The path written is stored in ``d[f"{key}_path"]``.

    Args:
        keys: keys of the synthesized volumes.
        output_dir: folder for the files (created now; an error names it when it cannot be created or
            written).
        source_key: key of the input volume whose grid the output takes.
        postfix: added to the input's name.
        num_samples: synthesized samples per input.
        sample_key: key of the sample index.
        output_range: ``[low, high]`` to map [0, 1] to (e.g. the HU window of a CT bundle); ``None``
            keeps [0, 1].
    """

    def __init__(
        self,
        keys: KeysCollection,
        output_dir: str | os.PathLike,
        source_key: str = "image",
        postfix: str = "synth",
        num_samples: int = 1,
        sample_key: str = "sample",
        output_range: Sequence[float] | None = None,
    ) -> None:
        super().__init__(keys)
        if output_range is not None and (len(output_range) != 2 or output_range[0] >= output_range[1]):
            raise ConfigError(f"output_range must be [low, high] with low < high, got {output_range}")
        self.output_dir, self.source_key, self.postfix = check_output_folder(output_dir), source_key, postfix
        self.num_samples, self.sample_key = int(num_samples), sample_key
        self.output_range = None if output_range is None else [float(v) for v in output_range]

    def path_for(self, d: Mapping[Hashable, Any], source: str) -> Path:
        name = f"{image_stem(source)}_{self.postfix}"
        if self.num_samples > 1:
            name += f"_s{int(d.get(self.sample_key, 0))}"
        return self.output_dir / f"{name}.nii.gz"

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        meta = getattr(d[self.source_key], "meta", {})
        source = str(meta.get("filename_or_obj", "volume"))
        affine = np.asarray(meta.get("original_affine", meta.get("affine", np.eye(4))), dtype=np.float64)
        shape = tuple(int(s) for s in np.asarray(meta.get("spatial_shape", ())).tolist())
        for key in self.key_iterator(d):
            volume = torch.as_tensor(d[key]).detach().float().cpu()
            if volume.ndim != 4 or volume.shape[0] != 1:
                raise DataError(
                    f"{source}: synthesized {key} must be (1, X, Y, Z), got {tuple(volume.shape)}"
                )
            if shape and tuple(volume.shape[1:]) != shape:
                raise DataError(
                    f"{source}: synthesized {key} has shape {tuple(volume.shape[1:])}, input {shape}"
                )
            array = volume[0].numpy()
            if self.output_range is not None:
                low, high = self.output_range
                array = low + array * (high - low)
            path = self.path_for(d, source)
            check_not_input(path, [source], what="the synthesized volume")
            write_nifti(path, array.astype(np.float32), affine)
            logger.info("wrote %s", path)
            d[f"{key}_path"] = str(path)
        return d
