"""The commands' numeric arguments: a negative, zero, nan or infinite value is refused by the parser, before
any work (evaluate_detector used to write a table of NaN scores for --synthetic-fields -3 or --radius-um inf)."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from analysis import argtypes as _argtypes


@pytest.mark.parametrize("args", [
    ["--synthetic-fields", "-3"], ["--synthetic-fields", "0"], ["--synthetic-fields", "1.5"],
    ["--radius-um", "inf"], ["--radius-um", "nan"], ["--radius-um", "-1"], ["--radius-um", "0"],
])
def test_evaluate_detector_refuses_bad_numbers_and_writes_nothing(tmp_path, args):
    out = tmp_path / "eval"
    with pytest.raises(CommandError, match="--synthetic-fields|--radius-um"):
        call_command("evaluate_detector", "--data", "synthetic", "--out", str(out), *args, stdout=io.StringIO())
    assert not out.exists()


@pytest.mark.parametrize("args", [
    ["--synthetic-fields", "-3"], ["--synthetic-fields", "0"], ["--synthetic-val", "-1"],
    ["--synthetic-size", "0"], ["--synthetic-size", "-384"],
])
def test_train_detector_refuses_bad_synthetic_numbers(tmp_path, args):
    out = tmp_path / "run"
    with pytest.raises(CommandError, match="--synthetic-"):
        call_command("train_detector", "--source", "synthetic", "--out", str(out), "--steps", "1", *args,
                     stdout=io.StringIO())
    assert not out.exists()


@pytest.mark.parametrize("args,message", [
    (["--val", "nan"], "--val"), (["--test", "-0.2"], "--test"), (["--val", "1"], "--val"),
    (["--val", "inf"], "--val"), (["--val", "0.5", "--test", "0.5"], "no share of slides to train on"),
])
@pytest.mark.django_db
def test_export_annotations_refuses_bad_shares(tmp_path, args, message):
    out = tmp_path / "dataset"
    with pytest.raises(CommandError, match=message):
        call_command("export_annotations", str(out), "--marker", "PD-L1", *args, stdout=io.StringIO())
    assert not out.exists()


@pytest.mark.parametrize("args", [["--port", "0"], ["--port", "-1"], ["--port", "65536"], ["--port", "99999999"],
                                  ["--idle-timeout", "inf"], ["--block-timeout", "nan"]])
def test_mllp_listen_refuses_a_port_out_of_range_or_an_endless_timeout(monkeypatch, args):
    import integration.mllp

    async def serve(*a, **k):
        raise AssertionError("the listener must not start")

    monkeypatch.setattr(integration.mllp, "serve", serve)
    with pytest.raises(CommandError, match="--port|--idle-timeout|--block-timeout"):
        call_command("mllp_listen", *args, stdout=io.StringIO())


def test_the_types_accept_good_values():
    assert _argtypes.positive_int("3") == 3 and _argtypes.non_negative_int("0") == 0
    assert _argtypes.positive_float("0.25") == 0.25 and _argtypes.share("0") == 0.0
    assert _argtypes.port("1") == 1 and _argtypes.port("65535") == 65535
