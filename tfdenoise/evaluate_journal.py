"""The per-image scores of a running `evaluate --json FILE`, so a killed evaluation resumes.

Why: with CBM3D an evaluation takes hours (0.01 MP/s: ~15 min per condition for Kodak24's
full images), long enough for a session to end under it. Each scored image is appended as one
JSON line to `FILE.partial.jsonl` (flushed and synced); the same command again replays those
images and scores only the rest, and the finished run removes the journal. The first line
holds the settings the scores depend on (images, crop, protocol, conditions, baselines,
model): a journal of other settings is started over, never mixed in. A line torn by the kill
is ignored (that image is scored again).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tfdenoise.evaluate import MethodScore

ImageScores = dict[str, dict[str, MethodScore]]  # condition -> method -> one image's score


def journal_path(json_file: str | Path) -> Path:
    json_file = Path(json_file)
    return json_file.with_name(json_file.name + ".partial.jsonl")


def discard(json_file: str | Path) -> None:
    """The evaluation is complete and its results written: the journal has served."""
    journal_path(json_file).unlink(missing_ok=True)


class Journal:
    """Append-only per-image scores under fixed settings; `done` maps an image's index to
    the scores replayed from an earlier, killed run."""

    def __init__(self, path: str | Path, settings: Mapping[str, Any], log: Callable[[str], None]):
        self.path = Path(path)
        self.settings = json.loads(json.dumps(settings))  # as it reads back from the file
        self.done: dict[int, ImageScores] = {}
        if self.path.is_file():
            self._replay(log)
        if not self.done:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"settings": self.settings}) + "\n")

    def _replay(self, log: Callable[[str], None]) -> None:
        lines = self.path.read_text().splitlines()
        try:
            header = json.loads(lines[0]) if lines else {}
        except json.JSONDecodeError:
            header = {}
        if header.get("settings") != self.settings:
            log(f"note: {self.path} holds scores of other settings: starting over")
            return
        for line in lines[1:]:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # the line being written when the run was killed
                continue
            self.done[entry["index"]] = {
                condition: {method: MethodScore(**score) for method, score in methods.items()}
                for condition, methods in entry["scores"].items()
            }
        if self.done:
            log(f"resuming: {len(self.done)} images already scored in {self.path}")

    def record(self, index: int, scores: ImageScores) -> None:
        entry = {
            "index": index,
            "scores": {
                condition: {method: dataclasses.asdict(score) for method, score in methods.items()}
                for condition, methods in scores.items()
            },
        }
        with self.path.open("a") as stream:
            stream.write(json.dumps(entry) + "\n")
            stream.flush()
            os.fsync(stream.fileno())
