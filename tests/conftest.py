"""Shared fixtures: small images generated in the test, in every mode and format we accept."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import importlib.util  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def load_tool(name: str):
    """A script in tools/ as a module (tools are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def quick_fit_args(epochs: int = 1, steps: int = 2, noise: str | None = "gaussian") -> list[str]:
    """`fit` options for a run of a few seconds on tiny generated images (float32: the same
    numbers on every CPU). White Gaussian noise unless `noise` says otherwise (None: fit's
    default, the practical degradations): these runs test fit's mechanics, and tracing the
    practical degradations' graph takes longer than a tiny model's whole run."""
    return [
        *("--epochs", str(epochs), "--steps-per-epoch", str(steps)),
        *("--batch-size", "4", "--patch-size", "32", "--eval-size", "32"),
        *("--precision", "float32"),
        *(("--noise", noise) if noise else ()),
    ]


def photo_like(height: int, width: int, seed: int = 0, noise: float = 2.55) -> np.ndarray:
    """A smooth colourful uint8 image with edges: gradients and a disc, plus Gaussian noise of
    std `noise` grey levels (default: a little texture, so it compresses like a photo; 0 =
    perfectly clean, for clean-in/clean-out checks)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    phase = rng.uniform(0, 2 * np.pi, 3)
    image = np.stack(
        [0.5 + 0.4 * np.sin(x / max(width, 1) * 3 + y / max(height, 1) * 2 + p) for p in phase],
        axis=-1,
    )
    cy, cx, r = (
        height * rng.uniform(0.3, 0.7),
        width * rng.uniform(0.3, 0.7),
        min(height, width) / 4,
    )
    disc = (y - cy) ** 2 + (x - cx) ** 2 < r**2
    image[disc] = rng.uniform(0.1, 0.9, 3)
    image += rng.normal(0, noise / 255, image.shape)
    return np.clip(np.round(image * 255), 0, 255).astype(np.uint8)


def save(path: Path, array: np.ndarray, mode: str | None = None, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    image.save(path, **kwargs)
    return path


def write_mode_zoo(folder: Path, size: tuple[int, int] = (48, 64)) -> dict[str, Path]:
    """One valid image per odd mode/format that real folders contain."""
    h, w = size
    rgb = photo_like(h, w, seed=1)
    gray = rgb.mean(axis=2).astype(np.uint8)
    files = {
        "rgb_jpeg": save(folder / "rgb.jpg", rgb, quality=95),
        "gray_jpeg": save(folder / "gray.JPG", gray, quality=95),
        "cmyk_jpeg": save(folder / "cmyk.jpeg", rgb, mode="CMYK", quality=95),
        "rgb_png": save(folder / "rgb.png", rgb),
        "gray_png": save(folder / "gray.png", gray),
        "rgba_png": save(folder / "rgba.PNG", np.dstack([rgb, np.full((h, w), 200, np.uint8)])),
        "palette_png": save(folder / "palette.png", rgb, mode="P"),
        "bmp": save(folder / "image.bmp", rgb),
        "gif": save(folder / "palette.gif", rgb),
        "webp": save(folder / "image.webp", rgb, lossless=True),
    }
    sixteen = (gray.astype(np.uint16) * 257).astype(np.uint16)
    path = folder / "gray16.png"
    Image.fromarray(sixteen).save(path)  # mode I;16
    files["gray16_png"] = path
    return files


def write_bad_files(folder: Path) -> dict[str, Path]:
    """Files with image suffixes that are not usable images."""
    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "_source.jpg"
    save(good, photo_like(64, 64, seed=2), quality=90)
    data = good.read_bytes()
    good.unlink()
    files = {
        "truncated_jpeg": folder / "truncated.jpg",
        "empty": folder / "empty.png",
        "text": folder / "notes.jpg",
    }
    files["truncated_jpeg"].write_bytes(data[: len(data) // 2])
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is not an image\n")
    return files


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """A folder of 24 small photo-like images (JPEG and PNG, nested) plus 3 bad files."""
    root = tmp_path / "photos"
    for index in range(24):
        sub = root / ("a" if index % 2 else "b")
        array = photo_like(72 + 8 * (index % 3), 88 + 8 * (index % 4), seed=index)
        if index % 3 == 0:
            save(sub / f"img{index:02d}.png", array)
        else:
            save(sub / f"img{index:02d}.jpg", array, quality=92)
    write_bad_files(root / "bad")
    return root


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory) -> Path:
    """A 2-level U-Net (stride 2) with random weights: fully convolutional, fast, deterministic."""
    import tensorflow as tf

    from tfdenoise import models

    tf.keras.utils.set_random_seed(3)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    models.built(models.UNet(widths=(4, 8), name="tiny")).save(path)
    return path


@pytest.fixture(scope="module")
def identity_model_path(tmp_path_factory) -> Path:
    """A U-Net whose noise head is all zeros: output = input exactly, loadable in safe mode."""
    from tfdenoise import models

    model = models.built(models.UNet(widths=(4, 8), name="identity"))
    model.head.set_weights([np.zeros_like(w) for w in model.head.get_weights()])
    path = tmp_path_factory.mktemp("model") / "identity.keras"
    model.save(path)
    return path


def netpbm_bytes(samples: np.ndarray, maxval: int) -> bytes:
    """A binary PGM (H x W) or PPM (H x W x 3) with 2-byte samples, a comment in its header as
    scanners write one."""
    magic = b"P6" if samples.ndim == 3 else b"P5"
    height, width = samples.shape[:2]
    header = b"%s\n# scanimage\n%d %d\n%d\n" % (magic, width, height, maxval)
    return header + samples.astype(">u2").tobytes()


def write_format_zoo(folder: Path, size: tuple[int, int] = (48, 64)) -> dict[str, Path]:
    """One image per format beyond the common ones: JPEG under Windows' suffixes, Netpbm (8 and
    16 bits: scanners), JPEG 2000 (archives), AVIF and HEIC (phones) where this Pillow / an
    installed pillow-heif can write them."""
    from PIL import features

    from tfdenoise.io import heif

    h, w = size
    rgb = photo_like(h, w, seed=1)
    gray = rgb.mean(axis=2).astype(np.uint8)
    files = {
        "jfif": save(folder / "windows.jfif", rgb, format="JPEG", quality=95),
        "jpe": save(folder / "old.JPE", rgb, format="JPEG", quality=95),
        "ppm": save(folder / "scan.ppm", rgb),
        "pgm": save(folder / "scan-gray.pgm", gray),
        "jp2": save(folder / "archive.jp2", rgb, irreversible=False),  # lossless
    }
    files["ppm16"] = folder / "scan16.ppm"
    files["ppm16"].write_bytes(netpbm_bytes(rgb.astype(np.uint16) * 257, 65535))
    files["pgm12"] = folder / "scan12.pgm"
    files["pgm12"].write_bytes(netpbm_bytes(np.round(gray * (4095 / 255)), 4095))
    if features.check("avif"):
        files["avif"] = save(folder / "camera.avif", rgb, quality=95)
    if heif.decoder_available():
        files["heic"] = save(folder / "phone.heic", rgb, quality=95)
    return files
