"""Progress inside long loops: lines every so often in a log, a bar on a terminal, never both kinds
of output mixed into a file."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

import spherevae.progress
from spherevae.cli import main
from spherevae.progress import Progress


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_line_every_interval_and_none_before() -> None:
    clock, lines = _Clock(), []
    progress = Progress(
        "epoch 3", 600, lines.append, bar=False, lines=True, interval=30, clock=clock
    )
    for seconds in (10, 29, 31, 45, 62, 63):  # the end of each batch of 100 examples
        clock.now = 100.0 + seconds
        progress.update(100)
    progress.close()
    assert lines == ["epoch 3: 300/600 examples, 31 s", "epoch 3: 500/600 examples, 62 s"]


def test_track_counts_each_item_once_it_is_done() -> None:
    clock, lines = _Clock(), []
    progress = Progress(
        "evaluation", 5, lines.append, bar=False, lines=True, interval=0, clock=clock
    )
    for item in progress.track(["ab", "cde"], len):
        clock.now += 1
        assert not lines or lines[-1] == "evaluation: 2/5 examples, 1 s", item
    assert lines == ["evaluation: 2/5 examples, 1 s", "evaluation: 5/5 examples, 2 s"]


def test_terminals_get_a_bar_and_no_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr, stdout = _Terminal(), _Terminal()
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setattr(sys, "stdout", stdout)
    lines: list[str] = []
    with Progress("epoch 1", 10, lines.append, interval=0) as progress:
        progress.update(4)
    assert lines == [] and "\r" in stderr.getvalue() and "epoch 1" in stderr.getvalue()


def test_logs_get_lines_and_no_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr, stdout = io.StringIO(), io.StringIO()  # files: not terminals
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setattr(sys, "stdout", stdout)
    lines: list[str] = []
    with Progress("epoch 1", 10, lines.append, interval=0) as progress:
        progress.update(4)
    assert lines == ["epoch 1: 4/10 examples, 0 s"] and stderr.getvalue() == ""


def test_train_and_eval_print_progress_lines_into_a_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spherevae.progress, "PROGRESS_SECONDS", 0.0)  # a line after every batch
    run_dir = tmp_path / "run"
    argv = ["train", "--dataset", "digits", "--hidden-sizes", "16", "--latent", "S2"]
    argv += ["--epochs", "1", "--batch-size", "500", "--no-compiled-sampling", "--device", "cpu"]
    assert main([*argv, "--out", str(run_dir)]) == 0
    assert main(["eval", str(run_dir), "--ll-samples", "2", "--batch-size", "200"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    # digits: 1197 training, 300 validation and 300 test images
    for expected in ("epoch 1: 500/1197 examples", "epoch 1: 1197/1197 examples",
                     "epoch 1: validation: 300/300 examples", "evaluation: 200/300 examples",
                     "evaluation: 300/300 examples"):  # fmt: skip
        assert any(line.startswith(expected + ", ") for line in lines), (expected, lines)
    assert "\r" not in captured.out + captured.err
