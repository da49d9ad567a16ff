"""The comparisons `tfdenoise bench` is judged by: each ratio's two figure keys, and the
targets. They are the results' contract: `rounds.summarize_rounds` computes every pair per
round, `run` writes the targets into the JSON and the table marks each ratio against its own."""

from __future__ import annotations

# The comparisons the targets are stated in: name -> (numerator, denominator) figure keys.
# Each is computed per round (see per_round_ratios); missing figures give None.
RATIO_PAIRS: dict[str, tuple[str, str]] = {
    "tfrecords_vs_prototype_generator": (
        "pipeline.tfrecords_img_s",
        "pipeline.prototype_generator_img_s",
    ),
    # The same, from records that store non-JPEGs as raw pixels (`make-tfrecords --lossless raw`).
    "tfrecords_raw_vs_prototype_generator": (
        "pipeline.tfrecords_raw_img_s",
        "pipeline.prototype_generator_img_s",
    ),
    "files_vs_prototype_generator": ("pipeline.files_img_s", "pipeline.prototype_generator_img_s"),
    # Same JPEGs on both sides: the pipeline on the corpus's JPEGs vs decoding them in full.
    "tfrecords_vs_decode_ceiling": (
        "pipeline.jpeg_only.tfrecords_img_s",
        "pipeline.decode_ceiling_img_s",
    ),
    "files_vs_decode_ceiling": ("pipeline.jpeg_only.files_img_s", "pipeline.decode_ceiling_img_s"),
    # Whole corpus vs decoding every one of its files in full (PNG and WebP included).
    "tfrecords_vs_mixed_decode_ceiling": (
        "pipeline.tfrecords_img_s",
        "pipeline.decode_ceiling_mixed_img_s",
    ),
    "jpeg_only_tfrecords_vs_prototype_generator": (
        "pipeline.jpeg_only.tfrecords_img_s",
        "pipeline.jpeg_only.prototype_generator_img_s",
    ),
    "tfrecords_patch_vs_files_patch": (
        "pipeline.tfrecords_patch_img_s",
        "pipeline.files_patch_img_s",
    ),
    # Patch mode from TFRecords on the corpus's JPEGs vs decoding only their patch windows.
    "tfrecords_patch_vs_crop_decode_ceiling": (
        "pipeline.jpeg_only.tfrecords_patch_img_s",
        "pipeline.crop_decode_ceiling_patches_s",
    ),
    "pipeline_fed_vs_synthetic_training": ("train.pipeline_img_s", "train.synthetic_img_s"),
    "auto_vs_float32_precision": ("train.auto_precision_img_s", "train.float32_img_s"),
    "xla_on_vs_off": ("train.xla_on_img_s", "train.xla_off_img_s"),
    "predict_whole_vs_model_only": ("predict.whole_mp_s", "predict.model_only_mp_s"),
}


# The input-pipeline issue's targets (full, non-quick runs on a realistic corpus): 4x the
# prototype's generator on mixed formats (judged for both record formats of non-JPEGs), 1.5x
# a full JPEG decode for resize mode (DCT-scaled decoding does less work), 0.9x the
# crop-decode ceiling in patch mode, 0.95 for training fed by the pipeline vs on a constant
# batch.
TARGETS = {
    "tfrecords_vs_prototype_generator": 4.0,
    "tfrecords_raw_vs_prototype_generator": 4.0,
    "tfrecords_vs_decode_ceiling": 1.5,
    "tfrecords_patch_vs_crop_decode_ceiling": 0.9,
    "pipeline_fed_vs_synthetic_training": 0.95,
    "auto_vs_float32_precision": 1.5,
    "predict_whole_vs_model_only": 0.85,
}
