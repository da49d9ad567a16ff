"""Classical denoisers to compare against, each given a noise sigma (see tfdenoise.evaluate
for which: the true one for Gaussian noise, an estimate for realistic noise).

All are optional: each names the module it needs, and `tfdenoise evaluate` skips a missing
one with a note. None is a hard dependency (BM3D's licence is non-commercial: the `bm3d`
extra only). Every baseline maps an H x W x 3 noisy image (uint8, or for `float_input` ones
also unclipped float on the 0-255 scale) and sigma (0-255 scale) to a uint8 image, like a
user saving its result would.

Strength parameters (h = 0.6 sigma for both non-local means) were picked on one scikit-image
photo crop at sigma 15/25/50 among 0.3-1.2 sigma: the best of that sweep, not the default.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable

import numpy as np

NLM_STRENGTH = 0.6  # h / sigma for both non-local means baselines (see module docstring)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


def opencv_nlm(noisy: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    h = NLM_STRENGTH * sigma
    bgr = np.ascontiguousarray(noisy[..., ::-1])
    return np.ascontiguousarray(cv2.fastNlMeansDenoisingColored(bgr, None, h, h, 7, 21)[..., ::-1])


def skimage_nl_means(noisy: np.ndarray, sigma: float) -> np.ndarray:
    from skimage.restoration import denoise_nl_means

    scaled = sigma / 255.0
    result = denoise_nl_means(
        noisy / 255.0,
        h=NLM_STRENGTH * scaled,
        sigma=scaled,
        fast_mode=True,
        patch_size=5,
        patch_distance=6,
        channel_axis=-1,
    )
    return _to_uint8(result)


def skimage_wavelet(noisy: np.ndarray, sigma: float) -> np.ndarray:
    from skimage.restoration import denoise_wavelet

    result = denoise_wavelet(
        noisy / 255.0,
        sigma=sigma / 255.0,
        channel_axis=-1,
        convert2ycbcr=True,
        method="BayesShrink",
        mode="soft",
        rescale_sigma=True,
    )
    return _to_uint8(result)


def cbm3d(noisy: np.ndarray, sigma: float) -> np.ndarray:
    import bm3d

    return _to_uint8(bm3d.bm3d_rgb(noisy / 255.0, sigma_psd=sigma / 255.0))


@dataclasses.dataclass(frozen=True)
class Baseline:
    name: str
    needs: str  # importable module; the baseline is skipped when it is missing
    install: str  # how to get it, for the skip note
    denoise: Callable[[np.ndarray, float], np.ndarray]
    # Takes float pixels on the 0-255 scale, unclipped (the papers' protocol); else uint8 only.
    float_input: bool = True

    def missing_note(self) -> str | None:
        """None when usable, else why it is skipped."""
        if importlib.util.find_spec(self.needs) is None:
            return f"{self.name} skipped: {self.needs} is not installed ({self.install})"
        return None


BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in (
        Baseline("opencv-nlm", "cv2", "pip install tfdenoise[baselines]", opencv_nlm, False),
        Baseline("skimage-nlm", "skimage", "pip install scikit-image", skimage_nl_means),
        Baseline("skimage-wavelet", "pywt", "pip install PyWavelets", skimage_wavelet),
        Baseline("cbm3d", "bm3d", "pip install tfdenoise[bm3d]; non-commercial licence", cbm3d),
    )
}


def select(names: list[str] | None) -> tuple[list[Baseline], list[str]]:
    """The usable baselines among `names` (None: all), and notes on those skipped."""
    names = list(BASELINES) if names is None else names
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ValueError(
            f"unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(BASELINES)}"
        )
    chosen, notes = [], []
    for name in names:
        note = BASELINES[name].missing_note()
        if note:
            notes.append(note)
        else:
            chosen.append(BASELINES[name])
    return chosen, notes
