"""The IDX format of MNIST and Fashion-MNIST: parse, encode and hash ``uint8`` arrays.

An IDX file is a 4-byte magic number ``00 00 TT NN`` (``TT`` the element type, ``0x08`` for
``uint8``; ``NN`` the number of dimensions), ``NN`` big-endian ``uint32`` sizes, then the elements
in C order. MNIST and Fashion-MNIST use only ``uint8``, so that is the only type supported.

References:
    Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database of handwritten digits" (file format
    section), http://yann.lecun.com/exdb/mnist/.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError

__all__ = ["encode_idx", "idx_sha256", "parse_idx", "read_idx"]

_UINT8 = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


def _idx_header(shape: tuple[int, ...]) -> bytes:
    return bytes((0, 0, _UINT8, len(shape))) + b"".join(n.to_bytes(4, "big") for n in shape)


def parse_idx(buf: bytes, *, name: str = "IDX data") -> np.ndarray:
    """Decode uncompressed IDX bytes into a ``uint8`` array.

    Args:
        buf: the whole file, decompressed.
        name: what to call the data in error messages (e.g. the file name).

    Returns:
        A writable ``uint8`` array of the shape stored in the header, e.g. ``(60000, 28, 28)`` for
        MNIST training images and ``(60000,)`` for its labels.

    Raises:
        DataError: bad magic number, element type other than ``uint8``, or a length that does not
            match the header.

    Examples:
        >>> parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 9])).tolist()
        [7, 9]
    """
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0:
        raise DataError(f"{name} is not an IDX file: it starts with {bytes(buf[:4])!r}")
    if buf[2] != _UINT8:
        raise DataError(
            f"{name} has IDX element type 0x{buf[2]:02x}; only uint8 (0x08) is supported"
        )
    ndim = buf[3]
    offset = 4 + 4 * ndim
    if len(buf) < offset:
        raise DataError(f"{name}: IDX header for {ndim} dimensions is truncated")
    shape = tuple(int.from_bytes(buf[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = offset + int(np.prod(shape, dtype=np.int64))
    if len(buf) != expected:
        raise DataError(
            f"{name}: IDX header says shape {shape} ({expected} bytes) but the data has "
            f"{len(buf)} bytes"
        )
    # copy(): frombuffer views the (immutable) bytes, and callers may want to write
    array: np.ndarray = np.frombuffer(buf, dtype=np.uint8, offset=offset).reshape(shape).copy()
    return array


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file, plain or gzip-compressed (detected from the content, not the name)."""
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path} is a corrupt gzip file: {exc}") from exc
    return parse_idx(raw, name=str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """Encode a ``uint8`` array as IDX bytes (inverse of :func:`parse_idx`)."""
    if array.dtype != np.uint8:
        raise DataError(f"encode_idx needs a uint8 array, got dtype={array.dtype}")
    return _idx_header(array.shape) + np.ascontiguousarray(array).tobytes()


def idx_sha256(array: np.ndarray) -> str:
    """SHA-256 of the uncompressed IDX file that stores ``array``, without building that file.

    This is the checksum of the decompressed official files (``sha256sum train-images-idx3-ubyte``),
    so one pinned value verifies the data whichever container it came in: IDX or ``.gz`` files,
    the npm tarball, the ``mnist.pkl.gz`` of the PyPI fallback, or our own ``.npz`` cache.
    """
    if array.dtype != np.uint8:
        raise DataError(f"idx_sha256 needs a uint8 array, got dtype={array.dtype}")
    digest = hashlib.sha256(_idx_header(array.shape))
    digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()
