"""Typed environment helpers fail loudly on bad values."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from pdl1site.env import env_bool, env_bytes, env_choice, env_int, env_list, env_optional_int


@pytest.mark.parametrize("raw,expected", [("1", True), ("yes", True), ("ON", True), ("0", False), ("off", False)])
def test_env_bool(monkeypatch, raw, expected):
    monkeypatch.setenv("X", raw)
    assert env_bool("X", not expected) is expected


def test_bad_values_fail_loudly(monkeypatch):
    for reader, raw in [(lambda: env_bool("X", False), "maybe"), (lambda: env_int("X", 1), "ten"),
                        (lambda: env_int("X", 1, minimum=1), "0"), (lambda: env_bytes("X", 1), "lots"),
                        (lambda: env_bytes("X", 1), "-5M")]:
        monkeypatch.setenv("X", raw)
        with pytest.raises(ImproperlyConfigured, match="X="):
            reader()


def test_defaults_and_parsing(monkeypatch):
    monkeypatch.delenv("X", raising=False)
    assert (env_bool("X", True), env_int("X", 7), env_list("X", ["a"]), env_bytes("X", 9)) == (True, 7, ["a"], 9)
    monkeypatch.setenv("X", "4G")
    assert env_bytes("X", 1) == 4 * 1024**3
    monkeypatch.setenv("X", "a.example, b.example,")
    assert env_list("X", []) == ["a.example", "b.example"]


@pytest.mark.parametrize("raw, message", [
    ("nan", "must be a positive size"),  # float() reads it; int() of it raised a bare ValueError
    ("inf", "must be a positive size"),  # ... and of this a bare OverflowError
    ("-inf", "must be a positive size"),
    ("infG", "must be a positive size"),
    ("0.5", "is less than one byte"),  # truncated to 0 bytes: a limit nothing passes
    ("0", "must be a positive size"),
])
def test_sizes_are_finite_and_at_least_one_byte(monkeypatch, raw, message):
    monkeypatch.setenv("X", raw)
    with pytest.raises(ImproperlyConfigured, match=f"X={raw!r} {message}"):
        env_bytes("X", 1)


def test_fractional_sizes_of_whole_bytes_are_kept(monkeypatch):
    for raw, expected in (("1", 1), ("1.5K", 1536), ("0.5K", 512)):
        monkeypatch.setenv("X", raw)
        assert env_bytes("X", 9) == expected


def test_integers_have_an_upper_bound_where_given(monkeypatch):
    monkeypatch.setenv("X", "65535")
    assert env_int("X", 1, minimum=1, maximum=65535) == 65535
    monkeypatch.setenv("X", "70000")
    with pytest.raises(ImproperlyConfigured, match="X=70000 is above the maximum 65535"):
        env_int("X", 1, minimum=1, maximum=65535)
    with pytest.raises(ImproperlyConfigured, match="X=70000 is above the maximum 65535"):
        env_optional_int("X", maximum=65535)


def test_a_choice_is_one_of_the_names_in_any_case(monkeypatch):
    monkeypatch.delenv("X", raising=False)
    assert env_choice("X", "INFO", ["DEBUG", "INFO"]) == "INFO"
    monkeypatch.setenv("X", " debug ")
    assert env_choice("X", "INFO", ["DEBUG", "INFO"]) == "DEBUG"
    monkeypatch.setenv("X", "verbose")
    with pytest.raises(ImproperlyConfigured, match="X='verbose' is not one of DEBUG, INFO"):
        env_choice("X", "INFO", ["DEBUG", "INFO"])
