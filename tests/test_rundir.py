"""``spherevae.rundir``: the run directory's one home (names, readers, writers)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from spherevae import rundir


def test_every_file_is_documented_in_the_layout() -> None:
    doc = rundir.__doc__ or ""
    names = [rundir.CONFIG, rundir.COMMAND, rundir.RUN_INFO, rundir.METRICS, rundir.TIMING]
    names += [rundir.CHECKPOINT, rundir.MANIFEST, rundir.LATENTS, rundir.DATA, rundir.LOCK]
    names += [f"{rundir.MODEL_DIR}/", f"{rundir.PLOTS_DIR}/", f"{rundir.TENSORBOARD}/"]
    names += ["eval_<split>.json"]
    missing = [name for name in names if f"  {name}" not in doc]
    assert not missing, missing
    assert rundir.eval_file("test") == "eval_test.json"


def test_figures_do_not_import_the_training_run() -> None:
    # training.run draws the figures; the figures read a run through rundir: no import cycle
    package = Path(rundir.__file__).parent
    for path in sorted((package / "plots").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                assert "training" not in (node.module or ""), f"{path.name} imports {node.module}"


def test_a_data_file_inside_the_run_resolves_to_it(tmp_path: Path) -> None:
    assert (
        rundir.resolve_dataset("npz:RUN_DIR/data.npz", tmp_path) == f"npz:{tmp_path / 'data.npz'}"
    )
    assert rundir.resolve_dataset("npz:/data/x.npz", tmp_path) == "npz:/data/x.npz"
    assert rundir.resolve_dataset("mnist", None) == "mnist"
    with pytest.raises(ValueError, match="names a file of a run directory"):
        rundir.resolve_dataset("npz:RUN_DIR/data.npz", None)


def test_metrics_round_trip(tmp_path: Path) -> None:
    rows = [{"epoch": 1, "loss": 2.5, "val": float("nan")}, {"epoch": 2, "loss": 1.25, "val": 3.0}]
    rundir.write_metrics(tmp_path, rows, ["epoch", "loss", "val"])
    back = rundir.read_metrics(tmp_path)
    assert [r["loss"] for r in back] == [2.5, 1.25] and back[1]["val"] == 3.0
    assert back[0]["val"] != back[0]["val"]  # nan
    rundir.append_timing(tmp_path, 1, 0.5)
    rundir.append_timing(tmp_path, 1, 0.25)
    assert (tmp_path / rundir.TIMING).read_text() == "epoch,seconds\n1,0.250\n"
