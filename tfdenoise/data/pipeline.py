"""tf.data input pipelines: encoded images -> uint8 patches, in named stages.

    files or records -> (bytes, decoder) -> decode (+ crop) + flip -> batch(uint8) -> prefetch

Each stage is a small function of tensors, usable eagerly and inside `Dataset.map`. Training
batches are uint8 ({"clean"}); evaluation batches also carry each element's index
({"clean", "index"}) so test steps derive fixed noise seeds from it. Folder and TFRecord
sources differ only in the first stage (where the encoded bytes come from).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfdenoise.config import DEFAULT_MAX_PIXELS
from tfdenoise.io.files import Decoder, ImageError, ImageFile, load_rgb8
from tfdenoise.io.records.schema import RAW_DECODER, decode_raw_pixels, parse_example
from tfdenoise.padding import mirror_pad_to

AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class PipelineSpec:
    """Shapes and sizes of a pipeline; built from FitConfig by train.py."""

    batch_size: int = 16
    patch_size: int = 128
    patches_per_image: int = 4
    eval_size: int = 256
    resize: int | None = None  # prototype mode: whole image resized to resize x resize
    max_pixels: int = DEFAULT_MAX_PIXELS
    shuffle_patches: int = 256  # buffer that mixes patches from different images


# --- stage: decode ----------------------------------------------------------------------------


def _pil_decode(data: np.ndarray | bytes) -> np.ndarray:
    raw = data.item() if isinstance(data, np.ndarray) else bytes(data)  # 0-d object array
    try:
        return load_rgb8(raw, apply_orientation=False)
    except ImageError as error:
        raise ValueError(str(error)) from None


def decode_full(data: tf.Tensor, decoder: tf.Tensor, allow_pil: bool = True) -> tf.Tensor:
    """Whole image as [H, W, 3] uint8, with TF's decoders where exact, PIL otherwise; raw
    record pixels (schema.RAW_DECODER) by a copy, their size checked (InvalidArgumentError).

    allow_pil=False leaves the PIL branch (a tf.numpy_function) out of the graph, for sources
    that hold only JPEG/PNG/raw (TFRecords): such a graph can be serialized and shipped to
    tf.data service workers. A PIL decoder id then goes to tf.io.decode_image.
    """

    def jpeg():
        return tf.io.decode_jpeg(data, channels=3)

    def tf_image():
        return tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)

    def pil():
        image = tf.numpy_function(_pil_decode, [data], tf.uint8, stateful=False)
        return tf.ensure_shape(image, [None, None, 3])

    def raw():
        return decode_raw_pixels(data)

    # indexed by decoder id: files.Decoder's JPEG, TF_IMAGE, PIL, then RAW_DECODER
    branches = [jpeg, tf_image, pil if allow_pil else tf_image, raw]
    assert len(branches) == RAW_DECODER + 1
    image = tf.switch_case(tf.cast(decoder, tf.int32), branches)  # out of range: last branch
    return tf.ensure_shape(image, [None, None, 3])


def _random_offsets(height, width, size):
    top = tf.random.uniform([], 0, height - size + 1, dtype=tf.int32)
    left = tf.random.uniform([], 0, width - size + 1, dtype=tf.int32)
    return top, left


def _mirror_pad_if_smaller(image: tf.Tensor, size: int) -> tf.Tensor:
    """mirror_pad_to(image, size, size), skipped when both sides are >= size already: there it
    is an identity that still gathers every pixel twice (~1 ms for a 0.25 MP image, 10x the
    cost of four 128^2 crops; measured with tools/record_formats.py's raw records)."""
    shape = tf.shape(image)
    small = tf.logical_or(shape[0] < size, shape[1] < size)
    padded = tf.cond(small, lambda: mirror_pad_to(image, size, size), lambda: image)
    return tf.ensure_shape(padded, [None, None, 3])


def random_crops(image: tf.Tensor, size: int, count: int) -> tf.Tensor:
    """`count` random size x size crops ([count, size, size, 3]); small images are mirror-padded."""
    image = _mirror_pad_if_smaller(image, size)
    shape = tf.shape(image)
    crops = []
    for _ in range(count):
        top, left = _random_offsets(shape[0], shape[1], size)
        crops.append(image[top : top + size, left : left + size, :])
    return tf.stack(crops)


def _is_jpeg_at_least(data: tf.Tensor, decoder: tf.Tensor, size: int) -> tf.Tensor:
    """True for a JPEG whose both sides are >= size (its header is read only if it is a JPEG)."""
    is_jpeg = tf.equal(tf.cast(decoder, tf.int32), int(Decoder.JPEG))
    return tf.cond(
        is_jpeg,
        lambda: tf.reduce_all(tf.io.extract_jpeg_shape(data, output_type=tf.int32)[:2] >= size),
        lambda: tf.constant(False),
    )


def decode_random_patches(
    data: tf.Tensor, decoder: tf.Tensor, size: int, count: int, allow_pil: bool = True
) -> tf.Tensor:
    """Random patches of one encoded image.

    JPEGs large enough are decoded only inside each crop window (decode_and_crop_jpeg skips the
    IDCT outside it, ~2.7x faster than a full decode for 128-pixel patches); anything else is
    decoded once and cropped `count` times.
    """

    def jpeg_windows():
        shape = tf.io.extract_jpeg_shape(data, output_type=tf.int32)
        crops = []
        for _ in range(count):
            top, left = _random_offsets(shape[0], shape[1], size)
            window = tf.stack([top, left, size, size])
            crops.append(tf.io.decode_and_crop_jpeg(data, window, channels=3))
        return tf.stack(crops)

    def full():
        return random_crops(decode_full(data, decoder, allow_pil), size, count)

    patches = tf.cond(_is_jpeg_at_least(data, decoder, size), jpeg_windows, full)
    return tf.ensure_shape(patches, [count, size, size, 3])


def center_crop(image: tf.Tensor, size: int) -> tf.Tensor:
    """Deterministic size x size centre crop; smaller images are mirror-padded first."""
    image = _mirror_pad_if_smaller(image, size)
    shape = tf.shape(image)
    top, left = (shape[0] - size) // 2, (shape[1] - size) // 2
    return tf.ensure_shape(image[top : top + size, left : left + size, :], [size, size, 3])


def decode_center_crop(
    data: tf.Tensor, decoder: tf.Tensor, size: int, allow_pil: bool = True
) -> tf.Tensor:
    """Centre crop for evaluation; large JPEGs decode only the window."""

    def jpeg_window():
        shape = tf.io.extract_jpeg_shape(data, output_type=tf.int32)
        window = tf.stack([(shape[0] - size) // 2, (shape[1] - size) // 2, size, size])
        return tf.io.decode_and_crop_jpeg(data, window, channels=3)

    def full():
        return center_crop(decode_full(data, decoder, allow_pil), size)

    large = _is_jpeg_at_least(data, decoder, size)
    return tf.ensure_shape(tf.cond(large, jpeg_window, full), [size, size, 3])


JPEG_SCALES = (1, 2, 4, 8)  # libjpeg can decode directly at 1/1, 1/2, 1/4 and 1/8 scale


def jpeg_scale_index(data: tf.Tensor, size: int) -> tf.Tensor:
    """Index into JPEG_SCALES of the largest DCT scale-down that keeps both sides >= size: how
    many of the ratios 2, 4, 8 the short side allows (read from the JPEG header alone)."""
    shape = tf.io.extract_jpeg_shape(data, output_type=tf.int32)
    short_side = tf.minimum(shape[0], shape[1])
    return tf.reduce_sum(tf.cast(short_side >= size * tf.constant(JPEG_SCALES[1:]), tf.int32))


def decode_jpeg_at_least(data: tf.Tensor, size: int) -> tf.Tensor:
    """A JPEG decoded at the smallest DCT scale whose both sides stay >= size (or at full size).

    libjpeg scales inside the inverse DCT, so most of the decoding work is never done: on the
    benchmark corpus (~1 MP photos going to 224x224) this roughly halves the decode cost per
    image. Only for images that are shrunk anyway; the area resize after it does the rest.
    """
    index = jpeg_scale_index(data, size)
    branches = [
        lambda ratio=ratio: tf.io.decode_jpeg(data, channels=3, ratio=ratio)
        for ratio in JPEG_SCALES
    ]
    return tf.ensure_shape(tf.switch_case(index, branches), [None, None, 3])


def decode_resized(
    data: tf.Tensor, decoder: tf.Tensor, size: int, allow_pil: bool = True
) -> tf.Tensor:
    """Prototype mode: the whole image resized to size x size (aspect ratio not kept).

    JPEGs are decoded at a reduced DCT scale first (decode_jpeg_at_least); other formats in full.
    """
    is_jpeg = tf.equal(tf.cast(decoder, tf.int32), int(Decoder.JPEG))
    image = tf.cond(
        is_jpeg,
        lambda: decode_jpeg_at_least(data, size),
        lambda: decode_full(data, decoder, allow_pil),
    )
    return resize_to(image, size)


def resize_to(image: tf.Tensor, size: int) -> tf.Tensor:
    """uint8 image -> size x size uint8. Shrinking uses area averaging (a box filter: aliasing-free
    and ~3x cheaper than tf.image.resize's antialiased kernels, which cost more than the decode);
    an image smaller than size on either side is enlarged bilinearly instead."""
    shape = tf.shape(image)
    shrinking = tf.logical_and(shape[0] >= size, shape[1] >= size)
    resized = tf.cond(
        shrinking,
        lambda: tf.image.resize(image, [size, size], method="area"),
        lambda: tf.image.resize(image, [size, size], method="bilinear"),
    )
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


# --- stage: augment -------------------------------------------------------------------------


def random_flip(image: tf.Tensor) -> tf.Tensor:
    """One [H, W, 3] image unflipped, flipped left-right, up-down or both, each with chance 1/4
    (the law of two independent coin flips; noise statistics do not depend on orientation).

    One draw and at most one reverse: tf.image's two random flips cost two draws, two conds
    and up to two copies, which per 128^2 patch made patch mode 0.79x its crop-decode ceiling
    against 0.91x for this (tools/profile_pipeline.py's patch figures).
    """
    choice = tf.random.uniform([], 0, 4, dtype=tf.int32)
    flips = [
        lambda: image,
        lambda: tf.reverse(image, [1]),
        lambda: tf.reverse(image, [0]),
        lambda: tf.reverse(image, [0, 1]),
    ]
    return tf.ensure_shape(tf.switch_case(choice, flips), image.shape)


def random_flips(patches: tf.Tensor) -> tf.Tensor:
    """random_flip for each of a static number of patches [N, H, W, 3], inside the decode map:
    a separate map after unbatching costs a tf.data element step per patch."""
    return tf.stack([random_flip(patch) for patch in tf.unstack(patches)])


# --- stage: sources of encoded images -----------------------------------------------------


def encoded_files(files: Sequence[ImageFile], shuffle: bool, repeat: bool) -> tf.data.Dataset:
    """(bytes, decoder) for image files; file names are shuffled before any read."""
    if not files:
        raise ValueError("no image files to read")
    paths = [f.path for f in files]
    decoders = [int(f.info.decoder) for f in files]
    dataset = tf.data.Dataset.from_tensor_slices((paths, decoders))
    if shuffle:
        # Shuffling names is free; shuffling decoded images would need a large memory buffer.
        dataset = dataset.shuffle(len(paths), reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    return dataset.map(
        lambda path, decoder: (tf.io.read_file(path), decoder),
        num_parallel_calls=AUTOTUNE,
        deterministic=not shuffle,
    )


def encoded_records(
    shard_paths: Sequence[str],
    shuffle: bool,
    repeat: bool,
    cycle_length: int = 4,
    shuffle_records: int = 32,
    cached_records: int = 0,
    data_shard: tuple[int, int] = (1, 0),
) -> tf.data.Dataset:
    """(bytes, decoder) from TFRecord shards.

    Training, streamed: shard order shuffled every epoch, `cycle_length` shards read at once in
    whatever order they arrive, then a small record shuffle (a few shards hold many neighbouring
    images; the buffer holds encoded images, so keep it small). Evaluation: one shard after the
    other in name order, so images come in relative-path order, as from a folder: same index,
    same fixed noise.

    cached_records: when training on records whose encoded bytes fit in memory, their count
    (the caller knows the bytes from the manifest): every record is read and parsed once, kept
    in memory, and all of them are reshuffled each epoch, like big_vision's `cache_raw`. Later
    epochs read no file and parse nothing, and a batch draws from the whole split instead of a
    window of `shuffle_records` from `cycle_length` shards.

    data_shard: (count, index) keeps every count-th record, for one of several workers that
    share fewer shard files than there are workers. Records are then read in name order, the
    same on every worker, and sharded before any shuffle: the workers' records are disjoint
    and together the whole split (a shuffle first would give each worker a different order).
    """
    if not shard_paths:
        raise ValueError("no TFRecord shards to read")
    count, index = data_shard
    streamed = shuffle and not cached_records and count == 1
    if not streamed:  # name order: evaluation, data sharding, or a split kept in memory
        dataset = tf.data.TFRecordDataset(list(shard_paths))
        if count > 1:
            dataset = dataset.shard(count, index)
        dataset = dataset.map(parse_example, num_parallel_calls=AUTOTUNE, deterministic=not shuffle)
        if shuffle and cached_records:
            dataset = dataset.cache().shuffle(  # the buffer holds references to the cache
                cached_records, reshuffle_each_iteration=True
            )
        elif shuffle:
            dataset = dataset.shuffle(shuffle_records)
        return dataset.repeat() if repeat else dataset
    dataset = tf.data.Dataset.from_tensor_slices(list(shard_paths))
    dataset = dataset.shuffle(len(shard_paths), reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.interleave(  # parallel reads: one TFRecordDataset per shard in the cycle
        tf.data.TFRecordDataset,
        cycle_length=min(cycle_length, len(shard_paths)),
        num_parallel_calls=AUTOTUNE,
        deterministic=False,
    )
    dataset = dataset.shuffle(shuffle_records)
    return dataset.map(parse_example, num_parallel_calls=AUTOTUNE, deterministic=False)


# --- pipelines --------------------------------------------------------------------------------


def _options(training: bool) -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = not training  # training takes whichever image decodes first
    options.autotune.enabled = True
    options.experimental_optimization.map_parallelization = True
    return options


def training_pipeline(
    encoded: tf.data.Dataset, spec: PipelineSpec, allow_pil: bool = True
) -> tf.data.Dataset:
    """Infinite stream of {"clean": uint8 [batch, P, P, 3]} from a repeated (bytes, decoder) stream.

    Order: decode and flip in parallel (AUTOTUNE, any order; one map per image, so per-element
    steps are per image, not per patch) -> drop unreadable images -> unbatch the patches of
    each image -> shuffle patches so a batch mixes images -> batch -> prefetch so the next
    batch is decoded while the accelerator trains on this one. Resize mode (one image per
    element) goes from the map straight to the batch.
    allow_pil: see decode_full.
    """
    if spec.resize:
        # One whole image per element: decode, resize and flip in a single map. No unbatch and
        # no shuffle buffer (the sources already shuffle whole images), so small images do not
        # pay three more per-element steps.
        size = spec.resize
        images = encoded.map(
            lambda data, decoder: random_flip(decode_resized(data, decoder, size, allow_pil)),
            num_parallel_calls=AUTOTUNE,
            deterministic=False,
        ).ignore_errors(log_warning=True)  # files that pass the scan but fail later
    else:
        size, count = spec.patch_size, spec.patches_per_image
        images = (
            encoded.map(
                lambda data, decoder: random_flips(
                    decode_random_patches(data, decoder, size, count, allow_pil)
                ),
                num_parallel_calls=AUTOTUNE,
                deterministic=False,
            )
            .ignore_errors(log_warning=True)
            .unbatch()
            .shuffle(spec.shuffle_patches)  # so that a batch mixes patches of many images
        )
    dataset = (
        images.batch(spec.batch_size, drop_remainder=True)  # static batch shape: one trace
        .map(lambda batch: {"clean": batch}, num_parallel_calls=AUTOTUNE)
        .prefetch(AUTOTUNE)  # the next batch decodes while the accelerator trains on this one
    )
    return dataset.with_options(_options(training=True))


def eval_pipeline(
    encoded: tf.data.Dataset,
    spec: PipelineSpec,
    repeats: int = 1,
    allow_pil: bool = True,
    limit: int | None = None,
) -> tf.data.Dataset:
    """Finite, deterministic {"clean", "index"} batches of centre crops (or resized images).

    `repeats` > 1 scores each image several times under different fixed noise, which steadies
    the validation loss of small validation sets. `limit` keeps the first images that decode
    (a preview grid): taken before the cache, so reading them all fills it, and TF does not
    warn about (and discard) a cache read part-way.
    """
    if spec.resize:
        size = spec.resize
        decode = lambda data, decoder: decode_resized(data, decoder, size, allow_pil)  # noqa: E731
    else:
        size = spec.eval_size
        decode = lambda data, decoder: decode_center_crop(  # noqa: E731
            data, decoder, size, allow_pil
        )
    dataset = (
        encoded.map(decode, num_parallel_calls=AUTOTUNE, deterministic=True)
        .ignore_errors(log_warning=True)
        .take(-1 if limit is None else limit)
        .cache()  # evaluation images are few and fixed: decode them once
        .repeat(repeats)
        .enumerate()
        .map(lambda index, image: {"clean": image, "index": index}, num_parallel_calls=AUTOTUNE)
        .batch(spec.batch_size)
        .prefetch(AUTOTUNE)
    )
    return dataset.with_options(_options(training=False))
