"""`tfdenoise evaluate`: the model against the noisy input and classical baselines."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from tfdenoise.cli.common import (
    ensemble_option,
    inference_policy,
    log,
    model_option,
    name_list,
    note_other_files,
    precision_option,
    progress_bar,
    runs_dir_option,
)
from tfdenoise.config import DEFAULT_EVAL_CROP, PAIRED_PROTOCOL, PROTOCOLS


@click.command("evaluate")
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@model_option
@click.option(
    "--all",
    "use_all",
    is_flag=True,
    help="Score every image in DATA, not only its hash-split test part.",
)
@click.option(
    "--crop",
    type=click.IntRange(0),
    default=None,
    help=f"Score the crop x crop centre of each image; 0 = the full image [default: "
    f"{DEFAULT_EVAL_CROP}; full images with --protocol paper or --reference].",
)
@click.option(
    "--protocol",
    type=click.Choice(PROTOCOLS),
    default="stored",
    show_default=True,
    help="stored: noise clipped and rounded to 8 bits, as files hold it; paper: the "
    "DnCNN/FFDNet/DRUNet protocol (unclipped float Gaussian noise, numpy seeds per image, "
    "full images), to compare with published tables.",
)
@click.option(
    "--baselines",
    "baseline_names",
    default=None,
    metavar="NAMES",
    help="Comma-separated: opencv-nlm, skimage-nlm, skimage-wavelet, cbm3d "
    "(default: all installed); 'none' for the model only.",
)
@click.option(
    "--conditions",
    "condition_names",
    default=None,
    metavar="NAMES",
    help="Comma-separated noise conditions to score: gaussian-15, gaussian-25, "
    "gaussian-50, prototype (or seed), jpeg-noise (sigma 15 then JPEG q80), jpeg-30, "
    "correlated, jpeg-mild (sigma 5 then JPEG q90) (default: all; the same noise as a full run).",
)
@click.option(
    "--reference",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Real noise: DATA holds noisy photos and this folder their clean references (same "
    "relative path, any image suffix); scores every pair instead of added noise.",
)
@click.option(
    "--grid",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write an original / noisy (sigma 25) / denoised PNG grid here.",
)
@click.option(
    "--json",
    "json_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the scores as JSON here.",
)
@precision_option
@ensemble_option
@runs_dir_option
def evaluate_command(
    data: Path,
    model_spec,
    use_all,
    crop,
    protocol,
    baseline_names,
    condition_names,
    reference,
    grid,
    json_file,
    precision,
    ensemble,
    runs_dir,
) -> None:
    """PSNR/SSIM/colour shift (ΔE) per noise condition on DATA's test split (or on real noisy
    photos against --reference): model vs noisy vs baselines."""
    from tfdenoise import checkpoints, evaluate, evaluate_journal, evaluate_pairs, metrics, runs

    if reference is not None and (protocol != "stored" or condition_names or use_all):
        raise click.UsageError(
            "--reference scores every pair under its real noise: "
            "--protocol, --conditions and --all do not apply"
        )

    names = None
    if baseline_names is not None:
        names = [] if baseline_names == "none" else name_list(baseline_names)
    conditions = None if condition_names is None else name_list(condition_names)
    if crop is None:
        crop = 0 if protocol == "paper" or reference is not None else DEFAULT_EVAL_CROP
    # the runs folder inside DATA is left out, as fit leaves it out (same test split)
    exclude = None if reference is not None else runs_dir
    note_other_files(data, exclude=exclude)
    try:
        if grid and reference is None:
            evaluate.check_grid(conditions)
        model = checkpoints.load_denoiser(
            model_spec, runs_dir, inference_policy(precision), ensemble
        )
        journal = None
        if json_file:  # a killed run resumes from its per-image scores
            model_file = checkpoints.resolve_model_path(model_spec, runs_dir).resolve()
            stat = model_file.stat()
            model_settings = {
                "model": [str(model_file), stat.st_size, stat.st_mtime_ns],
                "ensemble": ensemble,
                "precision": precision,
            }

            def journal(settings: dict) -> evaluate_journal.Journal:
                return evaluate_journal.Journal(
                    evaluate_journal.journal_path(json_file), {**settings, **model_settings}, log
                )

        with progress_bar() as progress:
            task = progress.add_task("evaluating", total=None, status="")

            def on_step(step: str) -> None:
                progress.update(task, status=step)

            if reference is not None:
                result, triples = evaluate_pairs.evaluate_pairs(
                    model, data, reference, crop or None, names, on_step=on_step, journal=journal
                )
            else:
                result, triples = evaluate.evaluate_folder(
                    model,
                    data,
                    use_all,
                    crop or None,
                    names,
                    on_step=on_step,
                    condition_names=conditions,
                    protocol=protocol,
                    journal=journal,
                    exclude=runs_dir,
                )
    except (ValueError, checkpoints.ModelLoadError) as error:
        raise click.UsageError(str(error)) from None
    for note in result.notes:
        log(f"note: {note}")
    _print_evaluation(result)
    if json_file:  # with the settings that produced the model's scores
        runs.write_json(
            json_file,
            {
                **result.to_json(),
                "model": model_spec or "bundled",
                "ensemble": ensemble,
                "precision": precision,
            },
        )
    if json_file:
        evaluate_journal.discard(json_file)  # the results are saved: nothing left to resume
    if grid and triples:
        metrics.save_grid(evaluate.grid_image(triples), grid)
    elif grid:
        log(f"note: {grid} not written: every image was scored by the run this one resumed")


def _print_evaluation(result) -> None:
    # an image smaller than the crop is scored whole: "512x512 crops" alone would overstate
    crop = (
        f"centre crops of up to {result.crop}x{result.crop} (smaller images whole)"
        if result.crop
        else "full images"
    )
    noise = (
        "real noise against clean references"
        if result.protocol == PAIRED_PROTOCOL
        else f"fixed seeded noise, {result.protocol} protocol"
    )
    table = Table(title=f"{len(result.images)} images, {crop}, {noise}")
    for column in ("condition", "method", "PSNR dB", "SSIM", "ΔE00 (low-pass)", "MP/s"):
        table.add_column(column, justify="left" if column in ("condition", "method") else "right")
    for condition, methods in result.scores.items():
        for method, score in methods.items():
            speed = score.megapixels_per_second
            table.add_row(
                condition,
                method,
                f"{score.psnr:.2f}",
                f"{score.ssim:.4f}",
                f"{score.delta_e:.2f}",
                "-" if speed is None else f"{speed:.3f}",
            )
        table.add_section()
    Console().print(table)
