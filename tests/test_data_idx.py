"""IDX parser and encoder (``spherevae.data.idx``) on bytes written here, plain and gzip-compressed.

Deterministic: no randomness beyond fixed-seed test data.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from spherevae.data import DataError, parse_idx, read_idx
from spherevae.data.idx import encode_idx, idx_sha256


def _images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)


def test_parse_hand_written_header() -> None:
    # magic 00 00 08 02, dims 2 x 3 big-endian, then 6 bytes in C order
    buf = bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6])
    array = parse_idx(buf)
    assert array.dtype == np.uint8
    assert array.tolist() == [[1, 2, 3], [4, 5, 6]]
    array[0, 0] = 9  # writable: not a view of the immutable bytes


def test_big_endian_dimensions() -> None:
    # 300 = 0x012c: a little-endian reader would see a different size and fail the length check
    buf = bytes([0, 0, 8, 1, 0, 0, 0x01, 0x2C]) + bytes(range(256)) + bytes(44)
    assert parse_idx(buf).shape == (300,)


@pytest.mark.parametrize("shape", [(5,), (3, 28, 28), (2, 3, 4, 5)])
def test_encode_parse_round_trip(shape: tuple[int, ...]) -> None:
    array = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    np.testing.assert_array_equal(parse_idx(encode_idx(array)), array)


@pytest.mark.parametrize("gz", [False, True])
def test_read_plain_and_gz(tmp_path: Path, gz: bool) -> None:
    images = _images()
    data = encode_idx(images)
    # the file name says nothing: compression is recognised from the content
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(gzip.compress(data) if gz else data)
    np.testing.assert_array_equal(read_idx(path), images)


def test_idx_sha256_is_the_file_checksum() -> None:
    images = _images()
    assert idx_sha256(images) == hashlib.sha256(encode_idx(images)).hexdigest()
    assert idx_sha256(images[:, ::-1]) == hashlib.sha256(encode_idx(images[:, ::-1])).hexdigest()


@pytest.mark.parametrize(
    ("buf", "message"),
    [
        (bytes([0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0]), "element type 0x0d"),  # float32
        (bytes([0, 0, 0x0B, 1, 0, 0, 0, 1, 0, 0]), "element type 0x0b"),  # int16
        (bytes([1, 0, 8, 1, 0, 0, 0, 1, 7]), "not an IDX file"),
        (bytes([0, 0]), "not an IDX file"),
        (bytes([0, 0, 8, 3, 0, 0, 0, 1]), "truncated"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 7]), "shape (3,)"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 1, 7, 7]), "has 10 bytes"),
    ],
)
def test_malformed_idx_raises(buf: bytes, message: str) -> None:
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_idx(buf, name="x.idx")


def test_corrupt_gzip_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(encode_idx(_images()))[:100])
    with pytest.raises(DataError, match=r"broken\.gz"):
        read_idx(path)


def test_encode_rejects_other_dtypes() -> None:
    with pytest.raises(DataError, match="uint8"):
        encode_idx(np.zeros(3, dtype=np.int16))
