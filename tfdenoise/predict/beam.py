"""predict on Apache Beam: the folder job spread over the workers of a Beam runner.

    launcher: select entries (--files-from, --shard) -> Create -> Reshuffle
    workers:  RunInference(DenoiserHandler) -> one ImageResult per entry -> JSON lines
    launcher: read the JSON lines back -> PredictReport (sorted) -> summary, exit code

Beam's own TensorFlow handlers do not fit: they load SavedModels through
`tf.keras.models.load_model` (Keras 3 refuses SavedModels there) and `numpy.stack` a batch,
which needs equal-size arrays; photos come in every size. `DenoiserHandler` loads the model
once per worker process through `checkpoints.load_denoiser` (safe mode) and hands each batch
of entries to `folder.predict_folder`, so decoding, the tiled and batched denoiser, the writer
(metadata kept, temp file + rename), skip-existing and failure reasons are the local run's.

DIR and OUT are paths every worker sees at the same place: a shared file system (NFS,
Filestore, a `gs://` bucket mounted with gcsfuse). The results travel back through files
under OUT/.tfdenoise-beam/, removed once read.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import apache_beam as beam
from apache_beam.ml.inference.base import ModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from tfdenoise.predict import folder, selection

RESULTS_DIR = ".tfdenoise-beam"  # under OUT; one sub-folder per run, removed after reading


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What each worker loads: the --model, --runs-dir, --precision and --ensemble values.
    The precision is resolved on the worker (`auto` may mean bfloat16 there, float16 on GPU).
    """

    model: str | None = None
    runs_dir: str = "runs"
    precision: str = "auto"
    ensemble: int = 2


class DenoiserHandler(ModelHandler):
    """RunInference's handler: entries in, one ImageResult per entry out."""

    def __init__(
        self,
        spec: ModelSpec,
        input_dir: str,
        output_dir: str,
        options: folder.PredictOptions,
        max_batch_size: int = 8,
    ):
        self.spec = spec
        self.input_dir = input_dir
        self.output_dir = output_dir
        self.options = options
        self.max_batch_size = max_batch_size

    def load_model(self):
        from tfdenoise import checkpoints, hardware

        policy, _reason = hardware.inference_precision(self.spec.precision)
        return checkpoints.load_denoiser(
            self.spec.model, self.spec.runs_dir, policy, self.spec.ensemble
        )

    def run_inference(
        self, batch: Sequence[selection.Entry], model, inference_args=None
    ) -> Iterable[folder.ImageResult]:
        entries = sorted(batch, key=lambda entry: entry.relpath)
        report = folder.predict_folder(
            model, self.input_dir, self.output_dir, self.options, entries=entries
        )
        results = list(report.results)
        for entry in entries[len(results) :]:  # the output disk refused writes: job stops
            results.append(
                folder.ImageResult(
                    entry.path,
                    Path(self.output_dir) / entry.relpath,
                    "failed",
                    error=f"not attempted, the output disk refuses writes ({report.stopped})",
                )
            )
        return results

    def batch_elements_kwargs(self):
        return {"min_batch_size": 1, "max_batch_size": self.max_batch_size}

    def get_num_bytes(self, batch) -> int:
        return sum(len(entry.relpath) for entry in batch)

    def get_metrics_namespace(self) -> str:
        return "tfdenoise"


def result_to_json(result: folder.ImageResult) -> str:
    row = dataclasses.asdict(result)
    row["input"], row["output"] = str(result.input), str(result.output)
    return json.dumps(row, sort_keys=True)


def result_from_json(line: str) -> folder.ImageResult:
    row = json.loads(line)
    row["input"], row["output"] = Path(row["input"]), Path(row["output"])
    return folder.ImageResult(**row)


def pipeline_options(beam_args: str | Sequence[str] = "") -> PipelineOptions:
    """`--beam-args "--runner=FlinkRunner ..."` as PipelineOptions (DirectRunner by default)."""
    flags = shlex.split(beam_args) if isinstance(beam_args, str) else list(beam_args)
    if not any(flag == "--runner" or flag.startswith("--runner=") for flag in flags):
        flags.append("--runner=DirectRunner")
    return PipelineOptions(flags)


def predict_folder_beam(
    input_dir: str | Path,
    output_dir: str | Path | None,
    options: folder.PredictOptions,
    spec: ModelSpec,
    entries: Sequence[selection.Entry] | None = None,
    beam_args: str | Sequence[str] = "",
) -> folder.PredictReport:
    """The folder job on a Beam runner; a PredictReport like `folder.predict_folder`'s.

    `seconds` is the pipeline's wall time (worker start-up and model loading included).
    """
    given_input, given_output = Path(input_dir), output_dir
    input_dir = Path(input_dir).absolute()  # the workers' paths, whatever their working folder
    output_dir = Path(output_dir).absolute() if output_dir else folder.default_output_dir(input_dir)
    if output_dir.resolve() == input_dir.resolve():
        raise ValueError("the output folder must differ from the input folder")
    if entries is None:
        entries = selection.select(
            input_dir, output_format=options.output_format, output_dir=output_dir
        )
    entries = [
        dataclasses.replace(entry, path=input_dir / entry.relpath)
        if entry.reason is None
        else entry
        for entry in entries
    ]
    run_dir = output_dir / RESULTS_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = DenoiserHandler(spec, str(input_dir), str(output_dir), options)
    started = time.perf_counter()
    try:
        with beam.Pipeline(options=pipeline_options(beam_args)) as pipeline:
            _ = (
                pipeline
                | "entries" >> beam.Create(entries)
                | "spread" >> beam.Reshuffle()
                | "denoise" >> RunInference(handler)
                | "to json" >> beam.Map(result_to_json)
                | "results" >> beam.io.WriteToText(str(run_dir / "results"), ".jsonl")
            )
        report = folder.PredictReport(seconds=time.perf_counter() - started)
        for path in sorted(run_dir.glob("results*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    report.results.append(result_from_json(line))
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        _remove_if_empty(output_dir / RESULTS_DIR)
    report.results.sort(key=lambda result: str(result.input))
    for result in report.results:  # paths as the caller gave them, like the local run's
        result.input = _as_given(result.input, input_dir, given_input)
        if given_output:
            result.output = _as_given(result.output, output_dir, Path(given_output))
        if result.status == "written":
            report.megapixels += result.width * result.height / 1e6
        if result.error.startswith("not attempted, the output disk") and not report.stopped:
            report.stopped = result.error.split("(", 1)[-1].rstrip(")")
    return report


def _as_given(path: Path, absolute: Path, given: Path) -> Path:
    try:
        return given / path.relative_to(absolute)
    except ValueError:
        return path


def _remove_if_empty(path: Path) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass
