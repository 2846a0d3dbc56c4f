"""Your own vectors in a CSV file: ``--dataset csv:PATH [--label-column NAME]``. Numeric columns give
vectors, the label column integer labels; real values train under a Gaussian likelihood; bad files
are refused with exit status 2 and one line naming the file. Tiny files written here; deterministic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from spherevae.cli import main
from spherevae.data import DataError, load_dataset
from spherevae.data.files import sha256_file

FAST = ["-hd", "8", "--epochs", "1", "--device", "cpu", "--no-compiled-sampling"]


def _table(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return rng.normal(0, 1, (n, 3)) + 4 * y[:, None], y


def _write(path: Path, x: np.ndarray, y: np.ndarray | None) -> Path:
    """Columns ``u, kind, v, w`` (``kind`` the labels, between the value columns)."""
    lines = ["u,kind,v,w" if y is not None else "u,v,w"]
    for i, row in enumerate(x):
        cells = [repr(float(v)) for v in row]
        if y is not None:
            cells.insert(1, str(int(y[i])))
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_columns_give_vectors_and_labels(tmp_path: Path) -> None:
    x, y = _table()
    path = _write(tmp_path / "t.csv", x, y)
    splits = load_dataset(f"csv:{path}", label_column="kind")
    info = splits.info
    assert info.image_shape == (3,) and info.labelled and info.num_classes == 3
    assert splits.sizes() == {"train": 32, "val": 4, "test": 4}
    assert info.sha256 == sha256_file(path) and info.sha256 in info.source
    rows = {tuple(r): int(label) for r, label in zip(x.astype(np.float32), y, strict=True)}
    for split in ("train", "val", "test"):
        part = splits.split(split)
        for vector, label in zip(part.images.numpy(), part.labels, strict=True):
            assert rows[tuple(vector)] == int(
                label
            )  # each row, its label, the label column left out
    unlabelled = load_dataset(f"csv:{path}")  # without label_column: every column is a value
    assert unlabelled.info.image_shape == (4,) and not unlabelled.info.labelled


def test_quoting_spaces_and_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_bytes('\ufeff"label",a, b \n0, 1.5, 2\n 1,3,"4e1"\n1.0,-1,0\n'.encode())
    splits = load_dataset(f"csv:{path}", label_column="label")
    every = torch.cat([splits.split(s).images for s in ("train", "val", "test")])
    assert sorted(map(tuple, every.tolist())) == [(-1.0, 0.0), (1.5, 2.0), (3.0, 40.0)]


@pytest.mark.parametrize(
    ("text", "label", "fragment"),
    [
        ("", None, "empty"),
        ("a,b\n", None, "no data rows"),
        ("1,2\n3,4\n5,6\n", None, "must be a header"),
        ("a,b\n1,2\n3,nan\n5,6\n", None, "NaN"),
        ("a,b\n1,2\n3,x7\n5,6\n", None, "column 'b' must be numeric; data row 2 is not a number"),
        ("a,b\n1,2\n3,\n5,6\n", None, "data row 2 is empty"),
        ("a,b\n1,2\n3\n5,6\n", None, "a row has 1 fields, the header 2"),
        ("a,b\n1,2\n3,4\n5,6\n", "c", "no label column 'c'"),
        ("a,b\n1,0\n3,1.5\n5,1\n", "b", "must hold integers 0..k-1; data row 2 holds 1.5"),
        ("a,b\n1,0\n3,-1\n5,1\n", "b", "data row 2 holds -1"),
        ("a,a\n1,0\n3,1\n5,1\n", None, "named twice"),
        ("a,b\n1,0\n3,1\n", None, "at least 3 examples"),
    ],
)
def test_bad_files_are_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    label: str | None,
    fragment: str,
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    extra = ["--label-column", label] if label else []
    status = main(
        ["train", "--dataset", f"csv:{path}", *extra, *FAST, "--out", str(tmp_path / "r")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and fragment in err[0] and str(path) in err[0], err
    assert not (tmp_path / "r").exists()


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cannot read .*missing\.csv"):
        load_dataset(f"csv:{tmp_path / 'missing.csv'}")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("caf\xe9,b\n1,2\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.csv as a CSV file: not UTF-8"):
        load_dataset(f"csv:{latin}")


def test_csv_trains_with_a_gaussian_and_keeps_its_label_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x, y = _table(60)
    path = _write(tmp_path / "t.csv", x, y)
    run_dir = tmp_path / "run"
    argv = ["train", "--dataset", f"csv:{path}", "--label-column", "kind", "--latent", "S2", *FAST]
    assert main([*argv, "--out", str(run_dir)]) == 0
    assert "likelihood gaussian instead of bernoulli" in capsys.readouterr().out
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["data"]["label_column"] == "kind" and config["data"]["dataset"] == f"csv:{path}"
    assert config["model"]["likelihood"] == "gaussian" and config["model"]["image_shape"] == [3]
    assert main(["eval", str(run_dir), "--ll-samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "knn_labelled: 48" in out  # reloaded with its labels
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "report.html").stat().st_size > 1000


def test_default_run_directory_is_named_after_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, _ = _table(30)
    path = _write(tmp_path / "my table.csv", x, None)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--dataset", f"csv:{path}", "--latent", "S2", *FAST]) == 0
    assert (tmp_path / "runs" / "csv-my table-S2-vmf" / "run.json").is_file()
