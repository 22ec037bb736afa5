"""Reading an upload's request body: raw (PUT, `curl -T`) or multipart/form-data (`curl -F`, the
page's form), chunk by chunk into an `Upload` (upload.py writes it to disk).

Nothing is buffered: each ASGI `http.request` chunk goes to the current file as it arrives (a
multipart body through python-multipart's streaming parser, whose callbacks hand us slices of the
same chunk). Only what follows a new file's headers in a chunk is kept until the chunk is parsed:
the file is opened then, as its folders are made in a thread, which a callback cannot wait for.
A client that leaves midway is `ClientGone`; a body refused midway (a limit passed) is read a
little further and dropped (`TrackedBody.drain`) so that the client reads the answer; a body that
stalls is `BodyTimeout` (408, from the request's `receive`: clientlimits.py), with nothing drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Sequence
from urllib.parse import unquote_to_bytes

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartState, parse_options_header

from comptoir.errors import BodyTimeout, ClientGone, HTTPError
from comptoir.sites.receive.upload import PartFile, Upload
from comptoir.types import Message, Receive

# Bytes of multipart framing (boundaries, part headers) tolerated beyond --max-total when a
# request's Content-Length is checked before its body is read.
MULTIPART_OVERHEAD = 64 * 1024

# What is read and dropped of a refused body, at most, before the answer goes out.
DRAIN_BYTES = 16 * 1024 * 1024
DRAIN_SECONDS = 2.0


class TrackedBody:
    """A request's `receive`, remembering whether its body has begun and ended."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.started = False
        self.ended = False

    async def receive(self) -> Message:
        """The next ASGI message, noting where the body is."""
        try:
            message = await self._receive()
        except BodyTimeout:
            # The body stalled (--body-timeout): nothing more is read of it, nothing drained.
            self.started = self.ended = True
            raise
        self.started = True
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.ended = True
        return message

    async def drain(self) -> None:
        """Read and drop the rest of the body: at most DRAIN_BYTES, for DRAIN_SECONDS."""
        dropped = 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_SECONDS):
                while not self.ended and dropped <= DRAIN_BYTES:
                    message = await self.receive()
                    dropped += len(message.get("body", b""))


async def body_chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The request body, chunk by chunk as the server hands it over; ClientGone on disconnect."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def receive_put(
    receive: Receive, upload: Upload, path: Sequence[str], content_length: int | None
) -> None:
    """Stream a raw request body (PUT, `curl -T`) into one file at `path` (components)."""
    await upload.open(path, "/".join(path))
    async for chunk in body_chunks(receive):
        upload.write(chunk)
    if content_length is not None and upload.total != content_length:
        # A body shorter than announced: the client stopped sending before the end.
        raise ClientGone


def multipart_boundary(content_type: str) -> bytes:
    """The boundary of a `multipart/form-data` body; 415 or 400 for anything else."""
    ctype, params = parse_options_header(content_type)
    if ctype != b"multipart/form-data":
        raise HTTPError(
            415, "Send files as multipart/form-data (curl -F file=@name) or PUT them (curl -T)"
        )
    boundary = params.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise HTTPError(400, "Malformed multipart/form-data: no boundary")
    return boundary


# `filename*=charset'lang'percent-encoded` (RFC 8187), which python-multipart does not read.
_FILENAME_STAR = re.compile(rb"""(?:^|;)\s*filename\*\s*=\s*"?([^;"]*)"?""", re.IGNORECASE)
# What browsers and curl (7.81+) escape in a multipart file name (the HTML form encoding).
_HTML_ESCAPES = re.compile(r"%(22|0d|0a)", re.IGNORECASE)


def part_filename(content_disposition: bytes) -> str | None:
    """The file name a multipart part's `Content-Disposition` gives, as the client meant it.

    Browsers and curl send `filename="say %22hi%22.txt"` for `say "hi".txt` (the HTML form
    encoding of `"`, CR and LF); a few clients send only an RFC 8187 `filename*`. None (or "")
    for a part that is not a file.
    """
    star = _FILENAME_STAR.search(content_disposition)
    if star is not None:
        charset, _, rest = star.group(1).partition(b"'")
        _, _, encoded = rest.partition(b"'")
        codec = "latin-1" if charset.strip().lower() in (b"iso-8859-1", b"latin-1") else "utf-8"
        name = unquote_to_bytes(encoded).decode(codec, "replace")
        if name:
            return name
    _, params = parse_options_header(content_disposition)
    filename = params.get(b"filename")
    if filename is None:
        return None
    # Clients send UTF-8 names.
    text = filename.decode("utf-8", "replace")
    return _HTML_ESCAPES.sub(lambda m: chr(int(m.group(1), 16)), text)


class _MultipartSink:
    """python-multipart callbacks: part headers name the file, part data goes to disk."""

    def __init__(self, upload: Upload) -> None:
        self.upload = upload
        self.headers: dict[bytes, bytes] = {}
        self.field = bytearray()
        self.value = bytearray()
        # Set when the current part is a file (other fields are skipped).
        self.writing = False
        # What waits for a file to be opened (`flush`, once the chunk is parsed), in order: the
        # name of a file to open (str), data (bytes, copied: the parser reuses its buffers), the
        # end of a file (None). Empty, data goes straight to the open file.
        self.pending: list[str | bytes | None] = []
        self.ended: list[PartFile] = []

    def on_part_begin(self) -> None:
        self.headers = {}
        self.writing = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[bytes(self.field).strip().lower()] = bytes(self.value).strip()
        self.field.clear()
        self.value.clear()

    def on_headers_finished(self) -> None:
        name = part_filename(self.headers.get(b"content-disposition", b""))
        if not name:
            # A plain form field, or a file input left empty (`filename=""`).
            return
        self.pending.append(name)
        self.writing = True

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if not self.writing:
            return
        if self.pending:
            self.pending.append(bytes(data[start:end]))
        else:
            self.upload.write(memoryview(data)[start:end])

    def on_part_end(self) -> None:
        if self.writing:
            if self.pending:
                self.pending.append(None)
            else:
                self._end_file()
        self.writing = False

    def _end_file(self) -> None:
        if self.upload.current is not None:
            self.ended.append(self.upload.current)
            self.upload.current = None

    async def flush(self) -> None:
        """Do what the callbacks left pending, then flush the files completed."""
        for item in self.pending:
            if isinstance(item, str):
                # A slash keeps a folder structure (`dir/sub/file.txt`).
                await self.upload.open(item.split("/"), item)
            elif item is None:
                self._end_file()
            else:
                self.upload.write(item)
        self.pending.clear()
        # Files completed in this chunk are flushed now, so only the current one stays open.
        while self.ended:
            await self.ended.pop(0).sync()


async def receive_multipart(receive: Receive, upload: Upload, boundary: bytes) -> None:
    """Stream a multipart/form-data body (`curl -F`, forms) into one file per file part."""
    sink = _MultipartSink(upload)
    parser = MultipartParser(
        boundary,
        callbacks={
            "on_part_begin": sink.on_part_begin,
            "on_header_field": sink.on_header_field,
            "on_header_value": sink.on_header_value,
            "on_header_end": sink.on_header_end,
            "on_headers_finished": sink.on_headers_finished,
            "on_part_data": sink.on_part_data,
            "on_part_end": sink.on_part_end,
        },
    )
    async for chunk in body_chunks(receive):
        try:
            parser.write(chunk)
        except MultipartParseError:
            raise HTTPError(400, "Malformed multipart/form-data body") from None
        await sink.flush()
    if parser.state != MultipartState.END:
        raise HTTPError(400, "Incomplete multipart/form-data body")
    if not upload.parts:
        raise HTTPError(400, "No file in the request")
