"""`fit(config)`: a training run in named stages.

choose the strategy -> prepare the run directory (new, named or resumed) -> open the data
and check its splits -> precision and XLA plan -> build and compile the model (under the
precision policy) -> callbacks -> model.fit -> score the test split -> metrics.json -> remove
the backup (kept until then, so that a run killed while scoring resumes at the scoring)
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import tensorflow as tf

from tfdenoise import checkpoints, hardware, losses, metrics, models, runs
from tfdenoise.config import DEFAULT_CLIP_NORM, DEFAULT_NOISE, VAL_LOSS, FitConfig
from tfdenoise.data import pipeline, sources
from tfdenoise.degradations import catalog
from tfdenoise.io import locks
from tfdenoise.train import callbacks as cb
from tfdenoise.train import distribute, service

MIN_VAL_IMAGES = 32  # small validation sets are scored several times under different noise
FIT_GRID_IMAGES = 6
FIT_GRID_CONDITION = "prototype"  # the prototype's figure showed its own noise model

Log = Callable[[str], None]


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    plan: hardware.HardwarePlan
    history: list[dict]
    metrics: dict


def _log_default(message: str) -> None:
    print(message, flush=True)


def pipeline_spec(config: FitConfig, batch_size: int | None = None) -> pipeline.PipelineSpec:
    return pipeline.PipelineSpec(
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


def compile_denoiser(
    model: models.Denoiser,
    *,
    precision: str,
    xla: bool,
    lr: float = 1e-3,
    total_steps: int | None = None,
    loss: str = "l1",
    psnr_cap: float = losses.PSNR_LOSS_CAP_DB,
    noise_model: Callable | None = None,
    clip_norm: float | None = DEFAULT_CLIP_NORM,
    ema: float | None = None,
) -> None:
    """Compile as every training does (fit and bench time the same step): Adam, with cosine
    decay to 1% over `total_steps` when given and its gradients' global norm clipped to
    `clip_norm`, keeping a moving average of the weights with momentum `ema` when given; a loss
    scale for float16; the PSNR metric."""
    learning_rate = (
        keras.optimizers.schedules.CosineDecay(lr, total_steps, alpha=0.01) if total_steps else lr
    )
    optimizer = keras.optimizers.Adam(
        learning_rate,
        global_clipnorm=clip_norm,
        use_ema=ema is not None,
        ema_momentum=0.99 if ema is None else ema,
    )
    if precision == "mixed_float16":
        # The outer model is float32 (exact residual), so Keras would not wrap it for us.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(
        optimizer=optimizer,
        loss=losses.build_loss(loss, psnr_cap),
        metrics=[keras.metrics.MeanMetricWrapper(metrics.psnr, name="psnr")],
        noise=noise_model or catalog.build_noise(DEFAULT_NOISE),
        jit_compile=xla,
    )


# --- stage: the run directory ---------------------------------------------------------------


def resumed_config(resume: Path, extend_to: int | None = None) -> FitConfig:
    """The saved config of an interrupted run, to `extend_to` epochs if that is more.

    Only an asked-for extension changes it: the epoch count also sets the length of the cosine
    schedule, so a resumed run must keep its own to continue exactly as it would have.
    """
    if not runs.is_run_dir(resume):
        raise ValueError(f"not a run directory (no {runs.CONFIG}): {resume}")
    if (resume / runs.METRICS).is_file():
        raise ValueError(f"run {resume} already finished; start a new run instead")
    saved = FitConfig.load(resume / runs.CONFIG)
    if extend_to is not None:
        saved.epochs = max(saved.epochs, extend_to)
    return saved


def prepare_run_dir(
    config: FitConfig, resume: Path | None, run_id: str | None, chief: bool
) -> Path:
    """The run directory: the resumed one, runs/<run_id> for a multi-worker run, or a new
    timestamped one; a new directory, or a resumed one extended to more epochs, gets
    config.json (on the chief only), so that a later resume continues the same schedule."""
    if resume is not None:
        if chief and FitConfig.load(resume / runs.CONFIG).epochs != config.epochs:
            runs.write_json(resume / runs.CONFIG, dataclasses.asdict(config))
        return resume
    if run_id is not None:
        run_dir = runs.named_run_dir(config.runs_dir, run_id, create=chief)
    else:
        run_dir = runs.new_run_dir(config.runs_dir, config.name)
    if chief:
        runs.write_json(run_dir / runs.CONFIG, dataclasses.asdict(with_absolute_paths(config)))
    return run_dir


def with_absolute_paths(config: FitConfig) -> FitConfig:
    """The config as config.json stores it: DATA, --val-data, --runs-dir and an --init-from
    path made absolute (its keywords 'bundled' and 'best' kept: 'best' is then looked up in
    the absolute runs dir). Why: a resume reads them back, maybe from another directory, where
    relative ones would name another folder or none; configs written before 2026-12-07 keep
    relative paths and still load."""

    def absolute(path: str | None) -> str | None:
        return None if path is None else os.path.abspath(path)

    keyword = config.init_from in (None, checkpoints.BUNDLED, "best")
    return dataclasses.replace(
        config,
        data=absolute(config.data),
        val_data=absolute(config.val_data),
        runs_dir=absolute(config.runs_dir),
        init_from=config.init_from if keyword else absolute(config.init_from),
    )


def finished_training(config: FitConfig, run_dir: Path) -> int | None:
    """The epoch a resumed run's training already ended at (every epoch, or early stopping's
    end), or None if it has epochs left to train.

    Why: a run killed while its test split was scored must go on to the scoring, not train
    again. With a backup, its epoch says how far training got (history.json may be one epoch
    ahead of it). Without one, history.json is complete only if something removed the backup
    after training (versions before 2026-12-07 did so before scoring): two or more epochs of
    history and no backup cannot be continued, and training from scratch would overwrite
    them, so that is a ValueError.
    """
    history = cb.HistoryFile(run_dir / runs.HISTORY)
    monitor = selection_monitor(config)
    backed_up = cb.backed_up_epoch(run_dir)
    epochs = backed_up or max((row["epoch"] for row in history.trained_rows), default=0)
    if epochs == 0:
        return None
    stopped_early = epochs >= 2 and history.epochs_since_best(monitor, epochs) >= config.patience
    if epochs >= config.epochs or stopped_early:
        return epochs
    if not backed_up and len(history.trained_rows) >= 2:
        raise ValueError(
            f"run {run_dir} has {len(history.trained_rows)} epochs of history but no backup to "
            "continue from; start a new run (or --init-from it) instead"
        )
    return None


class RunBusy(ValueError):
    """The run directory is being written by another fit (its lock is held)."""


def run_lock(run_dir: Path) -> contextlib.AbstractContextManager[None]:
    """Hold the run directory's lock; RunBusy at once if another fit holds it. Why: two fits
    of one run (say two `--resume`) would both train and interleave history.json and
    best.keras."""
    return locks.exclusive(
        run_dir,
        RunBusy(
            f"run {run_dir} is being trained by another fit (it holds {run_dir / locks.LOCK}); "
            "wait for it to finish"
        ),
    )


# --- stage: the data ------------------------------------------------------------------------


def open_data(config: FitConfig, log: Log):
    """The training source with its splits checked and explained, and the validation one:
    (source, val source, val split, test split)."""
    source = sources.open_source(
        config.data, config.split, config.max_pixels, exclude=config.runs_dir
    )
    train_count = source.count("train")
    log(
        f"data: {source.description}: train {train_count}, val {source.count('val')}, "
        f"test {source.count('test')} images; {len(source.skipped)} skipped"
    )
    if source.kind == "records" and tuple(config.split) != tuple(
        source.manifest["split_fractions"]
    ):
        log(
            f"note: --split {','.join(f'{f:g}' for f in config.split)} is ignored: records "
            "keep the split chosen by make-tfrecords"
        )
    for skipped in source.skipped:
        log(f"  skipped {skipped.path}: {skipped.reason}")
    if train_count == 0:
        raise ValueError(f"no usable training images in {source.description}")
    pil_only = source.pil_only("train") if config.data_service else []
    if pil_only:
        raise ValueError(
            f"{len(pil_only)} training images need PIL to decode (e.g. {pil_only[0].relpath}); "
            f"tf.data service workers run TF ops only: convert them with "
            f"`tfdenoise make-tfrecords` or to JPEG/PNG"
        )
    if config.val_data:
        val_source = open_val_data(config, source, log)
        _, test_split = eval_splits(source)  # DATA's own val split is free to be the test
        if test_split != "test":
            log(f"note: no test split in {source.description}; testing on '{test_split}'")
        return source, val_source, "val", test_split
    val_split, test_split = eval_splits(source)
    if val_split != "val" or test_split != "test":
        log(
            f"note: too few images for every split; validating on '{val_split}', "
            f"testing on '{test_split}'"
        )
    return source, source, val_split, test_split


def open_val_data(config: FitConfig, source, log: Log) -> sources.FolderSource:
    """--val-data: every image of that folder in the val split, its bad files skipped with
    their reasons; a validation image that is also a training image (the same bytes) is an
    error, since selecting epochs by it would reward memorising it."""
    val_source = sources.FolderSource(config.val_data, None, (0.0, 1.0, 0.0), config.max_pixels)
    for skipped in val_source.skipped:
        log(f"  skipped {skipped.path}: {skipped.reason}")
    if not val_source.count("val"):
        raise ValueError(f"no usable validation images in --val-data {config.val_data}")
    if source.kind == "records":
        log("note: --val-data is not compared with TFRecord training data (re-encoded bytes)")
    shared = sources.shared_files(val_source, source, "train")
    if shared:
        raise ValueError(
            f"{len(shared)} --val-data image(s) are also training images of "
            f"{source.description}, e.g. {shared[0]}: keep validation photos out of DATA"
        )
    log(
        f"validation: every image of {val_source.description} ({val_source.count('val')}; "
        f"{len(val_source.skipped)} skipped) instead of DATA's val split"
    )
    return val_source


def _train_input(config: FitConfig, source, spec: pipeline.PipelineSpec, job_name: str):
    """Builds one worker's training pipeline, batched per replica, for the InputContext."""

    def build(context: tf.distribute.InputContext) -> tf.data.Dataset:
        per_replica = distribute.replica_batch_size(spec.batch_size, context.num_replicas_in_sync)
        local = dataclasses.replace(spec, batch_size=per_replica)
        if config.data_service:
            # Whole chain up to the batch runs remotely (few large elements cross the network,
            # see docs/scaling-out.md); the service deals files to its workers, so no shard
            # and nothing kept in memory.
            remote = pipeline.training_pipeline(
                source.encoded("train", training=True, keep_small=False), local, allow_pil=False
            )
            return service.distribute(remote, config.data_service, job_name).prefetch(
                pipeline.AUTOTUNE
            )
        shard = distribute.shard(source.count("train"), context)
        return pipeline.training_pipeline(
            source.encoded("train", True, shard), local, allow_pil=source.allow_pil
        )

    return build


def _eval_input(source, split: str, spec: pipeline.PipelineSpec, repeats: int):
    """Builds one worker's validation pipeline; repeated when several workers share it."""

    def build(context: tf.distribute.InputContext) -> tf.data.Dataset:
        per_replica = distribute.replica_batch_size(spec.batch_size, context.num_replicas_in_sync)
        local = dataclasses.replace(spec, batch_size=per_replica)
        shard = distribute.shard(source.count(split), context)
        dataset = pipeline.eval_pipeline(
            source.encoded(split, False, shard), local, repeats, allow_pil=source.allow_pil
        )
        # Uneven shards would end at different steps and stall the collectives: repeat, and
        # let validation_steps end every worker at the same step.
        return dataset.repeat() if context.num_input_pipelines > 1 else dataset

    return build


# --- stage: the model -----------------------------------------------------------------------


def _initialise_from(model: models.Denoiser, config: FitConfig, log: Log) -> None:
    """Fine-tuning: start from a trained model's weights (--init-from)."""
    path = checkpoints.resolve_model_path(config.init_from, config.runs_dir)
    try:
        models.copy_weights(checkpoints.load_model(path), model)
    except ValueError as error:
        raise ValueError(f"--init-from {path}: {error}") from None
    log(f"initial weights: {path}")


def build_model(
    config: FitConfig, plan: hardware.HardwarePlan, run_dir: Path, log: Log
) -> models.Denoiser:
    """The compiled model, fresh or with --init-from weights (a resumed run restores its
    backup instead: the source model may be long gone). Call inside the strategy scope."""
    model = configured_model(config)
    if config.init_from and not any((run_dir / runs.BACKUP).glob("*.weights.h5")):
        _initialise_from(model, config, log)
    compile_as_configured(model, config, plan.precision, plan.xla)
    return model


def configured_model(config: FitConfig) -> models.Denoiser:
    """The run's architecture, built, with fresh weights."""
    return models.built(
        models.build_model(config.model, config.widths, config.blocks, config.unshuffle),
        config.patch_size,
    )


def compile_as_configured(
    model: models.Denoiser, config: FitConfig, precision: str, xla: bool
) -> None:
    """compile_denoiser with the run's loss, schedule, noise, clipping and averaging: what its
    backup's optimizer state was saved from (train/backup.py reads it back)."""
    compile_denoiser(
        model,
        precision=precision,
        xla=xla,
        lr=config.lr,
        total_steps=config.epochs * config.steps_per_epoch,
        loss=config.loss,
        psnr_cap=config.psnr_cap,
        noise_model=catalog.build_noise(
            config.noise, config.sigma_range, config.sigma_sampling, config.degradation_weights
        ),
        clip_norm=config.clip_norm,
        ema=config.ema,
    )


def selection_monitor(config: FitConfig) -> cb.Monitor:
    """What picks best.keras and stops early (--select-by)."""
    return (
        cb.LOWEST_VAL_LOSS
        if config.select_by == VAL_LOSS
        else cb.condition_monitor(config.select_by)
    )


def condition_scores(config: FitConfig, val_clean: tf.data.Dataset) -> list[cb.ConditionScores]:
    """The callback scoring the validation images under --val-condition/--select-by, seeded
    as `evaluate` seeds each condition (its place in ALL_CONDITIONS); none if none asked."""
    names = config.scored_conditions
    if not names:
        return []
    conditions = {name: catalog.ALL_CONDITIONS[name] for name in names}
    return [cb.ConditionScores(val_clean, conditions, catalog.CONDITION_NUMBERS)]


def make_callbacks(
    out_dir: Path,
    run_dir: Path,
    config: FitConfig,
    grid_clean: tf.Tensor,
    val_clean: tf.data.Dataset,
    extra: Sequence[keras.callbacks.Callback],
) -> tuple[cb.HistoryFile, list]:
    """The history file and every callback, in the order they must run at epoch end: the
    condition scores first (the others read them from the logs), history and best model before
    the backup, so after a kill the backup is never ahead of the history (the callbacks drop
    rows of epochs the restored backup re-runs). With --ema the average of the weights is in the
    model from validation to the grid, and out again for the backup."""
    history_file = cb.HistoryFile(out_dir / runs.HISTORY)
    monitor = selection_monitor(config)
    average_in: list[keras.callbacks.Callback] = []
    average_out: list[keras.callbacks.Callback] = []
    if config.ema:  # validate and judge the average of the weights, back up the trained ones
        put_in, take_out = cb.AveragedWeights().callbacks()
        average_in, average_out = [put_in], [take_out]
    return history_file, [
        *average_in,
        *condition_scores(config, val_clean),
        history_file,
        cb.BestModelCheckpoint(out_dir / runs.BEST_MODEL, history_file, monitor),
        cb.ImageGridLogger(
            out_dir / runs.TENSORBOARD, grid_clean, catalog.EVAL_CONDITIONS[FIT_GRID_CONDITION]
        ),
        *average_out,
        cb.SharedBackupAndRestore(  # kept after training: removed once metrics.json is written
            str(out_dir / runs.BACKUP),
            str(run_dir / runs.BACKUP),
            double_checkpoint=True,
            delete_checkpoint=False,
        ),
        cb.ResumableEarlyStopping(
            history_file,
            monitor,
            patience=config.patience,
            restore_best_weights=True,
        ),
        keras.callbacks.TensorBoard(
            str(out_dir / runs.TENSORBOARD), write_graph=False, profile_batch=0
        ),
        *extra,
    ]


# --- the run --------------------------------------------------------------------------------


def fit(
    config: FitConfig,
    resume: str | Path | None = None,
    extra_callbacks: Sequence[keras.callbacks.Callback] = (),
    log: Log = _log_default,
    extend_to: int | None = None,
) -> RunResult:
    """Train a denoiser; with `resume`, continue that run directory from its last backup (its
    saved config, not `config`, is what runs; `extend_to` raises its epoch count)."""
    # First, before any TF op: MultiWorkerMirroredStrategy configures collectives at start-up.
    choice = distribute.choose(
        config.strategy, hardware.gpu_count(), distribute.cluster_tasks(os.environ.get("TF_CONFIG"))
    )
    strategy = distribute.create(choice)
    chief = distribute.is_chief(strategy)
    run_id = distribute.run_dir_name(config.run_id, choice)
    if resume is None and run_id is not None and runs.is_run_dir(Path(config.runs_dir) / run_id):
        resume = Path(config.runs_dir) / run_id  # same id again: a restarted worker rejoins
    # Held by the chief (the only writer of the run directory) until the run's files are final.
    with contextlib.ExitStack() as held:
        trained = None
        if resume is not None:
            resume = Path(resume)
            if chief and runs.is_run_dir(resume):  # else resumed_config says what is wrong
                held.enter_context(run_lock(resume))
            config = resumed_config(resume, extend_to)
            trained = finished_training(config, resume)  # before an extension is written
            log(f"resuming {resume}: {config.epochs} epochs in all")
        config.validate()
        if config.data_service:
            config.data_service = service.check_address(config.data_service)

        plan = hardware.plan(config.precision, config.xla)
        log(
            f"device: {plan.device}; precision {plan.precision} ({plan.precision_reason}); "
            f"XLA {'on' if plan.xla else 'off'} ({plan.xla_reason})"
        )
        distribute.replica_batch_size(config.batch_size, strategy.num_replicas_in_sync)
        workers = distribute.num_workers(strategy)
        hardware.check_xla(plan, workers)
        log(
            f"strategy: {choice.name} ({choice.reason}); "
            f"{strategy.num_replicas_in_sync} replica(s) on {workers} worker(s); "
            f"{'chief' if chief else 'non-chief: writes to a temporary directory'}"
        )

        source, val_source, val_split, test_split = open_data(config, log)
        run_dir = prepare_run_dir(config, resume, run_id, chief)
        if chief and resume is None:
            held.enter_context(run_lock(run_dir))
        log(f"run directory: {run_dir}")
        with (
            hardware.precision_policy(plan.precision),
            distribute.worker_dir(run_dir, chief) as out_dir,
        ):
            return _train(
                config,
                plan,
                strategy,
                source,
                val_source,
                run_dir,
                out_dir,
                val_split,
                test_split,
                extra_callbacks,
                log,
                trained,
            )


def _train(
    config,
    plan,
    strategy,
    source,
    val_source,
    run_dir: Path,
    out_dir: Path,
    val_split: str,
    test_split: str,
    extra_callbacks,
    log,
    trained: int | None,
) -> RunResult:
    """`out_dir` is the run directory on the chief and a throw-away one on other workers;
    `trained` is the epoch a resumed run's training already ended at (None: train)."""
    keras.utils.set_random_seed(config.seed)
    spec = pipeline_spec(config)
    train_data = distribute.distributed_dataset(
        strategy, _train_input(config, source, spec, f"tfdenoise-{run_dir.name}")
    )
    val_count = val_source.count(val_split)
    repeats = max(1, min(8, math.ceil(MIN_VAL_IMAGES / max(1, val_count))))
    val_data = distribute.distributed_dataset(
        strategy, _eval_input(val_source, val_split, spec, repeats)
    )
    test_data = pipeline.eval_pipeline(
        source.encoded(test_split, training=False), spec, allow_pil=source.allow_pil
    )

    with strategy.scope():  # variables (model, optimizer, metrics) mirrored on every replica
        model = build_model(config, plan, run_dir, log)
    grid_data = pipeline.eval_pipeline(
        source.encoded(test_split, training=False),
        spec,
        allow_pil=source.allow_pil,
        limit=FIT_GRID_IMAGES,
    )
    grid_clean = tf.concat([batch["clean"] for batch in grid_data], axis=0)
    val_clean = pipeline.eval_pipeline(  # the whole split on every worker, not distributed
        val_source.encoded(val_split, training=False), spec, allow_pil=val_source.allow_pil
    )
    history_file, callbacks = make_callbacks(
        out_dir, run_dir, config, grid_clean, val_clean, extra_callbacks
    )
    validation_steps = config.val_steps or math.ceil(val_count * repeats / spec.batch_size)
    started = time.perf_counter()
    if trained is not None:
        if not (out_dir / runs.BEST_MODEL).is_file() and distribute.is_chief(strategy):
            raise ValueError(f"run {run_dir} trained {trained} epochs but has no {runs.BEST_MODEL}")
        log(f"training ended at epoch {trained}: scoring {runs.BEST_MODEL} on the test split")
    else:
        if config.init_from and not history_file.rows:  # a new fine-tune, not a resumed one
            score_initial_model(model, val_data, validation_steps, callbacks, history_file, log)
        model.fit(
            train_data,
            epochs=config.epochs,
            steps_per_epoch=config.steps_per_epoch,
            validation_data=val_data,
            validation_steps=validation_steps,
            callbacks=callbacks,
            shuffle=False,  # the pipeline shuffles; Keras cannot shuffle a dataset
            verbose=0,
        )
    train_seconds = time.perf_counter() - started
    final = final_metrics(
        config,
        out_dir,
        model,
        test_data,
        grid_clean,
        history_file,
        source,
        test_split,
        plan,
        train_seconds,
        log,
    )
    # The outputs are final: a resume would now be refused, so the backup has no further use;
    # one left behind (a kill just now, a read-only file) is harmless, hence no error.
    shutil.rmtree(out_dir / runs.BACKUP, ignore_errors=True)
    return RunResult(run_dir, plan, history_file.rows, final)


def score_initial_model(
    model: models.Denoiser,
    val_data,
    steps: int,
    callbacks: Sequence[keras.callbacks.Callback],
    history_file: cb.HistoryFile,
    log: Log,
) -> None:
    """--init-from: score the starting model as every epoch will be scored (validation loss,
    --val-condition scores) into history row 0 and best.keras, so an epoch replaces it only
    by beating it and early stopping counts patience from it. Why: a fine-tune can end below
    the model it started from (five continuations of the bundled model did, training/README.md);
    then best.keras stays the starting model and the run says so."""
    results = model.evaluate(val_data, steps=steps, return_dict=True, verbose=0)
    logs = {f"val_{name}": float(value) for name, value in results.items()}
    for callback in callbacks:
        if isinstance(callback, cb.ConditionScores):
            callback.set_model(model)
            callback.on_epoch_end(-1, logs)
    history_file.record_initial(logs)
    for callback in callbacks:
        if isinstance(callback, cb.BestModelCheckpoint):
            callback.set_model(model)
            callback.on_epoch_end(-1, logs)
    log("initial model: " + ", ".join(f"{k} {v:.4g}" for k, v in logs.items()))


def final_metrics(
    config: FitConfig,
    out_dir: Path,
    model: models.Denoiser,
    test_data: tf.data.Dataset,
    grid_clean: tf.Tensor,
    history_file: cb.HistoryFile,
    source,
    test_split: str,
    plan: hardware.HardwarePlan,
    train_seconds: float,
    log: Log,
) -> dict:
    """Score the best model on the test split; write grid.png and metrics.json."""
    best_path = out_dir / runs.BEST_MODEL
    best = checkpoints.load_model(best_path) if best_path.is_file() else model
    log("scoring the test split ...")
    scores = metrics.evaluate_conditions(best, test_data)
    grid = metrics.comparison_grid(
        *metrics.denoise_examples(best, grid_clean, catalog.EVAL_CONDITIONS[FIT_GRID_CONDITION])
    )
    metrics.save_grid(grid, out_dir / runs.GRID)

    rows = history_file.trained_rows
    rates = [r["steps_per_second"] for r in rows if r.get("steps_per_second")]
    best_epoch = history_file.best_epoch(selection_monitor(config))
    if best_epoch == 0:
        log(
            f"note: no epoch beat the initial model on {config.select_by}: "
            f"{runs.BEST_MODEL} is the initial model ({config.init_from})"
        )
    result = {
        "test": {name: dataclasses.asdict(score) for name, score in scores.items()},
        "test_split": test_split,
        "test_images": source.count(test_split),
        "best_val_loss": history_file.best_val_loss(),
        "selected_by": config.select_by,
        "best_selection": history_file.best(selection_monitor(config)),
        "best_epoch": best_epoch,  # 0: the --init-from model, which no epoch beat
        "epochs_trained": len(rows),  # row 0 (the initial model) left out
        "plan": dataclasses.asdict(plan),
        "train_seconds_this_session": round(train_seconds, 1),
        "median_steps_per_second": sorted(rates)[len(rates) // 2] if rates else None,
        "skipped_files": [dataclasses.asdict(s) for s in source.skipped],
        "parameters": int(best.count_params()),
    }
    runs.write_json(out_dir / runs.METRICS, result)
    return result
