"""Coverage-guided fuzzing (atheris / libFuzzer) of every parser of untrusted input.

    python tools/fuzz.py --list                     # the target names
    python tools/fuzz.py TARGET --seconds N [--corpus DIR] [--findings DIR]

Each target feeds bytes to the same functions `predict`, `fit` and `make-tfrecords` use. The
seed corpus is the fault corpus of tests/faults.py plus small valid files of every format (and
small valid JSON/TFRecord examples for the records targets). A finding is an exception other
than the target's documented rejections (ImageError: "skip with a reason"), a hang (libFuzzer
-timeout=10 s) or memory over 2 GB (-rss_limit_mb=2048). libFuzzer then saves the reproducer
under `--findings` (default fuzz-findings/TARGET/) and the tool exits non-zero; it exits 0
when the time ran out with nothing found.

Instrumented for coverage: tfdenoise and Pillow's Python code (its format plugins parse the
headers, EXIF and chunks); the C decoders (libjpeg, libpng, libwebp, libtiff, TF's kernels)
run uninstrumented, so inside them the search is blind mutation -- those libraries are fuzzed
on OSS-Fuzz.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # faults.py, conftest.py: the fault corpus

REGRESSIONS = REPO / "tests" / "fuzz_regressions"  # reproducers of fixed findings, by target
MAX_PIXELS = 16_000_000  # the --max-pixels a fuzzed input gets (keeps decodes small and fast)


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], None]  # raises only `documented` for bad input
    documented: Callable[[], tuple[type[BaseException], ...]]  # the allowed rejections
    seeds: Callable[[Path], None]  # writes seed files into a folder
    about: str = ""
    tensorflow: bool = True  # reaches TF (loaded before the clock starts, see warm_up)


# --- targets ----------------------------------------------------------------------------------


def _image_errors() -> tuple[type[BaseException], ...]:
    from tfdenoise.io.files import ImageError

    return (ImageError,)


def run_image(data: bytes) -> None:
    """fit / make-tfrecords: probe, then decode to RGB8 (EXIF orientation applied)."""
    from tfdenoise.io import files

    info = files.probe(data, MAX_PIXELS)
    pixels = files.load_rgb8(data, MAX_PIXELS)
    assert pixels.ndim == 3 and pixels.shape[2] == 3, pixels.shape
    assert sorted(pixels.shape[:2]) == sorted((info.height, info.width)), (info, pixels.shape)


def run_picture(data: bytes) -> None:
    """predict: load_picture (16-bit, alpha, grayscale, metadata)."""
    from tfdenoise.io import photo

    picture = photo.load_picture(data, MAX_PIXELS)
    assert picture.rgb.ndim == 3 and picture.rgb.shape[2] in (1, 3), picture.rgb.shape
    if picture.alpha is not None:
        assert picture.alpha.shape == picture.rgb.shape[:2]


def run_metadata_roundtrip(data: bytes) -> None:
    """predict's output path: load a picture, write it back as PNG, JPEG and WebP with its
    ICC/EXIF/XMP/DPI (and as 16-bit PNG when the source is), and read every output again."""
    from tfdenoise.io import files, photo

    picture = photo.load_picture(data, MAX_PIXELS)
    if picture.rgb.shape[0] * picture.rgb.shape[1] > 1_000_000:
        return  # encoding big outputs three times would only slow the search down
    with tempfile.TemporaryDirectory(prefix="fuzz-") as folder:
        for output_format in photo.OUTPUT_FORMATS:
            try:
                photo.check_writable(picture, output_format)
            except files.ImageError:
                continue
            bits = photo.output_bits(picture, output_format, photo.SAME)
            if picture.bits == 16 and bits == 8:
                continue  # predict hands save_picture 8-bit pixels for 8-bit outputs
            for strip in (False, True):
                target = Path(folder) / f"out-{strip}{photo.OUTPUT_SUFFIXES[output_format]}"
                photo.save_picture(picture, target, output_format, bits, 90, strip)
                again = photo.load_picture(target)  # every output must be a readable image
                assert again.rgb.shape[:2] == picture.rgb.shape[:2], (output_format, strip)
        leftovers = [p.name for p in Path(folder).iterdir() if ".tmp" in p.name]
        assert not leftovers, leftovers


def run_exif_patch(data: bytes) -> None:
    """The in-place EXIF orientation patch, EXIF/XMP rewriting, the TIFF writer's EXIF tags
    and PNG header parsing on arbitrary bytes (as found in a file's EXIF/XMP/header)."""
    from tfdenoise.io import files, metadata, png, tiff

    patched = metadata._set_orientation_in_place(data)
    if patched is not None:
        assert len(patched) == len(data)
        assert sum(a != b for a, b in zip(patched, data)) <= 2  # only the SHORT value changes
    header = png.read_header(data)
    if header is not None:
        assert png.read_file_header(data) == header
    with files.reading(_tiny_png(), MAX_PIXELS) as image:  # errors translated as in predict
        image.info["exif"] = data
        image.info["xmp"] = data
        metadata.read_metadata(image)
    for tag, text in tiff.descriptive_tags(data):  # raises nothing: damaged EXIF gives none
        assert tag in tiff.DESCRIPTIVE_TAGS and isinstance(text, str) and text


def _tiny_png() -> bytes:
    from PIL import Image

    stream = io.BytesIO()
    Image.new("RGB", (2, 2)).save(stream, "PNG")
    return stream.getvalue()


def _tf_errors() -> tuple[type[BaseException], ...]:
    import tensorflow as tf

    return (tf.errors.InvalidArgumentError,)


def run_tfrecord_example(data: bytes) -> None:
    """Records' example parsing on arbitrary serialized bytes."""
    import tensorflow as tf

    from tfdenoise.io.records.schema import FEATURES, parse_example, parse_features

    serialized = tf.constant(data)
    features = parse_features(serialized)
    assert set(features) == set(FEATURES)
    image, decoder = parse_example(serialized)
    assert image.dtype == tf.string and decoder.dtype == tf.int32


def _value_errors() -> tuple[type[BaseException], ...]:
    return (ValueError,)  # json.JSONDecodeError and UnicodeDecodeError included


def run_manifest(data: bytes) -> None:
    """read_manifest on a fuzzed manifest.json, then what fit/make-tfrecords read from it."""
    from tfdenoise.io import files
    from tfdenoise.io.records.folder import MANIFEST, read_manifest, shard_paths

    with tempfile.TemporaryDirectory(prefix="fuzz-") as folder:
        (Path(folder) / MANIFEST).write_bytes(data)
        manifest = read_manifest(folder)
        for split in files.SPLITS:
            shard_paths(folder, manifest, split)
            int(manifest["counts"].get(split, 0))
        "/".join(f"{f:g}" for f in manifest["split_fractions"])
        [files.Skipped(s["path"], s["reason"]) for s in manifest["skipped"]]


def run_plan(data: bytes) -> None:
    """The stored conversion plan of an unfinished run (OUT/.plan.json), fuzzed, loaded the way
    convert_folder loads it."""
    from tfdenoise.io.records.plan import PLAN, ConversionPlan, load_plan

    with tempfile.TemporaryDirectory(prefix="fuzz-") as folder:
        out = Path(folder)
        (out / PLAN).write_bytes(data)
        plan = load_plan(out)
        assert plan is not None
        plan.image_count, plan.source_bytes, [s.name for s in plan.shards]
        ConversionPlan.from_json(json.loads(json.dumps(plan.to_json())))


# --- seeds ------------------------------------------------------------------------------------


def _write_image_seeds(folder: Path) -> None:
    """The fault corpus (minus the bomb's size, kept) plus small valid files of every format,
    mode and metadata kind predict keeps."""
    import numpy as np
    from faults import make_fault_corpus
    from PIL import Image

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "faults"
        make_fault_corpus(root)
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                _add_seed(folder, path.read_bytes())
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    icc = _srgb_profile()
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "fuzz"
    xmp = b'<x:xmpmeta><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'
    images = {
        "RGB": Image.fromarray(rgb),
        "L": Image.fromarray(rgb[..., 0]),
        "RGBA": Image.fromarray(np.dstack([rgb, rgb[..., 0]])),
        "LA": Image.fromarray(np.dstack([rgb[..., 0], rgb[..., 1]])).convert("LA"),
        "P": Image.fromarray(rgb).quantize(16),
        "I;16": Image.fromarray(rgb[..., 0].astype(np.uint16) * 257),
        "1": Image.fromarray(rgb[..., 0] > 128),
        "CMYK": Image.fromarray(rgb).convert("CMYK"),
    }
    formats = {
        "PNG": {"RGB", "L", "RGBA", "LA", "P", "I;16", "1"},
        "JPEG": {"RGB", "L", "CMYK"},
        "WEBP": {"RGB", "RGBA"},
        "GIF": {"P", "L"},
        "BMP": {"RGB", "L", "P", "1"},
        "TIFF": {"RGB", "L", "RGBA", "I;16", "CMYK", "1", "P"},
        "PPM": {"RGB", "L", "1", "I;16"},
        "JPEG2000": {"RGB", "L"},
    }
    for image_format, modes in formats.items():
        for mode in sorted(modes):
            image = images[mode]
            for with_metadata in (False, True):
                options: dict = {"format": image_format}
                if with_metadata and image_format in ("PNG", "JPEG", "WEBP", "TIFF"):
                    options.update(exif=exif.tobytes())
                    if image_format != "TIFF" and mode in ("RGB", "RGBA"):
                        options["icc_profile"] = icc
                    if image_format in ("JPEG", "WEBP"):
                        options["xmp"] = xmp
                    if image_format in ("PNG", "JPEG"):
                        options["dpi"] = (300, 150)
                elif with_metadata:
                    continue
                if image_format == "TIFF" and with_metadata:
                    options["compression"] = "tiff_lzw"
                stream = io.BytesIO()
                try:
                    image.save(stream, **options)
                except (OSError, ValueError, KeyError):
                    continue  # a combination this Pillow cannot write
                _add_seed(folder, stream.getvalue())
    _add_seed(folder, _png16_colour(rgb, icc))
    for magic, samples, maxval in ((b"P6", rgb, 65535), (b"P5", rgb[..., 0], 4095)):
        header = b"%s\n# scan\n%d %d\n%d\n" % (magic, samples.shape[1], samples.shape[0], maxval)
        _add_seed(folder, header + (samples.astype(">u2") * 16).tobytes())  # deep Netpbm
    import tifffile  # TIFF kinds only tifffile decodes: float RGB, 16-bit gray + alpha

    for samples, photometric, extra in (
        (rgb.astype(np.float32) / 255, "rgb", ()),
        (rgb[..., :2].astype(np.uint16) * 257, "minisblack", ("unassalpha",)),
    ):
        stream = io.BytesIO()
        tifffile.imwrite(stream, samples, photometric=photometric, extrasamples=extra)
        _add_seed(folder, stream.getvalue())


def _png16_colour(rgb, icc: bytes) -> bytes:
    import numpy as np
    import tensorflow as tf

    from tfdenoise.io import metadata, png

    pixels = np.dstack([rgb, rgb[..., :1]]).astype(np.uint16) * 257
    encoded = tf.io.encode_png(tf.convert_to_tensor(pixels, tf.uint16)).numpy()
    chunks = metadata.png_chunks(metadata.Metadata(icc, None, (72.0, 72.0), b"<x/>"))
    return png.insert_after_header(encoded, chunks)


def _srgb_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _write_exif_seeds(folder: Path) -> None:
    from PIL import Image

    for order in ("<", ">"):
        exif = Image.Exif()
        exif[0x0112] = 8
        exif[0x010F] = "maker"
        exif._endian = order  # noqa: SLF001 - both byte orders
        _add_seed(folder, b"Exif\x00\x00" + exif.tobytes()[6:])
        _add_seed(folder, exif.tobytes()[6:])
    _add_seed(folder, b'<x:xmpmeta><rdf:Description tiff:Orientation="6"/></x:xmpmeta>')
    _add_seed(folder, b"<tiff:Orientation>8</tiff:Orientation>")
    stream = io.BytesIO()
    Image.new("RGB", (3, 2)).save(stream, "PNG")
    _add_seed(folder, stream.getvalue())


def _sample_example() -> bytes:
    from tfdenoise.io.encoding import EncodedImage
    from tfdenoise.io.records.schema import encode_example

    image = EncodedImage(b"\xff\xd8\xff\xd9", "jpeg", 2, 3)
    return encode_example(image, "folder/a.jpg")


def _write_example_seeds(folder: Path) -> None:
    _add_seed(folder, _sample_example())
    _add_seed(folder, b"")
    _add_seed(folder, b"\x0a\x00")


def _sample_plan() -> dict:
    return {
        "format_version": 2,
        "lossless": "raw",
        "source": "/data/scans",
        "fractions": [0.8, 0.1, 0.1],
        "shard_bytes": 134217728,
        "max_pixels": 100000000,
        "shards": [
            {
                "split": "train",
                "index": 0,
                "count": 1,
                "files": [
                    {
                        "relpath": "a/b.jpg",
                        "format": "JPEG",
                        "mode": "RGB",
                        "width": 64,
                        "height": 48,
                        "bytes": 1234,
                    }
                ],
            }
        ],
        "skipped": [{"path": "bad.png", "reason": "empty file"}],
    }


def _sample_manifest() -> dict:
    return {
        "format_version": 2,
        "lossless": "raw",
        "source": "/data/scans",
        "split_fractions": [0.8, 0.1, 0.1],
        "shard_bytes": 134217728,
        "max_pixels": 100000000,
        "counts": {"train": 1, "val": 0, "test": 0},
        "shards": [{"name": "train-00000-of-00001.tfrecord", "split": "train", "records": 1}],
        "skipped": [{"path": "bad.png", "reason": "empty file"}],
    }


def _format_version() -> int:
    from tfdenoise.io.records.folder import FORMAT_VERSION

    return FORMAT_VERSION


def _write_json_seeds(folder: Path, sample: dict) -> None:
    sample = {**sample, "format_version": _format_version()}
    _add_seed(folder, json.dumps(sample, indent=2).encode())
    _add_seed(folder, json.dumps(sample).encode())
    for key in sample:
        _add_seed(folder, json.dumps({k: v for k, v in sample.items() if k != key}).encode())
    for value in ([], {}, None, 1, "x", [1]):
        _add_seed(folder, json.dumps(value).encode())
    _add_seed(folder, b"{")


def _add_seed(folder: Path, data: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


TARGETS = {
    t.name: t
    for t in (
        Target(
            "image",
            run_image,
            _image_errors,
            _write_image_seeds,
            "files.probe + files.load_rgb8 (fit, make-tfrecords), every format incl. TIFF",
            tensorflow=False,
        ),
        Target(
            "picture",
            run_picture,
            _image_errors,
            _write_image_seeds,
            "photo.load_picture (predict): 16-bit, alpha, metadata, every format",
        ),
        Target(
            "metadata_roundtrip",
            run_metadata_roundtrip,
            _image_errors,
            _write_image_seeds,
            "load_picture -> save_picture png/jpeg/webp (+16-bit), metadata kept/stripped",
        ),
        Target(
            "exif_patch",
            run_exif_patch,
            _image_errors,
            _write_exif_seeds,
            "metadata._set_orientation_in_place, upright_exif/xmp, tiff EXIF tags, PNG header",
            tensorflow=False,
        ),
        Target(
            "tfrecord_example",
            run_tfrecord_example,
            _tf_errors,
            _write_example_seeds,
            "records.schema.parse_features / parse_example on serialized bytes",
        ),
        Target(
            "manifest",
            run_manifest,
            _value_errors,
            lambda folder: _write_json_seeds(folder, _sample_manifest()),
            "records.folder.read_manifest and the fields fit/make-tfrecords read",
        ),
        Target(
            "plan",
            run_plan,
            _value_errors,
            lambda folder: _write_json_seeds(folder, _sample_plan()),
            "OUT/.plan.json as convert_folder loads it (records.plan.load_plan)",
        ),
    )
}


# --- running ----------------------------------------------------------------------------------


def one_input(target: Target, findings: Path | None = None) -> Callable[[bytes], None]:
    """The libFuzzer callback: documented rejections pass, anything else is a finding.

    With `findings`, the input of an undocumented exception is saved there first (as
    `crash-SHA1`, libFuzzer's name): libFuzzer writes it too, but a SIGALRM arriving while it
    reports a Python exception has killed it before it did (seen twice in long runs).
    """
    documented = target.documented()

    def test_one_input(data: bytes) -> None:
        try:
            target.run(data)
        except documented:
            pass
        except BaseException:
            if findings is not None:
                findings.mkdir(parents=True, exist_ok=True)
                (findings / f"crash-{hashlib.sha1(data).hexdigest()}").write_bytes(data)
            raise

    return test_one_input


def warm_up(target: Target) -> None:
    """Load TensorFlow and its PNG kernels before libFuzzer's clock starts: TF's first use
    takes seconds on a busy machine and would count as a 10 s "hang" of whichever input
    reaches it first (predict and fit have TF loaded already)."""
    if target.tensorflow:
        import tensorflow as tf

        encoded = tf.io.encode_png(tf.zeros((1, 1, 1), tf.uint16))
        tf.io.decode_png(encoded, channels=0, dtype=tf.uint16).numpy()


INSTRUMENTED = ("tfdenoise", "PIL")  # the packages whose branches guide the search


def instrument(target: Target) -> None:
    """Import every parser under atheris's instrumentation, before anything else imports it:
    a module already in sys.modules is not instrumented, and libFuzzer then mutates blind (no
    coverage: "INITED exec/s" with no "cov:"). Seeding the corpus imports them too, so this
    runs first; a module imported too early is an error, not a silently blind campaign."""
    import atheris

    early = sorted(
        name
        for name in sys.modules
        if name.split(".")[0] in INSTRUMENTED and name != "tfdenoise"  # the bare package: empty
    )
    if early:
        raise RuntimeError(f"imported before instrumentation (would not be covered): {early}")
    with atheris.instrument_imports(include=list(INSTRUMENTED)):
        import PIL.Image  # noqa: F401 - the format plugins, instrumented

        import tfdenoise.io.files  # noqa: F401
        import tfdenoise.io.metadata  # noqa: F401
        import tfdenoise.io.photo  # noqa: F401
        import tfdenoise.io.png  # noqa: F401

        if target.documented in (_tf_errors, _value_errors):
            import tfdenoise.io.records.folder  # noqa: F401
            import tfdenoise.io.records.plan  # noqa: F401
            import tfdenoise.io.records.schema  # noqa: F401
        from PIL import Image

        Image.init()  # every plugin registered (and instrumented) before the first input


def fuzz(target: Target, seconds: float, corpus: Path, findings: Path, extra=()) -> None:
    """Run atheris on `target` (never returns: libFuzzer exits, non-zero on a finding)."""
    import atheris

    instrument(target)
    corpus.mkdir(parents=True, exist_ok=True)
    if not any(corpus.iterdir()):
        target.seeds(corpus)
        for path in sorted((REGRESSIONS / target.name).glob("*")):  # earlier findings
            _add_seed(corpus, path.read_bytes())
    findings.mkdir(parents=True, exist_ok=True)
    warm_up(target)
    argv = [
        sys.argv[0],
        str(corpus),
        f"-max_total_time={max(1, round(seconds))}",
        "-timeout=10",
        "-rss_limit_mb=2048",
        f"-artifact_prefix={findings}/",
        "-print_final_stats=1",
        *extra,
    ]
    atheris.Setup(argv, one_input(target, findings))
    atheris.Fuzz()


def main(argv: list[str] | None = None, targets: dict[str, Target] = TARGETS) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="?", help="target name (see --list)")
    parser.add_argument("--list", action="store_true", help="print the target names")
    parser.add_argument("--seconds", type=float, default=60.0, help="time budget")
    parser.add_argument("--corpus", type=Path, help="corpus folder (default fuzz-corpus/TARGET)")
    parser.add_argument("--findings", type=Path, help="default fuzz-findings/TARGET")
    parser.add_argument("--replay", type=Path, nargs="+", help="run the target once on these files")
    args, extra = parser.parse_known_args(argv)
    if args.list:
        for name, target in targets.items():
            print(f"{name:20} {target.about}")
        return 0
    if args.target not in targets:
        parser.error(f"unknown target {args.target!r}; one of {', '.join(targets)}")
    target = targets[args.target]
    if args.replay:
        check = one_input(target)
        for path in args.replay:
            check(path.read_bytes())
            print(f"{path}: no finding")
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    corpus = args.corpus or REPO / "fuzz-corpus" / target.name
    findings = args.findings or REPO / "fuzz-findings" / target.name
    fuzz(target, args.seconds, corpus, findings, extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
