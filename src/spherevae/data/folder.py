"""Your own images in a folder: ``--dataset folder:PATH`` or ``load_dataset("folder:PATH")``.

The folder holds PNG or JPEG files (suffixes ``.png``, ``.jpg``, ``.jpeg`` in any case), read with
Pillow; files with other suffixes, and files and folders whose names start with ``.``, are ignored.

- **Labels**: with one subfolder per class (``PATH/cat/*.png``, ``PATH/dog/*.png``; images deeper
  inside a class folder belong to it), the labels are ``0..k-1`` in the sorted order of the folder
  names, which ``DatasetInfo.class_names`` (and so ``run.json``) records. Images directly in
  ``PATH``, with no class folders, are unlabelled. Both at once is refused, as is a class folder
  without images.
- **Channels**: every image gets the channels of the richest image in the folder: colour (RGB) if
  any image is in colour, else grey; plus an alpha channel if any image has transparency (an RGBA or
  grey-with-alpha image, or a palette with a transparent entry). So grey images give ``C = 1``,
  colour ``C = 3``, colour with transparency ``C = 4`` (RGBA, the alpha modelled like any other
  channel), grey with transparency ``C = 2``; grey images in a colour folder repeat their grey in
  R, G and B, images without transparency get alpha 1. Palette images count as colour.
- **Values**: 8-bit images divided by 255, 16-bit grey PNGs by 65535: ``float32`` in ``[0, 1]``.
  JPEG orientation tags (EXIF) are applied, so images are read upright.
- **Size**: all images must have one size, unless ``image_size=(H, W)`` (``--image-size H W``) asks
  for every image to be resized to ``H x W`` (Pillow's bicubic filter; the aspect ratio is not
  kept).
- **Splits**: the images in the sorted order of their paths relative to ``PATH``, split 80 / 10 / 10
  by the permutation ``numpy.random.default_rng(0)`` (:func:`~.splits.split_80_10_10`), the same on
  every machine.
- **Digest**: ``DatasetInfo.sha256`` is the SHA-256 of, for each image in that order, its relative
  path (``/``-separated, UTF-8), a zero byte, its size in bytes as 8 bytes big-endian, and its
  bytes. A run records it; renaming, adding, removing or editing an image changes it.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..extras import missing_extra

try:
    from PIL import Image, ImageOps, UnidentifiedImageError
except ModuleNotFoundError as err:  # an optional package: name the extra
    raise missing_extra(err) from None

from .errors import DataError
from .files import check_recorded_sha256
from .splits import DatasetInfo, DatasetSplits, split_user_data

__all__ = ["FOLDER_PREFIX", "IMAGE_SUFFIXES", "SPLIT_SEED", "folder_sha256", "load_folder_dataset"]

FOLDER_PREFIX = "folder:"
#: the file suffixes read as images (compared in lower case)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: the seed of the permutation that splits the images
SPLIT_SEED = 0

# Pillow's modes of 16-bit grey images (16-bit PNGs open as one of these)
_SIXTEEN_BIT = ("I", "I;16", "I;16B", "I;16L", "I;16N")
_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")
_GREY_MODES = ("1", "L", "LA", "La", *_SIXTEEN_BIT)


@dataclass(frozen=True)
class _File:
    path: Path
    relative: str  # relative to the folder, "/"-separated
    label: int  # -1: unlabelled


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _images_under(folder: Path, root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            path = Path(dirpath) / name
            if path.suffix.lower() in IMAGE_SUFFIXES and not _hidden(path, root):
                found.append(path)
    return found


def _list_images(root: Path) -> tuple[list[_File], tuple[str, ...]]:
    """The images of ``root`` in sorted order of their relative paths, and the class names."""
    if not root.is_dir():
        what = "not a folder" if root.exists() else "no such folder"
        raise DataError(f"cannot read {root} as an image folder: {what}")
    try:
        entries = sorted(root.iterdir())
        top = [
            p
            for p in entries
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        ]
        classes = [p for p in entries if p.is_dir() and not p.name.startswith(".")]
        per_class = {folder.name: _images_under(folder, root) for folder in classes}
    except OSError as err:
        raise DataError(f"cannot read {root}: {err.strerror or err}") from None
    suffixes = "/".join(IMAGE_SUFFIXES)
    with_images = {name: paths for name, paths in per_class.items() if paths}
    if top and with_images:
        raise DataError(
            f"{root}: holds images both directly in it and in subfolders; put every image in a "
            f"class subfolder (labelled) or none (unlabelled)"
        )
    if top:
        files = [_File(p, p.name, -1) for p in top]
        names: tuple[str, ...] = ()
    else:
        empty = sorted(set(per_class) - set(with_images))
        if empty:
            raise DataError(f"{root / empty[0]}: a class folder without images ({suffixes} files)")
        names = tuple(sorted(with_images))
        files = [
            _File(p, p.relative_to(root).as_posix(), label)
            for label, name in enumerate(names)
            for p in with_images[name]
        ]
    if not files:
        raise DataError(f"{root}: no images ({suffixes} files) in it or in its subfolders")
    files.sort(key=lambda f: f.relative)
    return files, names


def _read_all(files: Sequence[_File]) -> tuple[list[bytes], str]:
    """The bytes of every file and the folder digest (layout in the module doc)."""
    digest = hashlib.sha256()
    contents = []
    for f in files:
        try:
            data = f.path.read_bytes()
        except OSError as err:
            raise DataError(f"cannot read {f.path}: {err.strerror or err}") from None
        digest.update(f.relative.encode("utf-8") + b"\0" + len(data).to_bytes(8, "big"))
        digest.update(data)
        contents.append(data)
    return contents, digest.hexdigest()


def folder_sha256(path: str | Path) -> str:
    """The digest of an image folder (layout in the module doc), as ``DatasetInfo.sha256``."""
    files, _ = _list_images(Path(path).expanduser())
    return _read_all(files)[1]


def _open(path: Path, data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
        upright = ImageOps.exif_transpose(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: not a readable PNG or JPEG image ({err})") from None
    if upright.mode == "F":
        raise DataError(
            f"{path}: a 32-bit floating-point image; save it as an 8- or 16-bit PNG or a JPEG"
        )
    return upright


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in _ALPHA_MODES or "transparency" in image.info


def _pixels(
    path: Path, image: Image.Image, colour: bool, alpha: bool, size: tuple[int, int] | None
) -> np.ndarray:
    """``image`` as ``float32`` ``(C, H, W)`` in ``[0, 1]`` with the folder's channels."""
    box = None if size is None else (size[1], size[0])  # Pillow sizes are (width, height)
    if image.mode in _SIXTEEN_BIT:
        grey = np.asarray(image, dtype=np.float64)
        if grey.min() < 0 or grey.max() > 65535:
            raise DataError(f"{path}: grey values outside 0..65535 in a {image.mode} image")
        plane = Image.fromarray((grey / 65535).astype(np.float32))  # mode F: resized in floats
        if box is not None:
            plane = plane.resize(box, Image.Resampling.BICUBIC)
        values = np.clip(np.asarray(plane, dtype=np.float32), 0, 1)
        planes = [values] * (3 if colour else 1) + ([np.ones_like(values)] if alpha else [])
        return np.stack(planes)
    mode = ("RGB" if colour else "L") + ("A" if alpha else "")
    try:
        converted = image.convert(mode)
    except ValueError as err:
        raise DataError(f"{path}: cannot convert a {image.mode} image to {mode} ({err})") from None
    if box is not None:
        converted = converted.resize(box, Image.Resampling.BICUBIC)
    array = np.asarray(converted, dtype=np.float32) / 255
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def load_folder_dataset(
    path: str | Path,
    *,
    image_size: Sequence[int] | None = None,
    expected_sha256: str | None = None,
) -> DatasetSplits:
    """The images of a folder as train / validation / test splits (layout in the module doc).

    Args:
        path: the folder.
        image_size: ``(H, W)``: resize every image to this size; ``None``: all images must have
            one size.
        expected_sha256: the digest the folder must have (a run's record), checked before any
            image is decoded.

    Raises:
        DataError: naming the folder or file: no images, an unreadable file or image, images of
            different sizes without ``image_size``, or a digest other than ``expected_sha256``.
    """
    root = Path(path).expanduser()
    size: tuple[int, int] | None = None
    if image_size is not None:
        dims = tuple(image_size)
        if len(dims) != 2 or not all(isinstance(d, int) and d >= 1 for d in dims):
            raise DataError(f"image_size must be two integers (H, W) >= 1, got {image_size!r}")
        size = (int(dims[0]), int(dims[1]))
    files, class_names = _list_images(root)
    contents, digest = _read_all(files)
    check_recorded_sha256(root, digest, expected_sha256)
    images = [_open(f.path, data) for f, data in zip(files, contents, strict=True)]
    colour = any(image.mode not in _GREY_MODES for image in images)
    alpha = any(_has_alpha(image) for image in images)
    if size is None:
        first = images[0].size
        for f, image in zip(files, images, strict=True):
            if image.size != first:
                raise DataError(
                    f"{root}: images differ in size: {files[0].relative} is "
                    f"{first[1]}x{first[0]} (HxW), {f.relative} is {image.size[1]}x{image.size[0]}; "
                    f"give --image-size H W (image_size) to resize them all"
                )
    x = np.stack(
        [
            _pixels(f.path, image, colour, alpha, size)
            for f, image in zip(files, images, strict=True)
        ]
    )
    labels = np.array([f.label for f in files], dtype=np.int64) if class_names else None
    splits, rule = split_user_data(x, labels, SPLIT_SEED, str(root))
    channels = {1: "grey", 2: "grey + alpha", 3: "RGB", 4: "RGBA"}[x.shape[1]]
    resized = "" if size is None else f", resized to {size[0]}x{size[1]}"
    info = DatasetInfo(
        name=f"{FOLDER_PREFIX}{root}",
        image_shape=tuple(int(s) for s in x.shape[1:]),
        binary=bool(np.isin(x, (0.0, 1.0)).all()),
        source=(
            f"the image folder {root} ({len(files)} images, {channels}{resized}; sha256 {digest} "
            f"over their sorted relative paths and bytes)"
        ),
        num_classes=len(class_names),
        class_names=class_names or None,
        labelled=bool(class_names),
        splits=f"the images in sorted path order {rule}",
        sha256=digest,
    )
    return DatasetSplits(splits["train"], splits["val"], splits["test"], info)
