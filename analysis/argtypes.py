"""argparse types for the commands' numbers: a negative, zero, nan or infinite value is refused by the parser,
before any work, instead of being found (or not) by the computation it feeds. Shared by the commands of
every app (analysis is the lowest layer that has commands)."""

import argparse
import math


def _number(text: str, kind) -> float | int:
    try:
        value = kind(text)
    except (TypeError, ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite number")
    return value


def positive_int(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number, at least 1")
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number, 0 or more")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive number")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number, 0 or more")
    return value


def finite_float(text: str) -> float:
    return _number(text, float)


def share(text: str) -> float:
    """A fraction of a whole, from 0 up to (not including) 1."""
    value = _number(text, float)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a share from 0 up to (not including) 1")
    return value


def port(text: str) -> int:
    value = _number(text, int)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: give a TCP port from 1 to 65535")
    return value
