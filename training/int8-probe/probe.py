"""Would full-integer (int8) inference reach the 1 MP/s target on a CPU without AMX?

Zen 4 has AVX512-VNNI, which multiplies int8 at twice its bfloat16 rate, and the model alone
already runs at this CPU's bfloat16 convolution rate (README, "Speed"). This converts the
bundled model to a post-training-quantised TFLite model (int8 weights and activations,
per-channel weights, calibrated on noisy bsd432 crops, never Kodak24), then scores it beside
the Keras model in mixed_bfloat16 and float32 on the same noisy Kodak24 centre crops and times
it against mixed_bfloat16 on one window, alternating.

usage: python training/int8-probe/probe.py OUT_DIR  (from the repository root)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from tfdenoise import checkpoints, metrics
from tfdenoise.evaluate import centre_crop_uint8

SIDE = 496  # the largest multiple of the U-Net's stride (8) inside Kodak24's 500^2 photos
SIGMAS = (0, 15, 25, 50)
DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def calibration(count: int = 48):
    """Noisy SIDE^2 bsd432 crops (reflect-padded: the photos are 481x321), sigma 0-50."""
    rng = np.random.default_rng(0)
    files = sorted((DATA / "bsd432").iterdir())
    for _ in range(count):
        image = np.asarray(Image.open(files[rng.integers(len(files))]).convert("RGB"), np.float32)
        image = image[:SIDE, :SIDE] / 255.0
        pad = ((0, SIDE - image.shape[0]), (0, SIDE - image.shape[1]), (0, 0))
        image = np.pad(image, pad, mode="reflect")
        noisy = image + rng.normal(0.0, rng.uniform(0, 50) / 255.0, image.shape)
        yield [np.clip(noisy, 0.0, 1.0).astype(np.float32)[None]]


def convert(model: tf.keras.Model) -> bytes:
    @tf.function(input_signature=[tf.TensorSpec([1, SIDE, SIDE, 3], tf.float32)])
    def denoise(images):
        return model(images, training=False)

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [denoise.get_concrete_function()], denoise
    )
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = calibration
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def main() -> int:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    path = checkpoints.resolve_model_path(None)
    float32 = checkpoints.load_model(path, policy="float32")
    bfloat16 = checkpoints.load_model(path, policy="mixed_bfloat16")
    started = time.perf_counter()
    (out / "int8.tflite").write_bytes(convert(float32))
    print(f"converted in {time.perf_counter() - started:.0f} s")

    interpreter = tf.lite.Interpreter(model_path=str(out / "int8.tflite"), num_threads=2)
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def int8(images: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(source["index"], images)
        interpreter.invoke()
        return interpreter.get_tensor(target["index"])

    models = {
        "int8": int8,
        "bfloat16": tf.function(lambda x: bfloat16(x, training=False)),
        "float32": tf.function(lambda x: float32(x, training=False)),
    }
    rng = np.random.default_rng(1)
    scores = {(name, sigma): [] for name in models for sigma in SIGMAS}
    for photo in sorted((DATA / "kodak24").glob("*.png")):
        photo_pixels = np.asarray(Image.open(photo).convert("RGB"))
        clean = centre_crop_uint8(photo_pixels, SIDE).astype(np.float32) / 255.0
        for sigma in SIGMAS:  # the papers' protocol: unclipped noise
            noisy = (clean + rng.normal(0.0, sigma / 255.0, clean.shape)).astype(np.float32)
            for name, run in models.items():
                denoised = np.asarray(run(noisy[None]))
                scores[name, sigma].append(float(metrics.psnr(clean[None], denoised)[0]))
    for sigma in SIGMAS:
        row = "  ".join(f"{name} {np.mean(scores[name, sigma]):.2f}" for name in models)
        print(f"Kodak24 {SIDE}^2 centre crops, sigma {sigma}: {row}")

    window = next(calibration(1))[0]
    seconds = {"int8": [], "bfloat16": []}
    for name in seconds:  # warm-up
        np.asarray(models[name](window))
    for _ in range(5):
        for name in seconds:
            started = time.perf_counter()
            np.asarray(models[name](window))
            seconds[name].append(time.perf_counter() - started)
    for name, times in seconds.items():
        rate = SIDE * SIDE / 1e6 / float(np.median(times))
        print(f"{name}: median {np.median(times):.3f} s per {SIDE}^2 window, {rate:.2f} MP/s")
    ratio = np.median(seconds["bfloat16"]) / np.median(seconds["int8"])
    print(f"int8 / bfloat16 speed: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
