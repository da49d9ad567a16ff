"""Geometric self-ensemble: average the model's outputs on flipped and transposed copies.

A denoiser's errors on an image and on its mirror image are partly independent, so their
mean is closer to the clean image: on held-out photos 2 passes (the image and its 180°
rotation) gained ~0.25 dB over one, and 4 passes ~0.4 dB, for 2x and 4x the compute (see
README, "The bundled model"). Noise has no orientation, so nothing is lost by it.

JPEG artefacts have a position, though: they sit on a grid of 8-pixel blocks (16-pixel MCUs
with 4:2:0 chroma) that starts at the image's top-left corner, and the model sees that grid at
the phase it was trained on only if every view keeps it there. Mirroring an image whose side
is not a multiple of 16 moves the grid (a 13-pixel side puts the flipped block edges between
rows 4|5 instead of 7|8), so the views are taken of the image padded to a multiple of 16.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tfdenoise.padding import pad_to_multiple

# JPEG's minimum coded unit with 4:2:0 chroma: flips of a multiple of it keep every block edge
# on a block edge. A multiple of the U-Net's stride (8), so the model pads nothing more.
JPEG_MCU = 16


@dataclasses.dataclass(frozen=True)
class View:
    """One orientation of an NHWC batch: optionally transposed (H <-> W), then flipped.

    Methods, not lambdas: AutoGraph cannot tell same-line lambdas apart and warns.
    """

    transpose: bool = False
    flip_axes: tuple[int, ...] = ()  # 1 = up-down, 2 = left-right, both = 180° rotation

    def _transposed(self, images: tf.Tensor) -> tf.Tensor:
        return tf.transpose(images, [0, 2, 1, 3]) if self.transpose else images

    def _flipped(self, images: tf.Tensor) -> tf.Tensor:
        return tf.reverse(images, list(self.flip_axes)) if self.flip_axes else images

    def forward(self, images: tf.Tensor) -> tf.Tensor:
        return self._flipped(self._transposed(images))

    def inverse(self, images: tf.Tensor) -> tf.Tensor:
        return self._transposed(self._flipped(images))


# The first k views make a k-pass ensemble. The second is the 180° rotation: it changes both
# axes, the most different view a second pass can give.
VIEWS: tuple[View, ...] = tuple(
    View(transpose, axes) for transpose in (False, True) for axes in ((), (1, 2), (2,), (1,))
)
PASSES = (1, 2, 4, 8)


class SelfEnsemble:
    """Callable like the model (same inputs, outputs and `stride`), averaging `passes` views.

    The passes run one after another (control dependencies), so peak memory stays that of a
    single pass on the same tile batch.
    """

    def __init__(self, model, passes: int):
        if passes not in PASSES:
            raise ValueError(f"ensemble passes must be one of {PASSES}, got {passes}")
        self.model = model
        self.passes = passes
        self.stride = getattr(model, "stride", 1)

    def __call__(self, images: tf.Tensor, training: bool = False) -> tf.Tensor:
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        padded = pad_to_multiple(images, JPEG_MCU)  # views keep the JPEG block grid in place
        outputs: list[tf.Tensor] = []
        for view in VIEWS[: self.passes]:
            with tf.control_dependencies(outputs[-1:]):
                outputs.append(view.inverse(self.model(view.forward(padded), training=training)))
        return (tf.add_n(outputs) / float(len(outputs)))[:, :height, :width, :]


def with_passes(model, passes: int):
    """The model itself for one pass, else its self-ensemble."""
    return model if passes == 1 else SelfEnsemble(model, passes)
