"""The folder job as a pipeline: decoding runs ahead, encoding and writing run behind, so the
model (in the calling thread) is not left waiting for I/O.

    entries -> decode (thread pool, at most `threads` images ahead)
            -> group + model (this thread; batches and tiles exactly as folder.predict_folder)
            -> blend + encode + atomic write (thread pool, at most `threads` images behind)

PIL's decoders and encoders, zlib and TensorFlow release the GIL, so threads overlap them with
the model. Both queues are bounded by a number of images: with `threads` = 2 at most 2 decoded
images wait, 1 is in the model and 2 are being written (each holding its input and its output),
so a folder of 50 MP scans (150 MB per 8-bit RGB image) stays within ~1.2 GB of pixels.

Outputs, the report (sorted in input order), failures, skip-existing and the stop on a full or
read-only output disk or on an interruption (see `stopping`) are those of
`folder.predict_folder`, whose steps this module calls; only the order in which images finish
(and `on_image` is called) may differ. After a stop, the writes already running end and are
reported.
"""

from __future__ import annotations

import collections
import concurrent.futures
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from tfdenoise.inference import check_tiling
from tfdenoise.predict import folder, selection, stopping
from tfdenoise.predict.folder import ImageResult, OutputDiskError, PredictOptions, PredictReport

DEFAULT_THREADS = 2  # decode threads = write threads = images ahead = images behind


def _done(result: ImageResult) -> concurrent.futures.Future:
    future = concurrent.futures.Future()
    future.set_result(result)
    return future


def predict_folder_pipelined(
    model,
    input_dir: str | Path,
    output_dir: str | Path | None = None,
    options: PredictOptions | None = None,
    on_image: Callable[[ImageResult], None] | None = None,
    entries: Sequence[selection.Entry] | None = None,
    threads: int = DEFAULT_THREADS,
) -> PredictReport:
    """`folder.predict_folder` with decoding ahead and writing behind (see the module doc)."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    options = options or PredictOptions()
    check_tiling(options.tile, options.overlap)
    input_dir = Path(input_dir)
    output_dir = Path(output_dir) if output_dir else folder.default_output_dir(input_dir)
    if output_dir.resolve() == input_dir.resolve():
        raise ValueError("the output folder must differ from the input folder")
    if entries is None:
        entries = selection.select(
            input_dir, output_format=options.output_format, output_dir=output_dir
        )
    order = {entry.path: index for index, entry in enumerate(entries)}
    report = PredictReport()
    started = time.perf_counter()

    def record(result: ImageResult) -> None:
        report.results.append(result)
        if result.status == "written":
            report.megapixels += result.width * result.height / 1e6
        if on_image:
            on_image(result)

    decoders = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="decode")
    writers = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="write")
    ahead: collections.deque[concurrent.futures.Future] = collections.deque()
    behind: collections.deque[concurrent.futures.Future] = collections.deque()

    def decoded() -> Iterator[ImageResult | folder._Pending]:
        """Decoded entries in input order, at most `threads` decodes in flight or waiting."""
        remaining = iter(entries)
        while True:
            while len(ahead) < threads:
                entry = next(remaining, None)
                if entry is None:
                    break
                target = folder.settled(entry, input_dir, output_dir, options)
                if isinstance(target, ImageResult):
                    ahead.append(_done(target))
                else:
                    ahead.append(decoders.submit(folder._decode, entry.path, target, options))
            if not ahead:
                return
            result = ahead[0].result()  # OutputDiskError from a clean copy stops the job
            ahead.popleft()  # (only now: an interruption while waiting leaves it to wind_down)
            yield result

    def write_behind(limit: int) -> None:
        while len(behind) > limit:
            result = behind[0].result()  # OutputDiskError stops the job
            behind.popleft()
            record(result)

    group: list[folder._Pending] = []
    group_pixels = 0
    interrupted: KeyboardInterrupt | None = None

    def flush() -> None:
        nonlocal group, group_pixels
        if group:
            for pending, denoised in zip(group, folder._model_outputs(model, group, options)):
                write_behind(threads - 1)
                behind.append(writers.submit(folder._finish, pending, denoised, options))
        group, group_pixels = [], 0

    try:
        for item in decoded():
            if isinstance(item, ImageResult):
                flush()
                record(item)
                continue
            if item.picture.pages > 1:  # multi-page TIFF: page by page, as folder does
                flush()
                write_behind(0)
                record(folder._denoise_pages(model, item, options))
                continue
            pixels = item.picture.rgb.shape[0] * item.picture.rgb.shape[1]
            if group and (
                folder._group_key(group[0], options.tile) != folder._group_key(item, options.tile)
                or group_pixels + pixels > options.batch_pixels
            ):
                flush()
            group.append(item)
            group_pixels += pixels
            if not folder._is_small(item.picture, options.tile):
                flush()
        flush()
        write_behind(0)
    except OutputDiskError as error:
        report.stopped = f"{error.strerror}: {error.filename}"
        _wind_down(ahead, behind, record)
    except KeyboardInterrupt as error:  # Ctrl-C, or SIGTERM under stopping.stop_on_signals
        interrupted = error
        _wind_down(ahead, behind, record)
    finally:
        decoders.shutdown(wait=True, cancel_futures=True)
        writers.shutdown(wait=True, cancel_futures=True)
    report.results.sort(key=lambda result: order.get(result.input, len(order)))
    report.seconds = time.perf_counter() - started
    if interrupted is not None:
        raise stopping.with_report(interrupted, report)
    return report


def _wind_down(
    ahead: Iterable[concurrent.futures.Future],
    behind: Iterable[concurrent.futures.Future],
    record: Callable[[ImageResult], None],
) -> None:
    """After a stop: decodes not started are cancelled; writes already running end (complete,
    or refused by the full disk) and are recorded, as are the results decodes ended with (a
    clean copy, a failure, an output found kept); decoded images not yet denoised are dropped."""
    for future in ahead:
        future.cancel()
    for future in [*ahead, *behind]:
        if future.cancelled():
            continue
        try:
            result = future.result()
        except OutputDiskError:
            continue
        if isinstance(result, ImageResult):
            record(result)
