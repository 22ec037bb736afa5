"""Folders as one download: zip (stored or deflated), tar or tar.gz, streamed as they are made.

Nothing is written to disk and memory stays flat: members are read in chunks while the archive is
sent. A stored zip and a tar know their size before the first byte (zipstream-ng computes it for
zip), so they get a Content-Length, a strong ETag and Range support. Their bytes depend only on the
members' names, sizes, times, modes and contents, so a Range request — a resumed download, or one
segment of a parallel one — gets exactly the bytes the full download had there. A zip is made
again up to the first byte asked for (its checksums need the data); a tar seeks straight there.
Compressed archives (--compress, tar.gz) have neither size nor ranges.

Everything here blocks (file reads): app.py runs `chunks()` in a thread.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import zipstream  # type: ignore[import-untyped]

from comptoir.http.files import http_date
from comptoir.sites.share import ArchiveFormat
from comptoir.sites.share.items import Member

EXTENSIONS: dict[str, str] = {"zip": ".zip", "tar": ".tar", "tar.gz": ".tar.gz"}
CONTENT_TYPES: dict[str, str] = {
    "zip": "application/zip",
    "tar": "application/x-tar",
    "tar.gz": "application/gzip",
}
# Size of the reads from member files (and of the pieces `chunks` yields for a tar).
READ_CHUNK = 256 * 1024
# While skipping to a Range's start, hand control back this often so a cut request stops soon.
SKIP_STEP = 16 * 1024 * 1024
_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE


class ArchiveChanged(Exception):
    """A member changed while the archive was being made: the stream cannot stay consistent."""


@dataclass
class Archive:
    """One archive of some members, ready to stream once."""

    format: ArchiveFormat
    members: list[Member]
    compress: bool = False
    # Known up front for stored zips and tars: Content-Length, ETag and ranges need it.
    size: int | None = None
    _zip: zipstream.ZipStream | None = field(default=None, repr=False)

    @property
    def content_type(self) -> str:
        """The media type of the archive."""
        return CONTENT_TYPES[self.format]

    @property
    def etag(self) -> str | None:
        """A strong ETag from the members' names, sizes, times and modes (None if compressed)."""
        if self.size is None:
            return None
        digest = hashlib.sha256(self.format.encode())
        for m in self.members:
            digest.update(b"\0" + os.fsencode(m.arcname))
            digest.update(f"\0{m.size}\0{m.mtime_ns}\0{m.mode}".encode())
        return f'"{self.format}-{digest.hexdigest()[:32]}"'

    @property
    def mtime(self) -> int:
        """The latest modification time of a member, in whole seconds."""
        return max((m.mtime_ns for m in self.members), default=0) // 1_000_000_000

    @property
    def last_modified(self) -> str:
        """Last-Modified of the archive: its newest member's."""
        return http_date(self.mtime)

    def chunks(self, start: int = 0) -> Iterator[bytes]:
        """The archive's bytes from offset `start` (0 when compressed); b"" pieces mark progress.

        Raises ArchiveChanged (or OSError) when a member changes or vanishes meanwhile.
        """
        if self.format == "zip":
            assert self._zip is not None
            return _skip(_zip_chunks(self._zip), start)
        if self.format == "tar":
            return _tar_chunks(self.members, start)
        return _gzip(_tar_chunks(self.members, 0))


def make_archive(fmt: ArchiveFormat, members: list[Member], *, compress: bool = False) -> Archive:
    """An archive of `members` (stats every file for zip: run it in a thread)."""
    if fmt == "zip":
        zs = _zipstream(members, compress)
        size = None if compress else len(zs)
        return Archive(fmt, members, compress, size, zs)
    size = None if fmt == "tar.gz" else tar_size(members)
    return Archive(fmt, members, fmt == "tar.gz", size)


# -- zip --------------------------------------------------------------------------------------


def _zip_name(arcname: str) -> str:
    # Zip names are UTF-8 (zipstream-ng sets the flag): undecodable bytes can only be shown.
    return os.fsencode(arcname).decode("utf-8", "replace")


def _zipstream(members: list[Member], compress: bool) -> zipstream.ZipStream:
    if compress:
        zs = zipstream.ZipStream(compress_type=zipstream.ZIP_DEFLATED)
    else:
        zs = zipstream.ZipStream(compress_type=zipstream.ZIP_STORED, sized=True)
    for m in members:
        try:
            zs.add_path(m.path, _zip_name(m.arcname), recurse=False)
        except OSError as exc:
            raise ArchiveChanged(str(exc)) from None
    return zs


def _zip_chunks(zs: zipstream.ZipStream) -> Iterator[bytes]:
    try:
        yield from zs
    except RuntimeError as exc:
        # zipstream-ng's sized streams refuse a member whose size changed meanwhile.
        raise ArchiveChanged(str(exc)) from None


def _skip(chunks: Iterator[bytes], start: int) -> Iterator[bytes]:
    """The bytes of `chunks` from offset `start` on (made, then dropped, up to there)."""
    skipped_since_mark = 0
    for chunk in chunks:
        if start <= 0:
            yield chunk
            continue
        if len(chunk) <= start:
            start -= len(chunk)
            skipped_since_mark += len(chunk)
            if skipped_since_mark >= SKIP_STEP:
                skipped_since_mark = 0
                yield b""
            continue
        yield chunk[start:]
        start = 0


# -- tar --------------------------------------------------------------------------------------


def _tar_header(m: Member) -> bytes:
    info = tarfile.TarInfo(m.arcname.rstrip("/"))
    info.type = tarfile.DIRTYPE if m.is_dir else tarfile.REGTYPE
    info.size = 0 if m.is_dir else m.size
    info.mtime = m.mtime_ns // 1_000_000_000
    info.mode = m.mode & 0o7777
    # No owner names or ids: they would only leak this machine's accounts.
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    # PAX keeps long and non-UTF-8 names exactly (raw bytes with hdrcharset=BINARY).
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _padding(size: int) -> int:
    return -size % _BLOCK


def tar_size(members: list[Member]) -> int:
    """The exact size of the tar of `members`: headers, data padded to blocks, end, record."""
    total = 0
    for m in members:
        total += len(_tar_header(m)) + m.size + _padding(m.size)
    total += 2 * _BLOCK
    return total + (-total % _RECORD)


def _tar_chunks(members: list[Member], start: int) -> Iterator[bytes]:
    """The tar's bytes from `start`: members before it are passed over without being read."""
    pos = 0  # offset of the next piece in the archive

    def piece(data: bytes) -> bytes:
        # The part of a piece at [pos, pos + len) that lies at or after `start`.
        return data[max(0, start - pos) :] if pos + len(data) > start else b""

    for m in members:
        header = _tar_header(m)
        if out := piece(header):
            yield out
        pos += len(header)
        if m.size:
            if pos + m.size > start:
                yield from _file_data(m, max(0, start - pos))
            pos += m.size
            pad = bytes(_padding(m.size))
            if pad and (out := piece(pad)):
                yield out
            pos += len(pad)
    end = 2 * _BLOCK
    end += -(pos + end) % _RECORD
    if out := piece(bytes(end)):
        yield out


def _file_data(m: Member, offset: int) -> Iterator[bytes]:
    """Bytes offset..size of a member file; exactly its recorded size or ArchiveChanged."""
    with open(m.path, "rb") as f:
        if os.fstat(f.fileno()).st_size != m.size:
            raise ArchiveChanged(f"{m.arcname} changed size")
        f.seek(offset)
        left = m.size - offset
        while left > 0:
            data = f.read(min(READ_CHUNK, left))
            if not data:
                raise ArchiveChanged(f"{m.arcname} shrank")
            left -= len(data)
            yield data


def _gzip(chunks: Iterator[bytes]) -> Iterator[bytes]:
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    for chunk in chunks:
        if out := comp.compress(chunk):
            yield out
    yield comp.flush()
