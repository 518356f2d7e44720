"""Downloads, safe extraction and the CIFAR-10 reader, on tiny synthetic data.

A local HTTP server on 127.0.0.1 stands in for the CIFAR-10 mirror; nothing leaves the machine.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import socket
import tarfile
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from vqkit.data import cifar10
from vqkit.data.cifar10 import (
    ARCHIVE_NAME,
    BATCHES_DIR,
    CIFAR10_FILES,
    download_cifar10,
    load_cifar10,
    read_batch,
    verify_cifar10_dir,
)
from vqkit.data.download import download_url, extract_tar_safely
from vqkit.errors import DataError

N = 10  # images per fake batch
LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck"]


# ------------------------------------------------------------------------------------------
# Fake CIFAR-10


def batch_dict(seed: int, *, keys: str = "bytes", n: int = N) -> dict:
    """A batch like the official Python-2 pickles (bytes keys) or a Python-3 one (str keys)."""
    rng = np.random.default_rng(seed)
    d = {
        "data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        "labels": [int(x) for x in rng.integers(0, 10, size=n)],
        "batch_label": f"batch {seed}",
        "filenames": [f"img_{seed}_{i}.png" for i in range(n)],
    }
    if keys == "bytes":
        d = {k.encode(): v for k, v in d.items()}
        d[b"batch_label"] = d[b"batch_label"].encode()
        d[b"filenames"] = [f.encode() for f in d[b"filenames"]]
    return d


def write_pickle(path: Path, obj, protocol: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def make_cifar_dir(folder: Path, files=CIFAR10_FILES, keys: str = "bytes") -> Path:
    for i, name in enumerate(files):
        if name == "batches.meta":
            write_pickle(folder / name, {b"label_names": [n.encode() for n in LABEL_NAMES],
                                         b"num_cases_per_batch": N, b"num_vis": 3072})
        else:
            write_pickle(folder / name, batch_dict(i, keys=keys))
    return folder


def make_cifar_archive(path: Path, files=CIFAR10_FILES) -> Path:
    src = make_cifar_dir(path.parent / f".src-{path.name}" / BATCHES_DIR, files)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(src, arcname=BATCHES_DIR)
    return path


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes]], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# ------------------------------------------------------------------------------------------
# Local HTTP server


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    # urllib honours *_proxy variables; the local server must be reached directly.
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")


@pytest.fixture
def server():
    """Serves ``files`` (path -> bytes); ``hits`` counts GETs; ``/short/...`` paths claim
    twice their real length and then hang up."""
    files: dict[str, bytes] = {}
    hits: Counter[str] = Counter()

    class Handler(BaseHTTPRequestHandler):
        timeout = 5  # a stuck client cannot hold the server thread forever

        def do_GET(self):  # noqa: N802
            hits[self.path] += 1
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            claimed = 2 * len(body) if self.path.startswith("/short/") else len(body)
            self.send_header("Content-Length", str(claimed))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_address[1]}",
                              files=files, hits=hits)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def serve_archive(server, tmp_path: Path, files=CIFAR10_FILES) -> tuple[str, str, Path]:
    archive = make_cifar_archive(tmp_path / "src" / ARCHIVE_NAME, files)
    body = archive.read_bytes()
    server.files["/" + ARCHIVE_NAME] = body
    return f"{server.url}/{ARCHIVE_NAME}", hashlib.md5(body).hexdigest(), archive


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------
# download_url / download_cifar10


def test_download_cifar10_end_to_end(server, tmp_path, monkeypatch):
    url, md5, _ = serve_archive(server, tmp_path)
    cache = tmp_path / "cache"
    monkeypatch.setenv("VQKIT_DATA", str(cache))

    folder = download_cifar10(cache, url=url, md5=md5)

    assert folder == cache / BATCHES_DIR
    assert listing(cache) == {ARCHIVE_NAME, BATCHES_DIR,
                              *(f"{BATCHES_DIR}/{f}" for f in CIFAR10_FILES)}
    images, labels = load_cifar10(folder, "val")
    expected = batch_dict(CIFAR10_FILES.index("data_batch_5"))
    assert images.shape == (N, 3, 32, 32) and str(images.dtype) == "torch.uint8"
    np.testing.assert_array_equal(images.numpy().reshape(N, -1), expected[b"data"])
    np.testing.assert_array_equal(labels.numpy(), expected[b"labels"])
    # With no --data the cache is used, without touching the network.
    cached_images, _ = load_cifar10(None, "val")
    assert (cached_images == images).all()
    assert server.hits["/" + ARCHIVE_NAME] == 1


def test_existing_verified_download_is_reused(server, tmp_path):
    url, md5, _ = serve_archive(server, tmp_path)
    cache = tmp_path / "cache"
    download_cifar10(cache, url=url, md5=md5)
    download_cifar10(cache, url=url, md5=md5)  # folder verified: nothing fetched
    (cache / BATCHES_DIR / "data_batch_3").unlink()
    download_cifar10(cache, url=url, md5=md5)  # archive md5 ok: re-extracted, not fetched
    assert (cache / BATCHES_DIR / "data_batch_3").is_file()
    assert server.hits["/" + ARCHIVE_NAME] == 1

    dest = tmp_path / "plain" / "file.bin"
    assert download_url(url, dest, md5=md5, progress=False) == dest
    assert download_url(url, dest, md5=md5, progress=False) == dest
    assert server.hits["/" + ARCHIVE_NAME] == 2
    dest.write_bytes(b"stale")  # wrong md5: fetched again and replaced
    download_url(url, dest, md5=md5, progress=False)
    assert server.hits["/" + ARCHIVE_NAME] == 3
    assert hashlib.md5(dest.read_bytes()).hexdigest() == md5


def test_wrong_md5_raises_and_leaves_nothing(server, tmp_path):
    url, md5, _ = serve_archive(server, tmp_path)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=f"expected {'0' * 32}, got {md5}") as err:
        download_cifar10(cache, url=url, md5="0" * 32)
    assert url in str(err.value)
    assert listing(cache) == set()


def test_short_transfer_and_http_error(server, tmp_path):
    server.files["/short/x.bin"] = b"abc" * 100
    with pytest.raises(DataError, match="300 of 600 bytes"):
        download_url(f"{server.url}/short/x.bin", tmp_path / "x.bin", md5=None, progress=False)
    with pytest.raises(DataError, match=re.escape(f"{server.url}/missing") + ".*404"):
        download_url(f"{server.url}/missing", tmp_path / "y.bin", md5=None, progress=False)
    assert listing(tmp_path) == set()


def test_unreachable_url_says_offline_and_data(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/{ARCHIVE_NAME}"
    with pytest.raises(DataError, match="offline.*--data PATH") as err:
        download_cifar10(tmp_path / "cache", url=url)
    assert url in str(err.value) and "\n" not in str(err.value)
    assert listing(tmp_path / "cache") == set()


def test_archive_that_is_not_cifar_is_not_installed(server, tmp_path):
    files = [f for f in CIFAR10_FILES if f != "test_batch"]
    url, md5, _ = serve_archive(server, tmp_path, files)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="test_batch"):
        download_cifar10(cache, url=url, md5=md5)
    assert listing(cache) == {ARCHIVE_NAME}  # verified download kept, no batches folder


# ------------------------------------------------------------------------------------------
# extract_tar_safely


@pytest.mark.parametrize("bad", ["dotdot", "absolute", "symlink", "hardlink", "fifo", "device"])
def test_unsafe_member_is_refused(tmp_path, bad):
    outside = tmp_path / "outside"
    name = {"dotdot": "../evil", "absolute": str(tmp_path / "abs_evil")}.get(
        bad, f"{BATCHES_DIR}/evil")
    kind = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE,
            "device": tarfile.CHRTYPE}.get(bad, tarfile.REGTYPE)
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(tar_bytes([
        (member(f"{BATCHES_DIR}/batches.meta"), b"fine"),  # a good member first
        (member(name, kind, linkname=str(outside)), b"evil"),
        (member(f"{BATCHES_DIR}/evil/payload"), b"evil"),  # would go through a link
    ]))
    with tarfile.open(archive) as tar:
        assert name in tar.getnames()  # the archive really holds that name
    before = listing(tmp_path)

    with pytest.raises(DataError, match=re.escape(str(archive)) + ".*" + re.escape(repr(name))):
        extract_tar_safely(archive, tmp_path / "dest" / "out")

    assert listing(tmp_path) == before | {"dest"}  # only the parent of dest was created
    assert listing(tmp_path / "dest") == set()


def test_extract_is_atomic_and_merges_into_existing_folder(tmp_path):
    archive = tmp_path / "ok.tar"
    archive.write_bytes(tar_bytes([(member("./a/", tarfile.DIRTYPE), b""), (member("a/x"), b"new"),
                                   (member("b"), b"bee")], mode="w"))
    archive.chmod(0o644)
    extract_tar_safely(archive, tmp_path / "fresh")
    assert (tmp_path / "fresh" / "a" / "x").read_bytes() == b"new"

    dest = tmp_path / "existing"
    (dest / "a").mkdir(parents=True)
    (dest / "a" / "old").write_bytes(b"old")
    (dest / "keep").write_bytes(b"keep")
    extract_tar_safely(archive, dest)
    assert listing(dest) == {"a", "a/x", "b", "keep"}  # a/ replaced as a whole, keep kept


@pytest.mark.parametrize("damage", ["truncated_gz", "truncated_tar", "garbage", "empty"])
def test_corrupt_archive_raises_naming_it(tmp_path, damage):
    good = make_cifar_archive(tmp_path / "good" / ARCHIVE_NAME)
    if damage == "truncated_tar":
        with tarfile.open(good) as src, tarfile.open(tmp_path / "plain.tar", "w") as dst:
            for m in src.getmembers():
                dst.addfile(m, src.extractfile(m) if m.isreg() else None)
        body = (tmp_path / "plain.tar").read_bytes()
        body = body[: len(body) // 2]
    else:
        body = {"truncated_gz": good.read_bytes()[: good.stat().st_size // 2],
                "garbage": os.urandom(4096), "empty": b""}[damage]
    archive = tmp_path / f"{damage}.tar.gz"
    archive.write_bytes(body)
    with pytest.raises(DataError, match=re.escape(str(archive))):
        extract_tar_safely(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders


# ------------------------------------------------------------------------------------------
# vqkit.data.cifar10


def test_load_cifar10_accepts_the_three_data_forms(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("VQKIT_DATA", str(cache))
    parent = tmp_path / "data"
    make_cifar_dir(parent / BATCHES_DIR)
    archive = make_cifar_archive(tmp_path / "arch" / ARCHIVE_NAME)

    reference = load_cifar10(parent, "train")
    for root in (parent / BATCHES_DIR, archive, archive.parent, str(archive)):
        images, labels = load_cifar10(root, "train")
        assert images.shape == (4 * N, 3, 32, 32)
        assert (images == reference[0]).all() and (labels == reference[1]).all()
    extracted = [p.name for p in cache.iterdir()]
    assert len(extracted) == 1 and extracted[0].startswith("extracted-")  # extracted once


def test_test_only_folder(tmp_path):
    folder = make_cifar_dir(tmp_path / "only", files=["test_batch", "batches.meta"])
    images, labels = load_cifar10(folder, "test")
    assert images.shape == (N, 3, 32, 32) and labels.shape == (N,)
    with pytest.raises(DataError, match=re.escape(str(folder / "data_batch_5")) + ".*'val'"):
        load_cifar10(folder, "val")
    with pytest.raises(DataError, match="unknown split"):
        load_cifar10(folder, "validation")


def test_folder_without_cifar_says_what_it_expected(tmp_path):
    with pytest.raises(DataError, match="no CIFAR-10 here"):
        load_cifar10(tmp_path, "val")
    with pytest.raises(DataError, match="no such file"):
        load_cifar10(tmp_path / "nope", "val")


@pytest.mark.parametrize("keep", [0.0, 0.001, 0.3, 0.5, 0.999])
def test_truncated_pickle_names_the_file(tmp_path, keep):
    path = write_pickle(tmp_path / "data_batch_1", batch_dict(0))
    body = path.read_bytes()
    path.write_bytes(body[: int(len(body) * keep)])
    with pytest.raises(DataError, match=re.escape(str(path))):
        read_batch(path)


class _Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


@pytest.mark.parametrize("how", ["os.system", "builtins.exec"])
def test_malicious_pickle_is_refused_without_running(tmp_path, how):
    marker = tmp_path / "pwned"
    evil = (_Evil(os.system, f"touch '{marker}'") if how == "os.system"
            else _Evil(exec, f"open({str(marker)!r}, 'w').close()"))
    path = write_pickle(tmp_path / "data_batch_1", {b"data": evil, b"labels": [0]})
    with pytest.raises(DataError, match=re.escape(str(path)) + ".*refusing"):
        read_batch(path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_bytes_and_str_keys_read_identically(tmp_path, protocol):
    a = read_batch(write_pickle(tmp_path / "b", batch_dict(3, keys="bytes"), protocol))
    b = read_batch(write_pickle(tmp_path / "s", batch_dict(3, keys="str"), protocol))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[0].shape == (N, 3, 32, 32) and a[0].dtype == np.uint8 and a[1].dtype == np.int64
    # Channel-major planes: pixel (c, y, x) is data[:, c * 1024 + y * 32 + x].
    np.testing.assert_array_equal(a[0][:, 1, 2, 3], batch_dict(3)[b"data"][:, 1024 + 2 * 32 + 3])


@pytest.mark.parametrize("data, labels, message", [
    (np.zeros((N, 3000), np.uint8), [0] * N, r"\(N, 3072\)"),
    (np.zeros((N, 3072), np.int64), [0] * N, r"uint8"),
    (np.zeros(3072, np.uint8), [0], r"\(N, 3072\)"),
    (np.zeros((N, 3072), np.uint8), [0] * (N - 1), r"labels"),
    (np.zeros((N, 3072), np.uint8), ["cat"] * N, r"'labels' must be integers"),
])
def test_malformed_batch_gives_data_error(tmp_path, data, labels, message):
    path = write_pickle(tmp_path / "data_batch_1", {b"data": data, b"labels": labels})
    with pytest.raises(DataError, match=re.escape(str(path)) + ".*" + message):
        read_batch(path)


def test_verify_cifar10_dir(tmp_path):
    folder = make_cifar_dir(tmp_path / BATCHES_DIR)
    verify_cifar10_dir(folder)
    (folder / "test_batch").unlink()
    verify_cifar10_dir(folder, files=[f for f in CIFAR10_FILES if f != "test_batch"])
    with pytest.raises(DataError, match="test_batch"):
        verify_cifar10_dir(folder)
    bad = batch_dict(0)
    bad[b"labels"][0] = 10
    write_pickle(folder / "data_batch_2", bad)
    with pytest.raises(DataError, match=r"data_batch_2.*\[0, 10\)"):
        verify_cifar10_dir(folder, files=["data_batch_2"])
    write_pickle(folder / "batches.meta", {"label_names": LABEL_NAMES[:9]})
    with pytest.raises(DataError, match="batches.meta: 9 label names"):
        verify_cifar10_dir(folder, files=["batches.meta"])
    make_cifar_dir(folder, files=["batches.meta"])
    assert cifar10.read_label_names(folder / "batches.meta") == LABEL_NAMES
