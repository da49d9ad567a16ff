"""Interleaved rounds: one timed figure, every figure once per round, and the medians,
spreads and per-round ratios the results report.

Rounds: every figure is measured once per round, in the same order each round (A B C A B C
...), so a neighbour's busy minute lands on one round of every figure instead of on every
round of one. Each figure is reported as its median over rounds with its spread (min-max);
each ratio is computed per round, from two figures measured side by side in that round, and
reported as the median of those per-round ratios. The JSON keeps every round's raw figures.
One round (`--quick`) gives single noisy measurements: smoke tests, not conclusions.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from tfdenoise.bench.ratios import RATIO_PAIRS

Log = Callable[[str], None]


# --- timing --------------------------------------------------------------------------------


def measure_rate(step: Callable[[], int], warmup: int, seconds: float, min_steps: int = 1) -> float:
    """Items per second of `step` (returns the items it produced), after `warmup` calls."""
    for _ in range(warmup):
        step()
    items, steps = 0, 0
    started = time.perf_counter()
    while steps < min_steps or time.perf_counter() - started < seconds:
        items += step()
        steps += 1
    return items / (time.perf_counter() - started)


def dataset_rate(
    dataset: tf.data.Dataset, items_per_element: int, warmup: int, seconds: float
) -> float:
    """Elements per second pulled from a dataset by a Python loop (what Keras' fit does)."""
    iterator = iter(dataset)

    def step() -> int:
        next(iterator)
        return items_per_element

    return measure_rate(step, warmup, seconds)


# --- rounds ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BenchFigure:
    """One throughput figure: its dotted JSON key, a label for the log, and `measure`, which
    takes one timed measurement (warm-up included, so each round stands on its own)."""

    key: str
    label: str
    measure: Callable[[], float]


@dataclasses.dataclass
class FigureGroup:
    """One section of the results ("pipeline", "train", "predict"): its figures in round order,
    the facts that are not timed (sizes, precision), and aliases: figures that are another
    figure's measurement under a second name (same settings), so they share its rounds."""

    name: str
    figures: list[BenchFigure]
    info: dict
    aliases: dict[str, str] = dataclasses.field(default_factory=dict)


def measure_rounds(figures: Sequence[BenchFigure], rounds: int, log: Log) -> dict[str, list[float]]:
    """Every figure once per round, in the same order each round (A B C A B C ...): a slow
    minute then costs one round of every figure instead of all rounds of one figure."""
    values: dict[str, list[float]] = {figure.key: [] for figure in figures}
    for round_index in range(rounds):
        for figure in figures:
            log(f"round {round_index + 1}/{rounds}: {figure.label} ...")
            values[figure.key].append(float(figure.measure()))
    return values


def summarize(values: Sequence[float | None]) -> dict:
    """Median and spread (min and max) over rounds; rounds without a value are left out, and a
    figure with no value at all summarises to None throughout."""
    present = [value for value in values if value is not None]
    if not present:
        return {"median": None, "min": None, "max": None, "rounds": 0}
    return {
        "median": float(np.median(present)),
        "min": float(min(present)),
        "max": float(max(present)),
        "rounds": len(present),
    }


def per_round_ratios(
    figure_rounds: dict[str, list[float]], pairs: dict[str, tuple[str, str]]
) -> dict[str, list[float | None]]:
    """Each ratio once per round, from its two figures measured side by side in that round
    (a ratio of medians would pair figures from different minutes). None where a figure is
    missing or the denominator is 0."""
    result: dict[str, list[float | None]] = {}
    for name, (numerator, denominator) in pairs.items():
        tops, bottoms = figure_rounds.get(numerator), figure_rounds.get(denominator)
        if not tops or not bottoms:
            result[name] = []
            continue
        result[name] = [top / bottom if bottom else None for top, bottom in zip(tops, bottoms)]
    return result


def _set_dotted(results: dict, key: str, value) -> None:
    """results["a"]["b"]["c"] = value for key "a.b.c", creating the sections on the way."""
    *sections, last = key.split(".")
    for section in sections:
        results = results.setdefault(section, {})
    results[last] = value


def measurement_note(rounds: int) -> dict:
    """How the figures were taken, written into the JSON and shown under the table."""
    return {
        "rounds": rounds,
        "order": "interleaved: every figure once per round, in the same order each round",
        "value": "median over rounds",
        "spread": "min-max over rounds",
        "ratios": "computed per round from that round's two figures; median over rounds",
        "single_noisy_measurements": rounds == 1,
    }


def summarize_rounds(groups: Sequence[FigureGroup], figure_rounds: dict[str, list[float]]) -> dict:
    """The results of measured rounds: each figure's median in its section (where the table
    and older readers look), every round's raw figures and ratios, and their summaries."""
    figure_rounds = dict(figure_rounds)
    for group in groups:
        for alias, source in group.aliases.items():
            figure_rounds[alias] = list(figure_rounds[source])
    rounds = max((len(values) for values in figure_rounds.values()), default=0)
    ratio_rounds = per_round_ratios(figure_rounds, RATIO_PAIRS)
    results: dict = {group.name: dict(group.info) for group in groups}
    figure_summary = {key: summarize(values) for key, values in figure_rounds.items()}
    for key, summary in figure_summary.items():
        _set_dotted(results, key, summary["median"])
    ratio_summary = {name: summarize(values) for name, values in ratio_rounds.items()}
    results["ratios"] = {name: summary["median"] for name, summary in ratio_summary.items()}
    results["summary"] = {"figures": figure_summary, "ratios": ratio_summary}
    aliases = {alias: source for group in groups for alias, source in group.aliases.items()}
    results["rounds"] = {
        "count": rounds,
        "figures": figure_rounds,
        "ratios": ratio_rounds,
        "aliases": aliases,  # figures that are another figure's rounds under a second name
    }
    results["measurement"] = measurement_note(rounds)
    return results


def collect(groups: Sequence[FigureGroup], rounds: int, log: Log) -> dict:
    """Measure every group's figures in interleaved rounds, then summarise them."""
    figures = [figure for group in groups for figure in group.figures]
    return summarize_rounds(groups, measure_rounds(figures, rounds, log))
