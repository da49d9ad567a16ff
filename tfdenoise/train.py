"""`fit(config)`: data, precision, model, callbacks, run directory, final test metrics."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import tensorflow as tf

from tfdenoise import callbacks as cb
from tfdenoise import data, distribute, evaluate, hardware, models, noise, runs, service, sources
from tfdenoise.config import FitConfig

MIN_VAL_IMAGES = 32  # small validation sets are scored several times under different noise
GRID_IMAGES = 6
GRID_CONDITION = "seed"  # the prototype's figure showed its own noise model


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    plan: hardware.Plan
    history: list[dict]
    metrics: dict


def _log_default(message: str) -> None:
    print(message, flush=True)


def pipeline_spec(config: FitConfig, batch_size: int | None = None) -> data.PipelineSpec:
    return data.PipelineSpec(
        batch_size=batch_size or config.batch_size,
        patch_size=config.patch_size,
        patches_per_image=config.patches_per_image,
        eval_size=config.eval_size,
        resize=config.resize,
        max_pixels=config.max_pixels,
    )


def eval_splits(source) -> tuple[str, str]:
    """Splits used for (validation, test); small folders may lack one, so borrow, with a note."""
    val = "val" if source.count("val") else "test" if source.count("test") else "train"
    test = "test" if source.count("test") else val
    return val, test


def _compile(model: models.Denoiser, config: FitConfig, plan: hardware.Plan,
             total_steps: int) -> None:
    schedule = keras.optimizers.schedules.CosineDecay(config.lr, total_steps, alpha=0.01)
    optimizer = keras.optimizers.Adam(schedule)
    if plan.precision == "mixed_float16":
        # The outer model is float32 (exact residual), so Keras would not wrap it for us.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    train_noise = noise.build_noise(config.noise, config.sigma_range, config.sigma_sampling)
    model.compile(
        optimizer=optimizer,
        loss=models.build_loss(config.loss),
        metrics=[keras.metrics.MeanMetricWrapper(models.psnr, name="psnr")],
        noise=train_noise,
        jit_compile=plan.xla,
    )


def fit(
    config: FitConfig,
    resume: str | Path | None = None,
    extra_callbacks: Sequence[keras.callbacks.Callback] = (),
    log: Callable[[str], None] = _log_default,
) -> RunResult:
    """Train a denoiser; with `resume`, continue that run directory from its last backup."""
    # First, before any TF op: MultiWorkerMirroredStrategy configures collectives at start-up.
    choice = distribute.choose(config.strategy, hardware.gpu_count(),
                               distribute.cluster_tasks(os.environ.get("TF_CONFIG")))
    strategy = distribute.create(choice)
    chief = distribute.is_chief(strategy)
    run_id = distribute.run_dir_name(config.run_id, choice)
    if resume is None and run_id is not None and runs.is_run_dir(Path(config.runs_dir) / run_id):
        resume = Path(config.runs_dir) / run_id  # same id again: a restarted worker rejoins
    if resume is not None:
        run_dir = Path(resume)
        if not runs.is_run_dir(run_dir):
            raise ValueError(f"not a run directory (no {runs.CONFIG}): {run_dir}")
        if (run_dir / runs.METRICS).is_file():
            raise ValueError(f"run {run_dir} already finished; start a new run instead")
        saved = FitConfig.load(run_dir / runs.CONFIG)
        if config.epochs > saved.epochs:
            saved.epochs = config.epochs  # resuming may extend a run, never shorten it
        config = saved
    config.validate()
    if config.data_service:
        config.data_service = service.check_address(config.data_service)

    plan = hardware.plan(config.precision, config.xla)
    log(f"device: {plan.device}; precision {plan.precision} ({plan.precision_reason}); "
        f"XLA {'on' if plan.xla else 'off'} ({plan.xla_reason})")
    distribute.replica_batch_size(config.batch_size, strategy.num_replicas_in_sync)
    workers = distribute.num_workers(strategy)
    hardware.check_xla(plan, workers)
    log(f"strategy: {choice.name} ({choice.reason}); {strategy.num_replicas_in_sync} replica(s) "
        f"on {workers} worker(s); "
        f"{'chief' if chief else 'non-chief: writes to a temporary directory'}")

    source = sources.open_source(config.data, config.split, config.max_pixels)
    train_count = source.count("train")
    log(f"data: {source.description}: train {train_count}, val {source.count('val')}, "
        f"test {source.count('test')} images; {len(source.skipped)} skipped")
    if source.kind == "records" and tuple(config.split) != tuple(
            source.manifest["split_fractions"]):
        log(f"note: --split {','.join(f'{f:g}' for f in config.split)} is ignored: records "
            "keep the split chosen by make-tfrecords")
    for skipped in source.skipped:
        log(f"  skipped {skipped.path}: {skipped.reason}")
    if train_count == 0:
        raise ValueError(f"no usable training images in {source.description}")
    pil_only = source.pil_only("train") if config.data_service else []
    if pil_only:
        raise ValueError(
            f"{len(pil_only)} training images need PIL to decode (e.g. {pil_only[0].relpath}); "
            f"tf.data service workers run TF ops only: convert them with "
            f"`tfdenoise make-tfrecords` or to JPEG/PNG")
    val_split, test_split = eval_splits(source)
    if val_split != "val" or test_split != "test":
        log(f"note: too few images for every split; validating on '{val_split}', "
            f"testing on '{test_split}'")

    if resume is None and run_id is not None:
        run_dir = runs.named_run_dir(config.runs_dir, run_id, create=chief)
        if chief:
            runs.write_json(run_dir / runs.CONFIG, dataclasses.asdict(config))
    elif resume is None:
        run_dir = runs.new_run_dir(config.runs_dir, config.name)
        runs.write_json(run_dir / runs.CONFIG, dataclasses.asdict(config))
    log(f"run directory: {run_dir}")

    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(plan.precision)
    try:
        with distribute.worker_dir(run_dir, chief) as out_dir:
            result = _train(config, plan, strategy, source, run_dir, out_dir, val_split,
                            test_split, extra_callbacks, log)
        return result
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _train_input(config: FitConfig, source, spec: data.PipelineSpec, job_name: str):
    """Builds one worker's training pipeline, batched per replica, for the InputContext."""

    def build(context: tf.distribute.InputContext) -> tf.data.Dataset:
        per_replica = distribute.replica_batch_size(spec.batch_size, context.num_replicas_in_sync)
        local = dataclasses.replace(spec, batch_size=per_replica)
        if config.data_service:
            # Whole chain up to the batch runs remotely (few large elements cross the network,
            # see README "Scaling out"); the service deals files to its workers, so no shard.
            remote = data.training_pipeline(source.encoded("train", training=True), local,
                                            allow_pil=False)
            return service.distribute(remote, config.data_service, job_name).prefetch(
                data.AUTOTUNE)
        shard = distribute.shard(source.count("train"), context)
        return data.training_pipeline(source.encoded("train", True, shard), local,
                                      allow_pil=source.allow_pil)

    return build


def _eval_input(source, split: str, spec: data.PipelineSpec, repeats: int):
    """Builds one worker's validation pipeline; repeated when several workers share it."""

    def build(context: tf.distribute.InputContext) -> tf.data.Dataset:
        per_replica = distribute.replica_batch_size(spec.batch_size, context.num_replicas_in_sync)
        local = dataclasses.replace(spec, batch_size=per_replica)
        shard = distribute.shard(source.count(split), context)
        dataset = data.eval_pipeline(source.encoded(split, False, shard), local, repeats,
                                     allow_pil=source.allow_pil)
        # Uneven shards would end at different steps and stall the collectives: repeat, and
        # let validation_steps end every worker at the same step.
        return dataset.repeat() if context.num_input_pipelines > 1 else dataset

    return build


def _initialise_from(model: models.Denoiser, config: FitConfig, log) -> None:
    """Fine-tuning: start from a trained model's weights (--init-from)."""
    from tfdenoise.predict import resolve_model_path

    path = resolve_model_path(config.init_from, config.runs_dir)
    try:
        models.copy_weights(models.load_model(path), model)
    except ValueError as error:
        raise ValueError(f"--init-from {path}: {error}") from None
    log(f"initial weights: {path}")


def _train(config, plan, strategy, source, run_dir: Path, out_dir: Path, val_split: str,
           test_split: str, extra_callbacks, log) -> RunResult:
    """`out_dir` is the run directory on the chief and a throw-away one on other workers."""
    keras.utils.set_random_seed(config.seed)
    spec = pipeline_spec(config)
    train_data = distribute.distributed_dataset(
        strategy, _train_input(config, source, spec, f"tfdenoise-{run_dir.name}"))
    val_count = source.count(val_split)
    repeats = max(1, min(8, math.ceil(MIN_VAL_IMAGES / max(1, val_count))))
    val_data = distribute.distributed_dataset(
        strategy, _eval_input(source, val_split, spec, repeats))
    test_data = data.eval_pipeline(source.encoded(test_split, training=False), spec,
                                   allow_pil=source.allow_pil)

    with strategy.scope():  # variables (model, optimizer, metrics) mirrored on every replica
        model = models.built(models.build_model(config.model, config.widths, config.blocks), config.patch_size)
        if config.init_from and not any((run_dir / runs.BACKUP).glob("*.weights.h5")):
            # A resumed run restores its backup instead (the source model may be long gone).
            _initialise_from(model, config, log)
        _compile(model, config, plan, config.epochs * config.steps_per_epoch)

    history_file = cb.HistoryFile(out_dir / runs.HISTORY)
    grid_clean = next(iter(test_data.unbatch().batch(GRID_IMAGES)))["clean"]
    callbacks = [
        # Order matters at epoch end: history and best model are written before the backup,
        # so after a kill the backup is never ahead of the history (the callbacks drop rows
        # of epochs the restored backup re-runs).
        history_file,
        cb.BestModelCheckpoint(out_dir / runs.BEST_MODEL, history_file),
        cb.SharedBackupAndRestore(str(out_dir / runs.BACKUP), str(run_dir / runs.BACKUP),
                                  double_checkpoint=True),
        cb.ResumableEarlyStopping(
            history_file, monitor="val_loss", patience=config.patience, restore_best_weights=True,
        ),
        keras.callbacks.TensorBoard(str(out_dir / runs.TENSORBOARD), write_graph=False,
                                    profile_batch=0),
        cb.ImageGridLogger(out_dir / runs.TENSORBOARD, grid_clean,
                           noise.EVAL_CONDITIONS[GRID_CONDITION]),
        *extra_callbacks,
    ]
    started = time.perf_counter()
    model.fit(
        train_data,
        epochs=config.epochs,
        steps_per_epoch=config.steps_per_epoch,
        validation_data=val_data,
        validation_steps=config.val_steps or math.ceil(val_count * repeats / spec.batch_size),
        callbacks=callbacks,
        shuffle=False,  # the pipeline shuffles; Keras cannot shuffle a dataset
        verbose=0,
    )
    train_seconds = time.perf_counter() - started

    best_path = out_dir / runs.BEST_MODEL
    best = models.load_model(best_path) if best_path.is_file() else model
    log("scoring the test split ...")
    scores = evaluate.evaluate_conditions(best, test_data)
    grid = evaluate.comparison_grid(*evaluate.denoise_examples(
        best, grid_clean, noise.EVAL_CONDITIONS[GRID_CONDITION]))
    evaluate.save_png(grid, out_dir / runs.GRID)

    rows = history_file.rows
    rates = [r["steps_per_second"] for r in rows if r.get("steps_per_second")]
    metrics = {
        "test": {name: dataclasses.asdict(score) for name, score in scores.items()},
        "test_split": test_split,
        "test_images": source.count(test_split),
        "best_val_loss": history_file.best_val_loss(),
        "epochs_trained": len(rows),
        "plan": dataclasses.asdict(plan),
        "train_seconds_this_session": round(train_seconds, 1),
        "median_steps_per_second": sorted(rates)[len(rates) // 2] if rates else None,
        "skipped_files": [dataclasses.asdict(s) for s in source.skipped],
        "parameters": int(best.count_params()),
    }
    runs.write_json(out_dir / runs.METRICS, metrics)
    return RunResult(run_dir, plan, rows, metrics)
