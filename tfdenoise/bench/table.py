"""The rows `tfdenoise bench` prints: each figure's median and spread beside the ratio it is
judged by and its target. Rendering them is the CLI's job (cli/bench.py)."""

from __future__ import annotations

import dataclasses

from tfdenoise.bench.ratios import TARGETS


@dataclasses.dataclass(frozen=True)
class BenchRow:
    """One row of the bench table: a figure (median over rounds, with its min-max spread), and
    the ratio it is judged by (median of per-round ratios, with its spread) and its target."""

    figure: str
    value: float | None
    unit: str
    ratio: float | None = None
    versus: str = ""
    target: float | None = None
    spread: tuple[float, float] | None = None  # (min, max) over rounds; None for one round
    ratio_spread: tuple[float, float] | None = None

    @property
    def met(self) -> bool | None:
        """Whether the ratio meets its target; None where there is no target or no ratio."""
        if self.target is None or self.ratio is None:
            return None
        return self.ratio >= self.target


def _spread(summary: dict | None) -> tuple[float, float] | None:
    """(min, max) of a summary taken over two rounds or more; one round has no spread."""
    if not summary or summary["rounds"] < 2:
        return None
    return summary["min"], summary["max"]


def table_rows(results: dict) -> list[BenchRow]:
    """The rows `tfdenoise bench` prints, from the results of one run (ratios from it only)."""
    pipe, train, prediction = results["pipeline"], results["train"], results["predict"]
    figures, ratio_summary = results["summary"]["figures"], results["summary"]["ratios"]
    rows: list[BenchRow] = []

    def row(figure: str, key: str | None, unit: str, ratio_key=None, versus="") -> None:
        summary = figures.get(key) if key else None
        ratio = ratio_summary.get(ratio_key) if ratio_key else None
        rows.append(
            BenchRow(
                figure,
                summary["median"] if summary else None,
                unit if key else "",
                ratio["median"] if ratio else None,
                versus,
                TARGETS.get(ratio_key),
                _spread(summary),
                _spread(ratio),
            )
        )

    patches = (
        f"{pipe['patch_mode']['patch_size']}², {pipe['patch_mode']['patches_per_image']}/image"
    )
    row(
        f"pipeline.prototype_generator ({pipe['reader']}, 1 thread)",
        "pipeline.prototype_generator_img_s",
        "img/s",
    )
    row(
        "pipeline.files (224 resize)",
        "pipeline.files_img_s",
        "img/s",
        "files_vs_prototype_generator",
        "prototype generator",
    )
    row(
        "pipeline.tfrecords (224 resize) [headline]",
        "pipeline.tfrecords_img_s",
        "img/s",
        "tfrecords_vs_prototype_generator",
        "prototype generator",
    )
    row("", None, "", "tfrecords_vs_mixed_decode_ceiling", "all-format ceiling")
    row(
        "pipeline.tfrecords, non-JPEGs raw (224 resize)",
        "pipeline.tfrecords_raw_img_s",
        "img/s",
        "tfrecords_raw_vs_prototype_generator",
        "prototype generator",
    )
    row("pipeline.decode_ceiling (all formats)", "pipeline.decode_ceiling_mixed_img_s", "img/s")
    row(f"pipeline.files (patches {patches})", "pipeline.files_patch_img_s", "patch/s")
    row(
        "pipeline.tfrecords (patches)",
        "pipeline.tfrecords_patch_img_s",
        "patch/s",
        "tfrecords_patch_vs_files_patch",
        "files (patches)",
    )
    row("pipeline.decode_ceiling (JPEGs)", "pipeline.decode_ceiling_img_s", "img/s")
    row(
        "JPEGs only: prototype_generator",
        "pipeline.jpeg_only.prototype_generator_img_s",
        "img/s",
    )
    row(
        "JPEGs only: files (224 resize)",
        "pipeline.jpeg_only.files_img_s",
        "img/s",
        "files_vs_decode_ceiling",
        "decode ceiling",
    )
    row(
        "JPEGs only: tfrecords (224 resize)",
        "pipeline.jpeg_only.tfrecords_img_s",
        "img/s",
        "tfrecords_vs_decode_ceiling",
        "decode ceiling",
    )
    row("", None, "", "jpeg_only_tfrecords_vs_prototype_generator", "prototype generator")
    row(
        "pipeline.crop_decode_ceiling (JPEG windows)",
        "pipeline.crop_decode_ceiling_patches_s",
        "patch/s",
    )
    row(
        "JPEGs only: tfrecords (patches) [patch mode]",
        "pipeline.jpeg_only.tfrecords_patch_img_s",
        "patch/s",
        "tfrecords_patch_vs_crop_decode_ceiling",
        "crop-decode ceiling",
    )
    row("train.synthetic", "train.synthetic_img_s", "img/s")
    row(
        f"train.pipeline ({train['pipeline_source']})",
        "train.pipeline_img_s",
        "img/s",
        "pipeline_fed_vs_synthetic_training",
        "synthetic",
    )
    row("train.float32", "train.float32_img_s", "img/s")
    row(
        f"train.auto_precision ({train['precision_auto']})",
        "train.auto_precision_img_s",
        "img/s",
        "auto_vs_float32_precision",
        "float32",
    )
    row("train.xla_off", "train.xla_off_img_s", "img/s")
    row("train.xla_on", "train.xla_on_img_s", "img/s", "xla_on_vs_off", "XLA off")
    row("predict (full-size images, 1 pass)", "predict.megapixels_per_s", "MP/s")
    passes = prediction["passes"]
    row(f"predict.model_only ({passes} passes)", "predict.model_only_mp_s", "MP/s")
    row(
        "predict.whole (JPEG -> PNG files)",
        "predict.whole_mp_s",
        "MP/s",
        "predict_whole_vs_model_only",
        "model only",
    )
    return rows
