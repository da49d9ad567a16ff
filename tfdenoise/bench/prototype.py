"""The prototype's input pipeline, re-implemented: the baseline the pipeline figures are
compared with (one Python thread, cv2 or PIL, NumPy noise)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np


def _cv2_reader(size: int) -> Callable[[str], np.ndarray] | None:
    try:
        import cv2
    except ImportError:
        return None

    def read(path: str) -> np.ndarray:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"cv2 cannot read {path}")
        return cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), (size, size))

    return read


def _pil_reader(size: int) -> Callable[[str], np.ndarray]:
    from PIL import Image

    def read(path: str) -> np.ndarray:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))

    return read


def prototype_generator(
    paths: Sequence[str], batch_size: int, size: int, seed: int = 0, prefer_cv2: bool = True
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The prototype's input pipeline, re-implemented faithfully: one Python thread reads each
    file (cv2, else PIL), resizes it to size x size, scales to [0, 1] and adds uniform noise of
    a per-image amplitude a ~ U(0, 0.5) with NumPy; yields (noisy, clean) float32 batches."""
    read = (_cv2_reader(size) if prefer_cv2 else None) or _pil_reader(size)
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(paths))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            clean, noisy = [], []
            for index in order[start : start + batch_size]:
                image = read(paths[index]).astype(np.float32) / 255.0
                amplitude = rng.uniform(0.0, 0.5)
                noisy.append(np.clip(image + rng.uniform(-amplitude, amplitude, image.shape), 0, 1))
                clean.append(image)
            yield np.stack(noisy).astype(np.float32), np.stack(clean)


def prototype_reader_name() -> str:
    return "cv2" if _cv2_reader(8) is not None else "PIL"
