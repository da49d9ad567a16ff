"""Subclassed Keras denoisers and the train/test steps that add noise on the device.

Batches arrive as clean uint8 images (4x fewer bytes to move than float32); the step converts
them, draws noise with TF random ops next to the model, and trains on (noisy -> clean).
The outer model keeps a float32 policy so its input and the residual `x - noise` stay exact;
its sublayers follow the global (possibly mixed) policy, and the heads output float32.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from tfdenoise.config import PROTOTYPE_ALIASES
from tfdenoise.padding import pad_to_multiple

PACKAGE = "tfdenoise"  # the Keras registration package of every custom class and function
EVAL_SEED_SALT = 20251124  # second half of every evaluation seed: same noise for every run


def to_unit_float(images: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [0, 1]; float inputs are taken as already scaled."""
    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32) / 255.0
    return tf.cast(images, tf.float32)


def _reducible(logs: dict) -> dict:
    """Step logs that Keras can reduce across workers.

    Under MultiWorkerMirroredStrategy Keras 3 MEAN-reduces step logs over axis 0, which fails
    for scalars (tensorflow/tensorflow#72388); a length-1 axis makes that reduction the mean
    over replicas and gives scalars back. Elsewhere the logs stay scalars.
    """
    strategy = tf.distribute.get_strategy()
    multi_worker = (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and strategy.extended._in_multi_worker_mode()
    )
    return (
        tf.nest.map_structure(lambda value: tf.reshape(value, [1]), logs) if multi_worker else logs
    )


@keras.saving.register_keras_serializable(package=PACKAGE)
class Denoiser(keras.Model):
    """Base class: pads to the stride, runs `forward`, crops back; noise-adding train steps."""

    stride = 1

    def __init__(self, **kwargs):
        kwargs["dtype"] = "float32"  # outer model exact; sublayers use the global policy
        super().__init__(**kwargs)
        self.noise_seeds = keras.random.SeedGenerator(name="noise_seeds")
        self.train_noise: Callable | None = None
        self.eval_noise: Callable | None = None

    def compile(
        self, *, noise: Callable | None = None, eval_noise: Callable | None = None, **kwargs
    ) -> None:
        """Keras compile plus the noise models: `noise` for training, `eval_noise` for tests."""
        super().compile(**kwargs)
        self.train_noise = noise
        self.eval_noise = eval_noise or noise

    def forward(self, images: tf.Tensor, training=None) -> tf.Tensor:
        raise NotImplementedError

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Create metric and optimizer state before fit/evaluate (Keras TF-backend hook).

        Under a tf.distribute strategy Keras builds that state from one batch it MEAN-reduces
        across replicas; our batches are dicts of uint8 images, which cannot be reduced (and
        are not (x, y) pairs). Images in, images out is all the build needs, so it is given a
        (noisy, clean) float spec instead. Without a strategy Keras would build lazily, inside
        the first trace of the train function: a tf.function that creates variables is traced
        twice, and the train step (model, gradients and the whole degradation graph) is the
        slowest trace of a run, so the state is built here in every case.
        """
        spec = tf.TensorSpec([1, 32, 32, 3], tf.float32)
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=(spec, spec))

    def call(self, inputs, training=None):
        images = to_unit_float(inputs)
        shape = tf.shape(images)
        padded = pad_to_multiple(images, self.stride) if self.stride > 1 else images
        output = self.forward(padded, training=training)
        return output[:, : shape[1], : shape[2], :]

    # --- training -----------------------------------------------------------------------

    def _training_seed(self) -> tf.Tensor:
        """A fresh seed each step; replicas fold in their id so their noise differs."""
        seed = keras.random.randint((2,), 0, 2**31 - 1, dtype="int32", seed=self.noise_seeds)
        context = tf.distribute.get_replica_context()
        replica = context.replica_id_in_sync_group if context is not None else 0
        return seed + tf.stack([tf.cast(replica, tf.int32), 0])

    def _update_metrics(self, clean, denoised, loss):
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss * replicas)
            else:
                metric.update_state(clean, denoised)
        return _reducible({metric.name: metric.result() for metric in self.metrics})

    def train_step(self, data):
        if self.train_noise is None:
            raise ValueError("compile the model with a noise model before training")
        clean = to_unit_float(data["clean"])
        noisy = self.train_noise(clean, self._training_seed())
        with tf.GradientTape() as tape:
            denoised = self(noisy, training=True)
            loss = self.compute_loss(y=clean, y_pred=denoised)
            scaled = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        return self._update_metrics(clean, denoised, loss)

    def test_step(self, data):
        if self.eval_noise is None:
            raise ValueError("compile the model with a noise model before evaluating")
        clean = to_unit_float(data["clean"])
        seed = tf.stack([tf.cast(data["index"][0], tf.int32), tf.constant(EVAL_SEED_SALT)])
        noisy = self.eval_noise(clean, seed)
        denoised = self(noisy, training=False)
        loss = self.compute_loss(y=clean, y_pred=denoised)
        return self._update_metrics(clean, denoised, loss)


def _conv(width: int, **kwargs) -> keras.layers.Conv2D:
    return keras.layers.Conv2D(width, 3, padding="same", activation="relu", **kwargs)


@keras.saving.register_keras_serializable(package=PACKAGE)
class UNet(Denoiser):
    """Residual U-Net: predicts the noise and subtracts it, so clean inputs pass through.

    Two 3x3 convs per level, max-pool down, transposed-conv up, skip concatenation. Fully
    convolutional: any size works (padded to a multiple of the stride, cropped back).
    `blocks[i]` ResidualBlocks follow level i's encoder: depth where pixels are few (a block
    at the 1/8-scale bottleneck costs 1/64 of one at full scale), and room to grow a trained
    model (`grow_weights`).

    `unshuffle` > 1 starts FFDNet's way: each k x k block of pixels becomes one position with
    k*k*channels values (space_to_depth), the top level runs at 1/k scale, and the head
    predicts k*k noise values per position (depth_to_space). On a CPU running at its
    convolution rate the full-resolution level is a fifth of the work; unshuffled, the same
    lower levels see every input pixel for a quarter of that (`drop_top_level`).
    """

    def __init__(
        self, widths=(32, 64, 128, 256), channels: int = 3, blocks=(), unshuffle: int = 1, **kwargs
    ):
        super().__init__(**kwargs)
        self.widths = tuple(int(w) for w in widths)
        self.channels = int(channels)
        self.blocks = normalise_blocks(blocks, len(self.widths))
        self.unshuffle = int(unshuffle)
        if self.unshuffle < 1:
            raise ValueError(f"unshuffle must be >= 1, got {self.unshuffle}")
        self.stride = self.unshuffle * 2 ** (len(self.widths) - 1)
        self.encoder_blocks = [
            keras.Sequential([_conv(w), _conv(w)], name=f"encoder_{i}")
            for i, w in enumerate(self.widths)
        ]
        self.pools = [keras.layers.MaxPooling2D(2) for _ in self.widths[:-1]]
        self.upsamplers = [
            keras.layers.Conv2DTranspose(w, 2, strides=2, padding="same", name=f"up_{i}")
            for i, w in enumerate(self.widths[:-1])
        ]
        self.decoder_blocks = [
            keras.Sequential([_conv(w), _conv(w)], name=f"decoder_{i}")
            for i, w in enumerate(self.widths[:-1])
        ]
        self.concat = keras.layers.Concatenate()
        self.head = keras.layers.Conv2D(
            self.channels * self.unshuffle**2, 1, dtype="float32", name="noise_head"
        )
        # Created last, so the weights before them are exactly a block-less U-Net's. One flat
        # list: TF's SavedModel export does not track layers inside nested lists.
        self.residual_layers = [
            ResidualBlock(w, name=f"residual_{i}_{j}")
            for i, (w, count) in enumerate(zip(self.widths, self.blocks))
            for j in range(count)
        ]

    @property
    def residual_blocks(self) -> list[list[ResidualBlock]]:
        """The residual blocks of each level, in order."""
        starts = [sum(self.blocks[:level]) for level in range(len(self.blocks) + 1)]
        return [self.residual_layers[a:b] for a, b in zip(starts, starts[1:])]

    def forward(self, images, training=None):
        hidden = tf.nn.space_to_depth(images, self.unshuffle) if self.unshuffle > 1 else images
        skips = []
        residual_blocks = self.residual_blocks
        for level, block in enumerate(self.encoder_blocks):
            hidden = block(hidden, training=training)
            for residual in residual_blocks[level]:
                hidden = residual(hidden, training=training)
            if level < len(self.pools):
                skips.append(hidden)
                hidden = self.pools[level](hidden)
        for level in reversed(range(len(self.decoder_blocks))):
            hidden = self.upsamplers[level](hidden)
            hidden = self.concat([hidden, skips[level]])
            hidden = self.decoder_blocks[level](hidden, training=training)
        noise = self.head(hidden)
        if self.unshuffle > 1:
            noise = tf.nn.depth_to_space(noise, self.unshuffle)
        return images - noise

    def get_config(self):
        config = super().get_config()
        config.update(
            widths=list(self.widths),
            channels=self.channels,
            blocks=list(self.blocks),
            unshuffle=self.unshuffle,
        )
        return config


def normalise_blocks(blocks, levels: int) -> tuple[int, ...]:
    """Residual blocks per level: () means none; otherwise one non-negative count per level."""
    blocks = tuple(int(b) for b in blocks) or (0,) * levels
    if len(blocks) != levels or min(blocks) < 0:
        raise ValueError(f"blocks needs one count >= 0 per level ({levels}), got {list(blocks)}")
    return blocks


@keras.saving.register_keras_serializable(package=PACKAGE)
class ResidualBlock(keras.layers.Layer):
    """x + conv(relu(conv(x))), the second conv zero-initialised: a new block is the identity,
    so adding blocks to a trained model starts from exactly its outputs."""

    def __init__(self, width: int, **kwargs):
        super().__init__(**kwargs)
        self.width = int(width)
        self.inner = _conv(self.width)
        self.outer = keras.layers.Conv2D(self.width, 3, padding="same", kernel_initializer="zeros")

    def build(self, input_shape):
        self.inner.build(input_shape)
        self.outer.build(tuple(input_shape[:-1]) + (self.width,))

    def call(self, inputs, training=None):
        return inputs + self.outer(self.inner(inputs))

    def get_config(self):
        config = super().get_config()
        config.update(width=self.width)
        return config


# Registered under its earlier name, so .keras files written before the rename still load.
@keras.saving.register_keras_serializable(package=PACKAGE, name="SeedAutoencoder")
class PrototypeAutoencoder(Denoiser):
    """The prototype: Conv 32/64/128 + max-pool encoder, transposed conv + upsampling decoder,
    sigmoid output. Kept to reproduce and compare against the original notebook."""

    stride = 8

    def __init__(self, channels: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        encoder = []
        for width in (32, 64, 128):
            encoder += [_conv(width), keras.layers.MaxPooling2D(2)]
        decoder = []
        for width in (128, 64, 32):
            decoder += [
                keras.layers.Conv2DTranspose(width, 3, padding="same", activation="relu"),
                keras.layers.UpSampling2D(2),
            ]
        self.encoder = keras.Sequential(encoder, name="encoder")
        self.decoder = keras.Sequential(decoder, name="decoder")
        self.head = keras.layers.Conv2D(
            self.channels, 3, padding="same", activation="sigmoid", dtype="float32", name="head"
        )

    def forward(self, images, training=None):
        return self.head(self.decoder(self.encoder(images, training=training), training=training))

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels)
        return config


def build_model(name: str, widths=(32, 64, 128, 256), blocks=(), unshuffle: int = 1) -> Denoiser:
    """A fresh model by its `--model` name."""
    if name == "unet":
        return UNet(widths=widths, blocks=blocks, unshuffle=unshuffle, name="unet")
    if PROTOTYPE_ALIASES.get(name, name) == "prototype":
        return PrototypeAutoencoder(name="prototype")
    raise ValueError(f"unknown model {name!r}; choose unet or prototype")


def built(model: Denoiser, size: int = 32) -> Denoiser:
    """Create the model's variables by running it once (Keras builds subclassed models lazily)."""
    model(tf.zeros([1, size, size, 3], tf.float32))
    return model


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Give `target` the weights of `source` (fine-tuning), refusing a different architecture.

    A U-Net with more residual blocks than `source` (same widths) is grown instead: it takes
    every weight `source` has, and its extra blocks start as the identity. A U-Net without
    `source`'s top level and unshuffled 2x more takes every weight below that level
    (`drop_top_level`).
    """
    if isinstance(source, UNet) and isinstance(target, UNet):
        if target.unshuffle == 2 * source.unshuffle and len(target.widths) < len(source.widths):
            drop_top_level(source, target)
            return
        if source.blocks != target.blocks and source.unshuffle == target.unshuffle:
            grow_weights(source, target)
            return
    ours = [tuple(w.shape) for w in target.weights]
    theirs = [tuple(w.shape) for w in source.weights]
    if type(source) is not type(target) or ours != theirs:
        raise ValueError(
            f"its architecture ({type(source).__name__}, {len(theirs)} weights) "
            f"differs from this run's ({type(target).__name__}, {len(ours)} weights):"
            " match --model and --widths to it"
        )
    target.set_weights(source.get_weights())


def grow_weights(source: UNet, target: UNet) -> None:
    """Copy a trained U-Net into one with the same widths and at least as many blocks per level.

    The copied blocks keep their weights and the new ones are the identity, so `target`
    computes exactly what `source` did and fine-tuning only has to learn what the new depth
    adds.
    """
    if source.widths != target.widths or any(
        have > want for have, want in zip(source.blocks, target.blocks)
    ):
        raise ValueError(
            f"its architecture (widths {list(source.widths)}, blocks "
            f"{list(source.blocks)}) cannot grow into this run's (widths "
            f"{list(target.widths)}, blocks {list(target.blocks)}): same widths and "
            "at least as many blocks per level are needed"
        )
    pairs = [
        (
            source.encoder_blocks + source.upsamplers + source.decoder_blocks + [source.head],
            target.encoder_blocks + target.upsamplers + target.decoder_blocks + [target.head],
        )
    ]
    for have, want in zip(source.residual_blocks, target.residual_blocks):
        pairs.append((have, want[: len(have)]))
    for from_layers, to_layers in pairs:
        _copy_layers(from_layers, to_layers)


def _copy_layers(from_layers: list, to_layers: list) -> None:
    """Each layer of `to_layers` takes the weights of its counterpart in `from_layers`."""
    for from_layer, to_layer in zip(from_layers, to_layers, strict=True):
        to_layer.set_weights(from_layer.get_weights())


def drop_top_level(source: UNet, target: UNet) -> None:
    """Start an unshuffled U-Net from a trained one whose top (finest) level it replaces.

    `target` is `source` without its first level and with twice its unshuffle: its levels are
    `source`'s levels 1.. at the same scales, so they take those weights (encoder, residual
    blocks, upsamplers, decoder). Only two layers are new: the first convolution, which reads
    the unshuffled pixels instead of the dropped level's pooled features, and the head, which
    predicts the noise of each 2x2 block. Fine-tuning then has to teach those two and adapt
    the rest, rather than everything from random weights.
    """
    if (
        target.unshuffle != 2 * source.unshuffle
        or target.widths != source.widths[1:]
        or target.blocks != source.blocks[1:]
        or target.channels != source.channels
    ):
        raise ValueError(
            f"its architecture (widths {list(source.widths)}, blocks {list(source.blocks)}, "
            f"unshuffle {source.unshuffle}) is not this run's (widths {list(target.widths)}, "
            f"blocks {list(target.blocks)}, unshuffle {target.unshuffle}) with the top level "
            "dropped: use its widths and blocks without their first entry and twice its "
            "unshuffle"
        )
    # The first convolution (reads the unshuffled pixels) and the head stay as initialised.
    _copy_layers(source.encoder_blocks[1].layers[1:], target.encoder_blocks[0].layers[1:])
    _copy_layers(
        source.encoder_blocks[2:]
        + source.upsamplers[1:]
        + source.decoder_blocks[1:]
        + source.residual_layers[source.blocks[0] :],
        target.encoder_blocks[1:]
        + target.upsamplers
        + target.decoder_blocks
        + target.residual_layers,
    )
