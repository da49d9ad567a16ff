"""Which images under DIR one predict job works on: all of them, the ones a list names
(`--files-from FILE`), and/or one shard of N (`--shard I/N`); or one image given instead of DIR.

A shard is decided by a hash of each file's relative path (like the train/val/test split in
`tfdenoise.io.files.split_of`), so adding files to DIR never moves others between shards: N
processes or machines, each with its own I, write disjoint parts of OUT, and skip-existing
makes a retried shard safe. Entries of a list that cannot be predicted (missing, not a file,
not an image, outside DIR) are kept with a reason, to be reported as failed, never dropped.

Two inputs can share an output: `scan.jpg` and `scan.png` both become `scan.png` (a phone's
`IMG_1.HEIC` beside its `IMG_1.JPG`, a scan saved twice). One of them owns the output -- the
input already named like it, else the first by name -- and the others are reported as failed
with the reason, rather than found "kept" next to the owner's output. A multi-page TIFF
written one file per page claims its page names too (`scan.tif` -> `scan.p001.png`, ...), so a
`scan.p001.png` beside it is not overwritten by, or taken for, its first page. The owner is
decided from the folder's own listing, so every shard and every retry agrees.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import posixpath
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from tfdenoise.io import files, photo


@dataclasses.dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0 <= index < count)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need 0 <= I < N and N >= 1")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`"2/8"` -> Shard(2, 8); ValueError with the reason otherwise."""
        index, slash, count = str(text).strip().partition("/")
        try:
            if not slash:
                raise ValueError
            shard_index, shard_count = int(index), int(count)
        except ValueError:
            raise ValueError(f"shard {text!r} is not I/N (e.g. 0/4)") from None
        return cls(shard_index, shard_count)

    def holds(self, relpath: str) -> bool:
        return shard_of(relpath, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(relpath: str, count: int) -> int:
    """The shard (0..count-1) of a relative POSIX path, from its SHA-256.

    Uses other digest bytes than `files.split_of`, so shards are not correlated with splits.
    """
    digest = hashlib.sha256(os.fsencode(relpath)).digest()  # a name's bytes, UTF-8 or not
    return int.from_bytes(digest[8:16], "big") % count


@dataclasses.dataclass(frozen=True)
class Entry:
    """One image to predict, or (reason set) a listed entry that cannot be predicted."""

    path: Path  # DIR / relative path (the line itself when it escapes DIR)
    relpath: str  # POSIX path relative to DIR; the line as written when it escapes DIR
    reason: str | None = None
    output: str | None = None  # relative to OUT: the output another input owns (with reason)


def read_list(list_file: str | os.PathLike) -> list[str]:
    """The entries of a --files-from file: one path a line; blank lines and `#` comments
    (whole lines) ignored; surrounding whitespace stripped."""
    try:
        # names that are not UTF-8 (an old archive's Latin-1) read as the bytes they are
        text = Path(list_file).read_text(encoding="utf-8", errors="surrogateescape")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read the file list {list_file}: {error}") from None
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _listed_entry(input_dir: Path, line: str, output_dir: Path | None = None) -> Entry:
    """A line of the list as an Entry: relative to DIR (an absolute path must lie in DIR, and
    not in OUT)."""
    candidate = Path(line)
    if candidate.is_absolute():
        try:
            candidate = candidate.relative_to(input_dir.resolve())
        except ValueError:
            try:
                candidate = candidate.relative_to(input_dir.absolute())
            except ValueError:
                return Entry(candidate, line, "outside the input folder: refused")
    relpath = os.path.normpath(candidate.as_posix()).replace(os.sep, "/")
    if relpath == ".." or relpath.startswith("../") or relpath == ".":
        return Entry(Path(line), line, "outside the input folder: refused")
    path = input_dir / relpath
    if output_dir is not None and path.resolve().is_relative_to(output_dir.resolve()):
        return Entry(path, relpath, "inside the output folder: refused")
    if not path.exists():
        return Entry(path, relpath, "listed but not found")
    if not path.is_file():
        return Entry(path, relpath, "listed but not a file")
    if not files.has_image_suffix(path):
        return Entry(path, relpath, "listed but not an image (suffix)")
    return Entry(path, relpath)


def select_file(
    image: str | os.PathLike,
    output_format: str = "png",
    output_dir: str | os.PathLike | None = None,
) -> tuple[Path, list[Entry]]:
    """`predict scan.tif`: the job for one image, as its folder's job narrowed to it (DIR =
    its folder, so OUT and the shared-output rule are what the whole folder's run gives); a
    directory, missing file or one inside OUT gets its reason like a --files-from line."""
    image = Path(image)
    if not files.has_image_suffix(image):  # a usage error here, not a failed listed entry
        raise ValueError(f"{image} is not an image by its suffix ({image.suffix or 'none'})")
    input_dir = image.parent
    output_dir = Path(output_dir) if output_dir is not None else None
    entry = _listed_entry(input_dir, image.name, output_dir)
    return input_dir, _mark_shared_outputs([entry], output_format)


def _listed_as_file(item: os.DirEntry) -> bool:
    """Whether `files.list_image_files` (os.walk) lists an entry: anything but a directory,
    broken symlinks and symlink loops included (they are reported with their reason)."""
    try:
        return not item.is_dir()
    except OSError:
        return True


def output_name(name: str, output_format: str) -> str:
    """The output name of the image file `name`: its stem with the output format's suffix."""
    path = Path(name)
    return path.stem + photo.output_suffix(path, output_format)


def page_output_name(output: str, page: int) -> str:
    """The output of one page (0-based) of a multi-page TIFF written in a single-page format:
    scan.png -> scan.p001.png, scan.p002.png, ... (1-based, at least three digits, the first
    page too)."""
    path = Path(output)
    return f"{path.stem}.p{page + 1:03d}{path.suffix}"


_PAGE_OUTPUT = re.compile(r"(?s)(.*)\.p(\d{3,})(\.[^.]*)")  # what page_output_name makes


def _page_count(path: Path) -> int:
    """How many pages `path` has (a multi-page TIFF several), from its header, counted as
    `photo.load_picture` counts them; 1 for a file that does not open (decoding says why)."""
    try:
        with files.reading(path, sys.maxsize) as image:  # the pixel limit is decoding's job
            return getattr(image, "n_frames", 1) if image.format == "TIFF" else 1
    except files.TifffileOnly as only:
        return only.kind.pages
    except files.ImageError:
        return 1


def planned_outputs(folder: Path, names: Sequence[str], output_format: str) -> dict[str, list[str]]:
    """The output names each of the image files `names` in `folder` writes: its stem with the
    output suffix, and for a multi-page TIFF written one file per page, the page names
    (page_output_name) that another file's output takes. Only such a TIFF's header is read:
    the page count decides whether `scan.p003.png` is one of its pages."""
    planned = {name: [output_name(name, output_format)] for name in names}
    page_like: dict[str, list[tuple[int, str]]] = {}  # "scan.png" -> [(3, "scan.p003.png")]
    for (output,) in planned.values():
        match = _PAGE_OUTPUT.fullmatch(output)
        if match:
            page_like.setdefault(match[1] + match[3], []).append((int(match[2]), output))
    for name in names:
        single = planned[name][0]
        if single not in page_like or photo.resolve_format(Path(name), output_format) == "tiff":
            continue  # nobody else's output looks like a page of it; a TIFF stays one file
        pages = _page_count(folder / name)
        planned[name] += [
            output
            for page, output in sorted(page_like[single])
            if 1 <= page <= pages and output == page_output_name(single, page - 1)
        ]
    return planned


def output_owners(folder: Path, output_format: str) -> dict[str, tuple[str, str]]:
    """For each image file directly in `folder` one of whose outputs (planned_outputs) another
    one there owns (see the module doc): that output and its owner; others are absent."""
    with os.scandir(folder) as scanned:
        names = sorted(
            item.name
            for item in scanned
            if files.has_image_suffix(item.name) and _listed_as_file(item)
        )
    planned = planned_outputs(folder, names, output_format)
    claimants: dict[str, list[str]] = {}
    for name, outputs in planned.items():
        for output in outputs:
            claimants.setdefault(output, []).append(name)
    lost = {}
    for name, outputs in planned.items():
        for output in outputs:
            others = claimants[output]
            owner = output if output in others else min(others)
            if owner != name:
                lost[name] = (output, owner)
                break
    return lost


def _mark_shared_outputs(entries: list[Entry], output_format: str) -> list[Entry]:
    """Entries whose output another input owns, given that reason and that output."""
    lost_in: dict[Path, dict[str, tuple[str, str]]] = {}
    marked = []
    for entry in entries:
        if entry.reason is None:
            folder, name = entry.path.parent, entry.path.name
            if folder not in lost_in:
                lost_in[folder] = output_owners(folder, output_format)
            if name in lost_in[folder]:
                output, owner = lost_in[folder][name]
                entry = dataclasses.replace(
                    entry,
                    reason=f"its output {output} is {owner}'s: rename one of the two",
                    output=posixpath.join(posixpath.dirname(entry.relpath), output),
                )
        marked.append(entry)
    return marked


def select(
    input_dir: str | os.PathLike,
    files_from: str | os.PathLike | None = None,
    shard: Shard | None = None,
    output_format: str = "png",
    output_dir: str | os.PathLike | None = None,
) -> list[Entry]:
    """The entries of one job, sorted by relative path, duplicates once.

    Without a list: every image under DIR (`files.list_image_files`). With a shard: only the
    entries (bad listed ones too, so each is reported by exactly one shard) whose relative
    path hashes to it. An input whose output (in `output_format`) another input owns gets
    that reason. Nothing is taken from `output_dir` when it lies inside DIR
    (`predict photos -o photos/denoised`): a second run would denoise the first one's outputs.
    """
    input_dir = Path(input_dir)
    output_dir = Path(output_dir) if output_dir is not None else None
    if not input_dir.is_dir():
        raise ValueError(f"not a directory: {input_dir}")
    if files_from is None:
        entries = [
            Entry(path, path.relative_to(input_dir).as_posix())
            for path in files.list_image_files(input_dir, exclude=output_dir)
        ]
    else:
        unique = {}
        for line in read_list(files_from):
            entry = _listed_entry(input_dir, line, output_dir)
            unique.setdefault(entry.relpath, entry)
        entries = sorted(unique.values(), key=lambda entry: entry.relpath)
    if shard is not None:
        entries = [entry for entry in entries if shard.holds(entry.relpath)]
    return _mark_shared_outputs(entries, output_format)
