"""Runs never lose work and never report a wrong number: locks, resumes, validation, exit statuses.

Each test guards one defect of the audit of run handling (bad input, interrupted runs, concurrent
writers) and fails without its fix. Everything runs in-process through ``spherevae.cli.main`` on
scikit-learn's digits (seconds a run); the exit status and the one line on stderr are what a user
sees.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
from pathlib import Path

import pytest
import torch

from spherevae.cli import main
from spherevae.rundir import read_metrics
from spherevae.training import run as run_module
from spherevae.training.checkpoint import load_checkpoint, save_checkpoint
from spherevae.training.lock import LOCK_FILE, run_lock

FAST = ["--dataset", "digits", "-hd", "16", "--seed", "3", "--device", "cpu"]
FAST += ["--no-compiled-sampling", "--latent", "S2"]


def _snapshot(run_dir: Path) -> dict[str, str]:
    return {
        str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


def _usage_error(capsys: pytest.CaptureFixture[str], status: int, *fragments: str) -> None:
    """Exit status 2, one line on stderr naming every fragment, no traceback."""
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "two-epochs"
    assert main(["train", *FAST, "--epochs", "2", "--out", str(run_dir)]) == 0
    return run_dir


def _copy(run_dir: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(run_dir, to)
    return to


# -- resume from any state -----------------------------------------------------------------------
def test_a_run_stopped_before_its_first_checkpoint_resumes(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    assert main(["train", *FAST, "--epochs", "0", "--out", str(run_dir)]) == 0
    assert not (run_dir / "checkpoints").exists()
    assert main(["train", "--resume", str(run_dir), "--epochs", "2"]) == 0
    assert [row["epoch"] for row in read_metrics(run_dir)] == [1.0, 2.0]
    assert (run_dir / "checkpoints" / "last.pt").is_file()


def test_resume_into_another_run_is_refused(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = _copy(finished_run, tmp_path / "other")
    before = _snapshot(other)
    status = main(["train", "--resume", str(finished_run), "--out", str(other), "--epochs", "3"])
    _usage_error(capsys, status, "holds another run", str(other))
    assert _snapshot(other) == before


def test_resume_into_a_new_directory(finished_run: Path, tmp_path: Path) -> None:
    source = _copy(finished_run, tmp_path / "source")
    before = _snapshot(source)
    fork = tmp_path / "fork"
    assert main(["train", "--resume", str(source), "--out", str(fork), "--epochs", "3"]) == 0
    assert len(read_metrics(fork)) == 3
    assert _snapshot(source) == before


def test_resume_applies_and_records_its_settings(finished_run: Path, tmp_path: Path) -> None:
    run_dir = _copy(finished_run, tmp_path / "r")
    argv = ["train", "--resume", str(run_dir), "-lr", "0.0025", "--epochs", "3", "-b", "0.5"]
    assert main(argv) == 0
    rows = read_metrics(run_dir)
    assert len(rows) == 3
    assert rows[1]["lr"] == pytest.approx(1e-3) and rows[2]["lr"] == pytest.approx(0.0025)
    assert rows[2]["kl_weight"] == pytest.approx(0.5)
    text = (run_dir / "config.yaml").read_text()
    assert "lr: 0.0025" in text and "beta: 0.5" in text and "epochs: 3" in text
    assert (run_dir / "command.txt").read_text().splitlines()[-1].endswith("-b 0.5")


@pytest.mark.parametrize(
    ("flags", "setting"),
    [
        (["--latent", "S3"], "model.latent"),
        (["--seed", "9"], "train.seed"),
        (["-bs", "7"], "data.batch_size"),
        (["--dataset", "mnist"], "data.dataset"),
    ],
)
def test_resume_refuses_settings_that_make_another_run(
    finished_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    setting: str,
) -> None:
    run_dir = _copy(finished_run, tmp_path / "r")
    before = _snapshot(run_dir)
    status = main(["train", "--resume", str(run_dir), *flags])
    _usage_error(capsys, status, setting, "cannot change")
    assert _snapshot(run_dir) == before


def test_a_run_stopped_early_is_not_extended(tmp_path: Path) -> None:
    """Early stopping is final: a resume with more epochs (a second ``experiment`` call) must not
    train on; a run that reached its epoch limit goes on."""
    run_dir = tmp_path / "early"
    # no validation objective beats the first by 1e9: stops after patience = 1 more epoch
    argv = ["train", *FAST, "--epochs", "5", "-la", "1", "-mi", "1e9", "--out", str(run_dir)]
    assert main(argv) == 0
    assert len(read_metrics(run_dir)) == 2
    weights = ("config.json", "model.safetensors")  # the card says the new epoch limit
    before = {k: v for k, v in _snapshot(run_dir / "model").items() if k in weights}
    assert main(["train", "--resume", str(run_dir), "--epochs", "9"]) == 0
    assert len(read_metrics(run_dir)) == 2
    assert {k: v for k, v in _snapshot(run_dir / "model").items() if k in weights} == before


def test_checkpoint_file_outside_a_run_needs_out(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "x.pt").write_bytes((finished_run / "checkpoints" / "last.pt").read_bytes())
    status = main(["train", "--resume", str(loose / "x.pt"), "--epochs", "3"])
    _usage_error(capsys, status, "--out")
    assert sorted(p.name for p in loose.iterdir()) == ["x.pt"]
    new = tmp_path / "new"
    assert main(["train", "--resume", str(loose / "x.pt"), "--out", str(new), "--epochs", "3"]) == 0
    assert len(read_metrics(new)) == 3


# -- one writer per run directory ------------------------------------------------------------------
def test_a_second_writer_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "busy"
    with run_lock(run_dir):  # another process training into it
        status = main(["train", *FAST, "--epochs", "1", "--out", str(run_dir)])
        _usage_error(capsys, status, "in use by another spherevae process", "pid")
        assert sorted(p.name for p in run_dir.iterdir()) == [LOCK_FILE]
    assert not run_dir.exists()  # the lock leaves no trace


def test_resuming_a_run_in_use_is_refused(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _copy(finished_run, tmp_path / "r")
    before = _snapshot(run_dir)
    with run_lock(run_dir):
        status = main(["train", "--resume", str(run_dir), "--epochs", "4"])
        _usage_error(capsys, status, "in use")
    assert _snapshot(run_dir) == before


def test_a_lock_left_by_a_dead_process_is_taken_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "stale"
    run_dir.mkdir()
    stale = {"pid": 999999, "host": "elsewhere", "started": "2026-01-01T00:00:00+00:00"}
    (run_dir / LOCK_FILE).write_text(json.dumps(stale))
    assert main(["train", *FAST, "--epochs", "1", "--out", str(run_dir)]) == 0
    assert "taking over a lock left by a process that ended (pid 999999" in capsys.readouterr().out
    assert not (run_dir / LOCK_FILE).exists()


# -- bad input is refused before anything is allocated or written -------------------------------
@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--batch-size", "-1"], "--batch-size"),
        (["--batch-size", "0"], "--batch-size"),
        (["--ll-samples", "0"], "--ll-samples"),
        (["--knn-k", "0"], "--knn-k"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_eval_options_are_validated(
    finished_run: Path, capsys: pytest.CaptureFixture[str], flags: list[str], fragment: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", str(finished_run), *flags])
    _usage_error(capsys, int(exit_info.value.code or 0), fragment)
    assert not (finished_run / "eval_test.json").exists()


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("train:\n", ["train: empty section"]),
        ("train:\n  - 1\n", ["train: expected a mapping"]),
        ("train:\n  epochs: 2\n  epochs: 100000\n", ["'epochs' given twice", "line 3"]),
        ("train:\n  epochs: true\n", ["train.epochs", "got true"]),
        ("train:\n  lr: .inf\n", ["train.lr", "finite"]),
    ],
)
def test_config_files_are_read_strictly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, fragments: list[str]
) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(text)
    status = main(["train", *FAST, "--config", str(config), "--out", str(tmp_path / "r")])
    _usage_error(capsys, status, "run.yaml", *fragments)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("keep", [0, 40, 200])
def test_an_empty_or_truncated_run_config_is_refused(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], keep: int
) -> None:
    run_dir = _copy(finished_run, tmp_path / "r")
    (run_dir / "manifest.json").unlink()  # the check of the content itself, without the manifest's
    config = run_dir / "config.yaml"
    config.write_text(config.read_text()[:keep])
    status = main(["eval", str(run_dir), "--ll-samples", "2"])
    _usage_error(capsys, status, "config.yaml")  # "incomplete", or a section cut mid-way
    assert not (run_dir / "eval_test.json").exists()


def test_sample_writes_only_images(finished_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _snapshot(finished_run)
    status = main(["sample", str(finished_run), "--out", str(finished_run / "config.yaml")])
    _usage_error(capsys, status, ".png")
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", str(finished_run), "--n", "0"])
    _usage_error(capsys, int(exit_info.value.code or 0), "--n")
    status = main(["sample", str(finished_run), "--n", "1000000000"])
    _usage_error(capsys, status, "--n", "at most")
    assert _snapshot(finished_run) == before


# -- the NaN guard and how a run ends ---------------------------------------------------------------
def test_weights_that_become_non_finite_restart_then_fail_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A learning rate so large that the first step makes the weights non-finite: the posterior
    refuses its parameters, which is handled as a non-finite loss (restarts from the last good
    state, then exit 1 with one line), and run.json says "failed"."""
    run_dir = tmp_path / "diverged"
    argv = ["train", *FAST, "--epochs", "1", "-lr", "1e30", "-mr", "2", "--out", str(run_dir)]
    status = main(argv)
    captured = capsys.readouterr()
    assert status == 1, captured.err
    assert "Traceback" not in captured.err and len(captured.err.strip().splitlines()) == 1
    assert "after 2 restarts" in captured.err
    assert captured.out.count("restart") >= 2
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "failed" and "restarts" in info["stop_reason"]


def test_a_checkpoint_with_a_non_finite_weight_is_refused(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _copy(finished_run, tmp_path / "r")
    (run_dir / "manifest.json").unlink()  # the check of the content itself, without the manifest's
    file = run_dir / "checkpoints" / "last.pt"
    state = load_checkpoint(file)
    name = next(iter(state["model"]))
    state["model"][name].view(-1)[0] = math.nan
    save_checkpoint(file, {k: v for k, v in state.items() if k not in ("format", "version")})
    before = _snapshot(run_dir)
    status = main(["train", "--resume", str(run_dir), "--epochs", "3"])
    _usage_error(capsys, status, "non-finite weights", name)
    assert _snapshot(run_dir) == before


def test_an_interrupted_run_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(self: object, on_epoch_end: object = None) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module.Trainer, "fit", interrupt)
    run_dir = tmp_path / "r"
    status = main(["train", *FAST, "--epochs", "2", "--out", str(run_dir)])
    err = capsys.readouterr().err
    assert status == 130 and err.strip() == "spherevae: interrupted"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    assert not (run_dir / LOCK_FILE).exists()


@pytest.mark.parametrize(
    ("code", "status"), [(errno.ENOSPC, 3), (errno.EROFS, 3), (errno.ENOENT, 2)]
)
def test_environment_failures_have_their_own_status(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    code: int,
    status: int,
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(code, "simulated", str(tmp_path / "r" / "metrics.csv"))

    monkeypatch.setattr(run_module, "train_run", fail)
    assert main(["train", *FAST, "--epochs", "1", "--out", str(tmp_path / "r")]) == status
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "metrics.csv" in err


def test_a_finished_run_keeps_its_weights_bit_for_bit(finished_run: Path) -> None:
    """Sanity for the fixtures above: the shared run was never changed by a refused command."""
    state = load_checkpoint(finished_run / "checkpoints" / "last.pt")
    assert state["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


# -- files: their mode, leftovers of killed writes, errors that name them --------------------------
def test_every_file_of_a_run_follows_the_umask(finished_run: Path) -> None:
    modes = {
        str(p.relative_to(finished_run)): p.stat().st_mode & 0o777
        for p in finished_run.rglob("*")
        if p.is_file()
    }
    assert modes["model/model.safetensors"] == modes["config.yaml"], modes
    assert len(set(modes.values())) == 1, modes


def test_partial_files_of_killed_writes_are_removed_on_resume(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _copy(finished_run, tmp_path / "r")
    left = [run_dir / ".metrics.csv.4242.0a1b2c3d.part", run_dir / "model" / ".x.1.ff.part"]
    for path in left:
        path.write_bytes(b"half a file")
    assert main(["train", "--resume", str(run_dir), "--epochs", "3"]) == 0
    assert not any(path.exists() for path in left)
    assert "partial file of an interrupted write" in capsys.readouterr().out


def test_a_failed_write_names_its_target(tmp_path: Path) -> None:
    from spherevae.io import atomic_write_text

    target = tmp_path / "metrics.csv"
    target.mkdir()  # a directory where the file should go: the final rename fails
    (target / "keep").write_text("x")
    with pytest.raises(OSError) as info:
        atomic_write_text(target, "x")
    assert ".part" not in str(info.value) and "metrics.csv" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]  # no leftover


# -- integrity: files are checked against the run's manifest before they are used ----------------
def _flip_byte(path: Path, offset_from_end: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) - offset_from_end] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("checkpoints/last.pt", "resume"),
        ("config.yaml", "resume"),
        ("model/model.safetensors", "eval"),
        ("model/config.json", "eval"),
        ("config.yaml", "eval"),
        ("model/model.safetensors", "sample"),
    ],
)
def test_a_damaged_file_is_reported_not_used(
    finished_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    command: str,
) -> None:
    run_dir = _copy(finished_run, tmp_path / "r")
    _flip_byte(run_dir / name, offset_from_end=3 if name.endswith((".yaml", ".json")) else 100)
    before = _snapshot(run_dir)
    argv = {
        "resume": ["train", "--resume", str(run_dir), "--epochs", "3"],
        "eval": ["eval", str(run_dir), "--ll-samples", "2"],
        "sample": ["sample", str(run_dir), "--n", "4"],
    }[command]
    _usage_error(capsys, main(argv), str(run_dir / name), "manifest.json")
    assert _snapshot(run_dir) == before


def test_an_edited_posterior_is_reported(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A valid but different model config (another posterior) must not evaluate another model."""
    run_dir = _copy(finished_run, tmp_path / "r")
    path = run_dir / "model" / "config.json"
    config = json.loads(path.read_text())
    config["posterior"] = "powerspherical"
    path.write_text(json.dumps(config, indent=2) + "\n")
    _usage_error(capsys, main(["eval", str(run_dir), "--ll-samples", "2"]), "config.json")


def test_the_manifest_survives_a_kill_between_its_write_and_the_file_s(
    finished_run: Path, tmp_path: Path
) -> None:
    """The sum is recorded before the file is written: a run killed in between leaves the old file,
    which must still be accepted, and the new file is accepted once written."""
    from spherevae.training.manifest import record_sums, verify_files

    run_dir = _copy(finished_run, tmp_path / "r")
    names = ["config.yaml", "checkpoints/last.pt", "model/model.safetensors", "model/config.json"]
    verify_files(run_dir, names)
    new_config = (run_dir / "config.yaml").read_bytes().replace(b"epochs: 2", b"epochs: 5")
    record_sums(run_dir, {"config.yaml": new_config})
    verify_files(run_dir, names)  # killed here: the old file
    (run_dir / "config.yaml").write_bytes(new_config)
    verify_files(run_dir, names)  # the new one
    assert main(["train", "--resume", str(run_dir), "--epochs", "3"]) == 0


# -- checkpoints and metrics that do not fit: exit 2, never a traceback ------------------------------
def _rewrite_checkpoint(run_dir: Path, change: str) -> None:
    file = run_dir / "checkpoints" / "last.pt"
    state = load_checkpoint(file)
    if change == "rng":
        state["rng"]["torch"] = state["rng"]["torch"][:100]
    elif change == "trainer key":
        state["trainer"]["from_a_later_version"] = 1
    elif change == "weights shape":
        name = next(iter(state["model"]))
        state["model"][name] = torch.zeros(3, 3)
    save_checkpoint(file, {k: v for k, v in state.items() if k not in ("format", "version")})
    (run_dir / "manifest.json").unlink()  # the content's own check, not the manifest's


@pytest.mark.parametrize("change", ["rng", "trainer key", "weights shape"])
def test_a_checkpoint_that_does_not_fit_is_refused(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], change: str
) -> None:
    run_dir = _copy(finished_run, tmp_path / "r")
    _rewrite_checkpoint(run_dir, change)
    before = _snapshot(run_dir)
    status = main(["train", "--resume", str(run_dir), "--epochs", "3"])
    _usage_error(capsys, status, "checkpoint of", "does not fit")
    assert _snapshot(run_dir) == before


def test_a_truncated_metrics_file_is_reported(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _copy(finished_run, tmp_path / "r")
    metrics = run_dir / "metrics.csv"
    metrics.write_text(metrics.read_text()[:-40])
    _usage_error(capsys, main(["plot", str(run_dir), "curves"]), "metrics.csv", "line 3")


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--latent", "S100000000"], "at most 65536"),
        (["-hd", "100000000"], "hidden_sizes must be at most"),
        (["-hd", "60000,60000,60000"], "weights"),
    ],
)
def test_sizes_no_machine_holds_are_refused_before_allocating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], fragment: str
) -> None:
    argv = ["train", "--dataset", "digits", "--device", "cpu", *flags, "--out", str(tmp_path / "r")]
    _usage_error(capsys, main(argv), fragment)
    assert not (tmp_path / "r").exists()


def test_a_crafted_image_shape_is_refused_by_from_pretrained(
    finished_run: Path, tmp_path: Path
) -> None:
    from spherevae.models import from_pretrained

    model_dir = _copy(finished_run / "model", tmp_path / "model")
    config = json.loads((model_dir / "config.json").read_text())
    config["image_shape"] = [3, 100000, 100000]
    (model_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="image_shape"):
        from_pretrained(model_dir)


# -- the first hour: what the CLI says ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "warning"),
    [
        (["--latent", "S2", "-cvm", "full"], "-cvm/--covariance full has no effect"),
        (["--latent", "S2", "--posterior", "powerspherical", "--sampler", "mh"], "--sampler mh"),
        (["--latent", "R2", "--posterior", "normal", "--sampler", "mh"], "--sampler mh"),
    ],
)
def test_settings_that_do_not_apply_are_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], warning: str
) -> None:
    argv = ["train", "--dataset", "digits", "-hd", "8", "--epochs", "0", *flags]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 0
    assert f"spherevae: warning: {warning}" in capsys.readouterr().err


def test_no_warning_for_settings_that_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--dataset", "digits", "-hd", "8", "--epochs", "0", "--latent", "S2xR2"]
    argv += ["-cvm", "full", "--sampler", "mh", "--out", str(tmp_path / "r")]
    assert main(argv) == 0
    assert "warning" not in capsys.readouterr().err


def test_resuming_a_finished_run_says_how_to_extend_it(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _copy(finished_run, tmp_path / "r")
    assert main(["train", "--resume", str(run_dir)]) == 0
    assert "give --epochs N with N > 2 to train on" in capsys.readouterr().out


def test_compiling_the_kernels_is_announced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--dataset", "digits", "-hd", "8", "--epochs", "0", "--latent", "S3"]
    assert main([*argv, "--compiled-sampling", "--out", str(tmp_path / "r")]) == 0
    assert "the first epoch is slower" in capsys.readouterr().out


def test_sample_of_a_conditional_model_asks_for_a_label(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "c"
    argv = ["train", *FAST, "--conditional", "--epochs", "1", "--out", str(run_dir)]
    assert main(argv) == 0
    capsys.readouterr()
    _usage_error(capsys, main(["sample", str(run_dir), "--n", "2"]), "--label", "--grid")
