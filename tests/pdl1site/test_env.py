"""Typed environment helpers fail loudly on bad values."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from pdl1site.env import env_bool, env_bytes, env_int, env_list


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
