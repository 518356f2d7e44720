"""The one safe-path rule for names vqkit did not choose.

Every name that comes from outside (an archive member, a speaker folder, a name stored in a
code file, a path in a manifest) becomes a file path only through :func:`safe_name` (one path
component) or :func:`resolve_inside` (a relative path), which refuse, with one line naming where
the name came from, anything that would land outside the folder it is meant for.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath, PureWindowsPath

from vqkit.errors import DataError

__all__ = ["UnsafePath", "resolve_inside", "safe_name"]


class UnsafePath(DataError):
    """A name from outside would be written, read or deleted outside its folder."""


def _problem(name: str) -> str | None:
    if not name:
        return "empty"
    if "\x00" in name:
        return "holds a NUL byte"
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if name.startswith(("/", "\\")) or posix.is_absolute() or windows.drive or windows.root:
        return "is an absolute path"
    if ".." in posix.parts or ".." in windows.parts:
        return "goes up a folder ('..')"
    return None


def safe_name(name: str, *, what: str, source: str | Path) -> str:
    """``name`` unchanged if it is a single, ordinary path component (no separator, not ``.`` or
    ``..``, not empty, no NUL); else :class:`UnsafePath`.

    Parameters
    ----------
    what : str
        What the name is, for the message, e.g. "speaker folder", "item name".
    source : str or Path
        Where it came from (a file, ``zip!member``), for the message.
    """
    problem = _problem(name)
    if problem is None and ("/" in name or "\\" in name):
        problem = "holds a path separator"
    if problem is None and name in (".", ".."):
        problem = "is not a name"
    if problem:
        raise UnsafePath(f"{source}: refusing {what} {name!r}: it {problem}")
    return name


def resolve_inside(base: str | Path, rel: str, *, what: str, source: str | Path,
                   links: bool = True) -> Path:
    """``base / rel`` for a relative, ``/``-separated path from outside (no absolute path, no
    ``..``), provided it stays inside ``base``; else :class:`UnsafePath`.

    ``links`` (for anything vqkit writes or deletes): also once symbolic links are followed.
    Pass False for a file that is only read, where a link the user made inside their own data
    folder is theirs to make.
    """
    problem = _problem(rel)
    if problem:
        raise UnsafePath(f"{source}: refusing {what} {rel!r}: it {problem}")
    base = Path(base)
    target = base / rel
    if not links:
        return target
    real_base = os.path.realpath(base)
    real = os.path.realpath(target)
    if os.path.commonpath([real_base, real]) != real_base:
        raise UnsafePath(f"{source}: refusing {what} {rel!r}: it resolves outside {base} "
                         f"(through a symbolic link)")
    return target


def writable_folder(folder: Path) -> bool:
    """Whether vqkit may write into ``folder``: it exists, is not marked read-only (respected
    even where we could write anyway, as root) and is writable."""
    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        return False
    return os.access(folder, os.W_OK)
