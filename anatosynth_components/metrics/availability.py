"""Which optional perceptual metrics cannot be computed here, with the reasons, for the report.

>>> from unittest import mock
>>> with mock.patch(f"{__name__}.lpips_status", return_value=(False, "no backbone")):
...     unavailable_metrics(stlpips=False)
{'lpips': 'no backbone'}
"""

from __future__ import annotations

from anatosynth_components.metrics.lpips_metric import lpips_status
from anatosynth_components.metrics.stlpips_metric import stlpips_status


def unavailable_metrics(lpips_net: str = "alex", lpips: bool = True, stlpips: bool = True) -> dict[str, str]:
    """``{"lpips": reason, "st_lpips": reason}`` for each requested metric that is unavailable here.

    Pass the result as ``unavailable`` to the evaluation report, and attach a metric handler only
    for the names that are not in it (an empty dict means every requested metric can be computed).

    Args:
        lpips_net: the LPIPS backbone to check.
        lpips: check LPIPS (:func:`lpips_status`: when torchvision's backbone weights are not
            cached it downloads them, unless ``ANATOSYNTH_NO_DOWNLOAD=1``; the reason names the
            file when that is forbidden or fails).
        stlpips: check ST-LPIPS (:func:`stlpips_status`).
    """
    checks = {"lpips": (lpips, lambda: lpips_status(lpips_net)), "st_lpips": (stlpips, stlpips_status)}
    out = {}
    for name, (wanted, status) in checks.items():
        if wanted:
            ok, reason = status()
            if not ok:
                out[name] = reason
    return out
