"""Typed readers for environment variables.

Each helper fails loudly (ImproperlyConfigured) on a value it cannot parse, so a typo in a
deployment's environment stops the process at start-up instead of silently using a default.
"""

from __future__ import annotations

import math
import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None else value


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum {minimum}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}={number} is above the maximum {maximum}")
    return number


def env_optional_int(name: str, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
    """An integer, or None when the variable is unset or empty."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return env_int(name, 0, minimum=minimum, maximum=maximum)


def env_choice(name: str, default: str, choices) -> str:
    """One of `choices`, given in any letter case (returned as spelled in `choices`)."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    by_key = {choice.casefold(): choice for choice in choices}
    try:
        return by_key[value.strip().casefold()]
    except KeyError:
        raise ImproperlyConfigured(f"{name}={value!r} is not one of {', '.join(choices)}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_bytes(name: str, default: int) -> int:
    """A size such as 4G, 500M, 10k or a plain number of bytes."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    text = value.strip().upper().removesuffix("B").removesuffix("I")
    units = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    factor = 1
    if text and text[-1] in units:
        factor = units[text[-1]]
        text = text[:-1]
    try:
        number = float(text)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a size (examples: 4G, 500M, 1048576)") from None
    # float() also reads "nan" and "inf", which no size is (int() of them raised without the name).
    if not math.isfinite(number) or number <= 0:
        raise ImproperlyConfigured(f"{name}={value!r} must be a positive size (examples: 4G, 500M, 1048576)")
    size = int(number * factor)
    if size < 1:  # "0.5" would truncate to 0 bytes: a limit nothing passes
        raise ImproperlyConfigured(f"{name}={value!r} is less than one byte")
    return size


def file_secret(path, *, create: bool) -> str:
    """The secret kept in `path` (the embedded mode's var/secret_key, as `make run` writes it).

    Why: commands in a second shell (`manage.py import_slide ...`) must sign with the same key as the
    running demo server without anyone exporting it. With `create`, a missing file is made with a
    fresh random key, readable by its owner only; an empty file is an error, never a blank key."""
    import secrets
    from pathlib import Path

    path = Path(path)
    if not path.exists() and create:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: read theirs
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(50) + "\n")
    try:
        key = path.read_text().strip()
    except OSError as exc:
        raise ImproperlyConfigured(f"cannot read the secret key file {path}: {exc}") from None
    if not key:
        raise ImproperlyConfigured(f"the secret key file {path} is empty")
    return key
