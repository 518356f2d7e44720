"""Where a corpus's files live: a folder, or a zip (possibly stored inside another zip, read
in place without extracting). Member names are "/"-separated paths inside the container."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

__all__ = ["DirContainer", "ZipContainer", "ZipSlice", "open_inner_zip"]


class DirContainer:
    def __init__(self, root: Path):
        self.root: Path = root  # member names are paths relative to it
        self.label = str(root)

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def describe(self, name: str) -> str:
        return str(self.root / name)

    def close(self) -> None:
        pass


class ZipContainer:
    def __init__(self, zf: zipfile.ZipFile, label: str, owned: list):
        self.zf = zf
        self.label = label
        self._owned = owned  # file objects to close with this zip
        self.root: Path | None = None  # members are not files on disk

    def read(self, name: str) -> bytes:
        return self.zf.read(name)

    def describe(self, name: str) -> str:
        return f"{self.label}!{name}"

    def close(self) -> None:
        self.zf.close()
        for f in self._owned:
            f.close()


class ZipSlice(io.RawIOBase):
    """A read-only window ``[offset, offset + size)`` of a file: a stored member of a zip."""

    def __init__(self, path: Path, offset: int, size: int):
        self._f = open(path, "rb")  # noqa: SIM115 (closed by close())
        self._offset, self._size, self._pos = offset, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def readinto(self, b) -> int:  # noqa: ANN001
        n = max(0, min(len(b), self._size - self._pos))
        if n == 0:
            return 0
        self._f.seek(self._offset + self._pos)
        data = self._f.read(n)
        b[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        self._f.close()
        super().close()


def open_inner_zip(outer: zipfile.ZipFile, outer_path: Path, info: zipfile.ZipInfo):
    """Open a zip stored inside ``outer`` without extracting it; returns (ZipFile, file object).

    A stored (uncompressed) member, as speaker zips in the release are, is read through a
    window on the outer file (random access); a compressed one through ``ZipFile.open``,
    which is seekable but rewinds on backward seeks.
    """
    if info.compress_type == zipfile.ZIP_STORED:
        with open(outer_path, "rb") as f:
            f.seek(info.header_offset)
            header = f.read(30)
        if len(header) == 30 and header[:4] == b"PK\x03\x04":
            name_len, extra_len = struct.unpack("<HH", header[26:30])
            fobj = ZipSlice(outer_path, info.header_offset + 30 + name_len + extra_len,
                          info.file_size)
            return zipfile.ZipFile(fobj), fobj
    fobj = outer.open(info)
    return zipfile.ZipFile(fobj), fobj
