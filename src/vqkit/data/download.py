"""Download cache, checksum-verified downloads and safe archive extraction (any dataset).

Nothing here leaves a half-written file or folder where a reader looks: downloads stream into
a hidden temp file beside their destination and extraction goes into a hidden temp folder,
and only a complete, verified result is renamed into place.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import lzma
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

from tqdm import tqdm  # text bars (tqdm.auto needs ipywidgets in notebooks)

from vqkit.errors import DataError

__all__ = [
    "cache_dir",
    "download_url",
    "extract_tar_safely",
    "file_md5",
    "replace_path",
]


_CHUNK = 1 << 20  # bytes per read while streaming and hashing
_DATA_HINT = "download the file yourself and pass --data PATH"  # unless the caller gives one


def cache_dir() -> Path:
    """``$VQKIT_DATA`` or ``~/.cache/vqkit``."""
    return Path(os.environ.get("VQKIT_DATA") or Path.home() / ".cache" / "vqkit").expanduser()


def file_md5(path: str | Path) -> str:
    """Hex md5 of a file, read in chunks."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------
# Downloads


def download_url(
    url: str,
    dest: str | Path,
    *,
    md5: str | None,
    timeout_s: float = 60,
    progress: bool = True,
    hint: str = _DATA_HINT,
) -> Path:
    """Download ``url`` to ``dest`` and check its md5, never leaving a partial ``dest``.

    Parameters
    ----------
    url : str
        What to fetch (``http(s)://`` or anything ``urllib`` opens).
    dest : path
        Where the file ends up; its folder is created. The data streams into a hidden temp
        file beside it, which is renamed to ``dest`` only once complete and verified.
    md5 : str or None
        Expected hex md5 of the file. None skips the check (a short read against the
        server's Content-Length is still caught).
    timeout_s : float > 0
        Socket timeout in seconds, per blocking operation (connect, each read).
    progress : bool
        Show a tqdm progress bar on stderr (only when the server sends Content-Length).
    hint : str
        What the user can do instead, appended to network errors.

    Returns
    -------
    Path
        ``dest``. An existing ``dest`` whose md5 matches (any existing ``dest`` when ``md5``
        is None) is returned without downloading.

    Raises
    ------
    DataError
        Network failure (offline, refused, timeout, HTTP error, cut-off transfer) or a
        checksum mismatch; the temp file is removed in every case.
    """
    dest = Path(dest).expanduser()
    if dest.is_file() and (md5 is None or file_md5(dest) == md5.lower()):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            got = _stream_to(url, out, dest, timeout_s=timeout_s, progress=progress, hint=hint)
            out.flush()
            os.fsync(out.fileno())
        if md5 is not None and got != md5.lower():
            raise DataError(
                f"{url}: md5 mismatch (expected {md5.lower()}, got {got}); the download is "
                "corrupt or the file on the server changed")
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _stream_to(url: str, out, dest: Path, *, timeout_s: float, progress: bool,
               hint: str) -> str:
    """Copy the body of ``url`` into the open file ``out``; return its hex md5."""
    h = hashlib.md5(usedforsecurity=False)
    n_bytes, total = 0, None
    request = urllib.request.Request(url, headers={"User-Agent": "vqkit"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.strip().isdigit() else None
            with _progress_bar(total, dest.name, enabled=progress and bool(total)) as bar:
                while chunk := response.read(_CHUNK):
                    h.update(chunk)
                    out.write(chunk)
                    n_bytes += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        raise DataError(
            f"cannot download {url} (HTTP {e.code} {e.reason}); {hint}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError,
            http.client.HTTPException) as e:
        raise DataError(
            f"cannot download {url} ({_reason(e)}); you appear to be offline — "
            f"{hint}") from None
    except OSError as e:  # writing the temp file: disk full, permissions
        raise DataError(f"{dest}: cannot write the download ({e.strerror or e})") from None
    # urllib returns a short body silently when the connection drops early.
    if total is not None and n_bytes != total:
        raise DataError(
            f"cannot download {url} (connection closed after {n_bytes} of {total} bytes); "
            f"you appear to be offline — {hint}")
    return h.hexdigest()


def _reason(e: BaseException) -> str:
    reason = getattr(e, "reason", None) or e
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _progress_bar(total: int | None, desc: str, *, enabled: bool):
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                disable=not enabled, leave=False)


# ------------------------------------------------------------------------------------------
# Extraction


def extract_tar_safely(archive: str | Path, dest: str | Path) -> None:
    """Extract a (possibly compressed) tar archive into ``dest``, refusing anything unsafe.

    Only regular files and folders are extracted, and only at relative paths without
    ``..``; an absolute path, a ``..`` component, a symlink or hard link, a device or a FIFO
    anywhere in the archive is refused before it is written. Members are written by this
    function (no ``tarfile.extractall``), so the behaviour does not depend on the Python
    patch version's extraction filters; owners, permissions and times are not restored.

    Everything is unpacked into a hidden temp folder first. When ``dest`` does not exist the
    temp folder is renamed to ``dest`` (atomic); when it is an existing folder, each
    top-level entry is moved in by rename, replacing an entry of the same name. A failed or
    interrupted extraction never leaves a partial ``dest`` or entry.

    Parameters
    ----------
    archive : path
        A ``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2`` or ``.tar.xz`` file.
    dest : path
        The folder to extract into.

    Raises
    ------
    DataError
        Naming the archive (and the member, for an unsafe member) when the archive is
        unsafe, truncated or corrupt, or cannot be written out.
    """
    archive, dest = Path(archive).expanduser(), Path(dest).expanduser()
    if dest.exists() and not dest.is_dir():
        raise DataError(f"{dest}: exists and is not a folder; cannot extract {archive} there")
    if not archive.is_file():
        raise DataError(f"{archive}: no such archive")
    merge = dest.is_dir()
    staging_parent = dest if merge else dest.parent
    staging_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=staging_parent, prefix=f".{dest.name}.", suffix=".tmp"))
    try:
        _extract_members(archive, staging)
        if merge:
            for entry in staging.iterdir():
                replace_path(entry, dest / entry.name)
            staging.rmdir()
        else:
            os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _extract_members(archive: Path, into: Path) -> None:
    """One pass over the archive: check each member, then write it under ``into``."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:  # reads headers lazily: one decompression pass in total
                parts = _safe_parts(archive, member)
                if not parts:  # "." or "./": the root itself
                    continue
                target = into.joinpath(*parts)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                if src is None:  # only for non-regular members, which were refused above
                    raise DataError(f"{archive}: cannot read member {member.name!r}")
                with src, open(target, "wb") as f:
                    shutil.copyfileobj(src, f, _CHUNK)
    except DataError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError,
            ValueError) as e:
        # Truncated or corrupt: ReadError, "Compressed file ended before the end-of-stream
        # marker" (EOFError), bad deflate data (zlib.error, BadGzipFile), bad xz data.
        raise DataError(f"{archive}: not a readable tar archive, truncated or corrupt ({e})") \
            from None
    except OSError as e:  # bad bz2 data, or writing: disk full, permissions
        where = f": {e.filename}" if e.filename else ""
        raise DataError(f"{archive}: cannot extract ({e.strerror or e}{where})") from None


def _safe_parts(archive: Path, member: tarfile.TarInfo) -> tuple[str, ...]:
    """The path components of a member that is safe to extract; DataError otherwise."""
    name = member.name
    if not (member.isreg() or member.isdir()):
        raise DataError(
            f"{archive}: refusing member {name!r}: it is a {_kind(member)}, and only regular "
            "files and folders are extracted")
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if name.startswith(("/", "\\")) or posix.is_absolute() or windows.drive or windows.root:
        raise DataError(f"{archive}: refusing member {name!r}: absolute path")
    if ".." in posix.parts or ".." in windows.parts:
        raise DataError(f"{archive}: refusing member {name!r}: path goes outside the folder ('..')")
    if "\x00" in name:
        raise DataError(f"{archive}: refusing member {name!r}: NUL byte in name")
    return tuple(p for p in posix.parts if p not in ("", "."))


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return f"symbolic link (to {member.linkname!r})"
    if member.islnk():
        return f"hard link (to {member.linkname!r})"
    if member.ischr() or member.isblk():
        return "device file"
    if member.isfifo():
        return "FIFO"
    return f"special member (tar type {member.type!r})"


def replace_path(src: Path, target: Path) -> None:
    """Rename ``src`` onto ``target``; a folder at ``target`` is swapped out, then deleted."""
    if target.is_dir() and not target.is_symlink():
        trash = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old"))
        os.replace(target, trash / target.name)
        try:
            os.replace(src, target)
        except BaseException:
            os.replace(trash / target.name, target)  # put the old one back
            raise
        finally:
            shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(src, target)
