"""Type checks of the JSON a conversion reads back (plans, manifests): a damaged or hand-edited
file is untrusted, so every field read is checked first (ValueError "malformed: ...")."""

from __future__ import annotations

from collections.abc import Callable


def check(condition: bool, what: str) -> None:
    if not condition:
        raise ValueError(f"malformed: {what}")


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def list_of_dicts(value, keys: dict[str, Callable[[object], bool]], what: str) -> None:
    """`value` is a list of dicts holding at least `keys`, each value passing its check."""
    check(isinstance(value, list), f"{what} is not a list")
    for item in value:
        check(isinstance(item, dict), f"an entry of {what} is not an object")
        for key, ok in keys.items():
            check(key in item and ok(item[key]), f"{what}: bad or missing {key!r}")


def is_str(value) -> bool:
    return isinstance(value, str)


def is_list(value) -> bool:
    return isinstance(value, list)


def check_fractions(value, what: str) -> None:
    check(
        isinstance(value, list) and len(value) == 3 and all(is_number(f) for f in value),
        f"{what} is not three numbers",
    )
