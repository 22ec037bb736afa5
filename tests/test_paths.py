"""http/paths.py: the one place deciding what a URL may reach, attacked from every side."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comptoir.app import build_app
from comptoir.http.paths import (
    PathRefused,
    is_inside,
    quote_name,
    real_root,
    resolve_path,
    split_url_path,
    url_for_parts,
)
from comptoir.sites.static import StaticOptions
from comptoir.types import ASGIApp, Message
from tests.conftest import make_config

SECRET = b"top secret, outside the served folder\n"
HIDDEN = b"a dotfile inside the served folder\n"


def make_tree(base: Path) -> tuple[Path, Path]:
    """A served folder `root` next to a secret file, with symlinks pointing in and out."""
    root = base / "root"
    (root / "sub").mkdir(parents=True)
    (root / "index.txt").write_text("public\n")
    (root / "sub" / "page.txt").write_text("page\n")
    (root / ".env").write_bytes(HIDDEN)
    (root / ".git").mkdir()
    (root / ".git" / "config").write_bytes(HIDDEN)
    secret = base / "secret.txt"
    secret.write_bytes(SECRET)
    # A sibling folder whose name starts like the root's: a prefix check would let it through.
    (base / "root2").mkdir()
    (base / "root2" / "secret.txt").write_bytes(SECRET)
    (root / "out-file").symlink_to(secret)
    (root / "out-dir").symlink_to(base)
    (root / "out-prefix").symlink_to(base / "root2")
    (root / "in-file").symlink_to(root / "sub" / "page.txt")
    (root / "in-dir").symlink_to(root / "sub")
    (root / "to-dotfile").symlink_to(root / ".env")
    (root / "loop").symlink_to(root / "loop")
    (root / "dangling").symlink_to(base / "nowhere")
    return root, secret


@pytest.fixture
def tree(tmp_path: Path) -> tuple[str, Path]:
    """(real root, secret file)."""
    root, secret = make_tree(tmp_path)
    return real_root(root), secret


HOSTILE = [
    b"/..",
    b"/../secret.txt",
    b"/../../../../etc/passwd",
    b"/sub/../../secret.txt",
    b"/%2e%2e/secret.txt",
    b"/%2E%2E/secret.txt",
    b"/.%2e/secret.txt",
    b"/%2e./secret.txt",
    b"/sub/%2e%2e/%2e%2e/secret.txt",
    b"/..%2fsecret.txt",
    b"/..%2Fsecret.txt",
    b"/sub%2f..%2f..%2fsecret.txt",
    b"/%252e%252e/secret.txt",
    b"/..%5csecret.txt",
    b"/..%5Csecret.txt",
    b"/..\\secret.txt",
    b"/sub\\..\\..\\secret.txt",
    b"/%c0%ae%c0%ae/secret.txt",
    b"/%c0%ae%c0%ae%c0%afsecret.txt",
    b"/%e0%80%ae%e0%80%ae/secret.txt",
    b"/%c1%9c..%c1%9csecret.txt",
    b"/..%00/secret.txt",
    b"/index.txt%00.png",
    b"/%00",
    b"/%",
    b"/%2",
    b"/%zz",
    b"/%%32%65",
    b"secret.txt",
    b"",
    b"/.env",
    b"/%2eenv",
    b"/.git/config",
    b"/sub/../.env",
    b"/out-file",
    b"/out-dir/secret.txt",
    b"/out-prefix/secret.txt",
    b"/to-dotfile",
    b"/loop",
    b"/dangling",
    b"/a%0ab",
    b"/a%1b[31m",
    b"/a%7f",
    b"/" + b"a" * 5000,
    b"/sub" * 3000,
    b"/%ff%fe/" * 100,
]


@pytest.mark.parametrize("raw", HOSTILE)
def test_hostile_paths_never_resolve_to_a_served_file(tree: tuple[str, Path], raw: bytes) -> None:
    root, _ = tree
    try:
        resolved = resolve_path(root, raw)
    except PathRefused as exc:
        assert exc.status in (400, 404)
        return
    # Whatever was not refused outright must not exist as a file inside the root.
    assert is_inside(root, resolved.path)
    assert not os.path.isfile(resolved.path), raw


@pytest.mark.parametrize("raw", HOSTILE)
async def test_hostile_paths_over_http_are_404_or_400(tree: tuple[str, Path], raw: bytes) -> None:
    root, _ = tree
    status, body = await call_app(static_app(root), raw)
    assert status in (400, 404), raw
    assert SECRET not in body
    assert HIDDEN not in body


async def test_special_files_linking_outside_are_never_used(
    tmp_path: Path, aclient: Callable[[ASGIApp], httpx.AsyncClient]
) -> None:
    # index.html, 404.html and precompressed siblings are looked up by the server, not named in
    # the URL: they must pass the same checks as any requested path.
    root, secret = make_tree(tmp_path)
    (root / "sub" / "index.html").symlink_to(secret)
    (root / "404.html").symlink_to(secret)
    (root / "page.txt").write_text("visible " * 200)
    (root / "page.txt.gz").symlink_to(secret)
    (root / "page.txt.br").symlink_to(root / ".env")
    client = aclient(static_app(str(root), spa=True))
    for url in ("/sub/", "/missing.txt", "/some/route"):
        r = await client.get(url)
        assert SECRET not in r.content and HIDDEN not in r.content, url
    r = await client.get("/page.txt", headers={"accept-encoding": "br, gzip"})
    assert r.status_code == 200
    assert "content-encoding" not in r.headers
    assert r.text == "visible " * 200


async def test_listing_leaves_out_links_that_would_be_refused(
    tree: tuple[str, Path], aclient: Callable[[ASGIApp], httpx.AsyncClient]
) -> None:
    root, _ = tree
    as_json = {"accept": "application/json"}
    r = await aclient(static_app(root)).get("/", headers=as_json)
    listed = {e["name"] for e in r.json()["entries"]}
    assert listed == {"sub", "in-dir", "index.txt", "in-file"}
    r = await aclient(static_app(root, hidden=True)).get("/", headers=as_json)
    listed = {e["name"] for e in r.json()["entries"]}
    assert listed == {".env", ".git", "sub", "in-dir", "index.txt", "in-file", "to-dotfile"}


def test_symlinks_inside_the_root_are_followed(tree: tuple[str, Path]) -> None:
    root, _ = tree
    assert resolve_path(root, b"/in-file").path == os.path.join(root, "sub", "page.txt")
    resolved = resolve_path(root, b"/in-dir/page.txt")
    assert resolved.path == os.path.join(root, "sub", "page.txt")
    # The URL components are kept as written, for breadcrumbs.
    assert resolved.parts == ("in-dir", "page.txt")


def test_hidden_allows_dotfiles_but_never_dotdot(tree: tuple[str, Path]) -> None:
    root, _ = tree
    assert resolve_path(root, b"/.env", hidden=True).path == os.path.join(root, ".env")
    assert resolve_path(root, b"/to-dotfile", hidden=True).path == os.path.join(root, ".env")
    assert resolve_path(root, b"/.git/config", hidden=True).path.endswith("config")
    for raw in (b"/..", b"/%2e%2e/secret.txt", b"/out-file"):
        with pytest.raises(PathRefused):
            resolve_path(root, raw, hidden=True)


def test_split_keeps_dot_components_out_and_notes_the_slash() -> None:
    assert split_url_path(b"/") == ((), True)
    assert split_url_path(b"/a/./b//c/") == (("a", "b", "c"), True)
    assert split_url_path(b"/a%20b/c%23d") == (("a b", "c#d"), False)
    # Bytes that are not UTF-8 come back as surrogate escapes, the way os.fsdecode names them.
    assert split_url_path(b"/caf%e9") == ((os.fsdecode(b"caf\xe9"),), False)


@pytest.mark.parametrize(
    ("raw", "status"),
    [(b"/%", 400), (b"/%g0", 400), (b"/a%00", 400), (b"/a%0a", 400), (b"/..", 404)],
)
def test_refusals_say_400_for_malformed_and_404_for_escapes(raw: bytes, status: int) -> None:
    with pytest.raises(PathRefused) as info:
        split_url_path(raw)
    assert info.value.status == status


def test_is_inside_compares_components_not_prefixes() -> None:
    assert is_inside("/srv/www", "/srv/www")
    assert is_inside("/srv/www", "/srv/www/a/b")
    assert not is_inside("/srv/www", "/srv/www2/a")
    assert not is_inside("/srv/www", "/srv")
    assert is_inside("/", "/etc/passwd")


# --- property tests ---------------------------------------------------------------------------

# Pieces attackers combine: separators and their encodings, dots and theirs, overlong UTF-8,
# NUL, backslashes, names that exist (in and out of the root) and symlinks.
PIECES = [
    "/", "//", ".", "..", "%2e", "%2E", "%2e%2e", "%2f", "%2F", "%5c", "%5C", "\\", "%00", "%",
    "%25", "%c0%ae", "%c0%af", "%e0%80%ae", "%c1%9c", "%ff", "%0a", "secret.txt", "root",
    "root2", "sub", "page.txt", "index.txt", ".env", ".git", "config", "out-file", "out-dir",
    "out-prefix", "in-dir", "in-file", "to-dotfile", "loop", "a", "é", "%e9", ";", "?", "#",
]  # fmt: skip

hostile_paths = st.lists(st.sampled_from(PIECES), max_size=12).map(lambda p: "/" + "".join(p))


def test_property_resolved_paths_stay_inside_the_root(tmp_path: Path) -> None:
    root_path, secret = make_tree(tmp_path)
    root = real_root(root_path)
    hidden_files = {os.path.join(root, ".env"), os.path.join(root, ".git", "config")}

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(path=hostile_paths, hidden=st.booleans())
    def check(path: str, hidden: bool) -> None:
        raw = path.encode("utf-8")
        try:
            resolved = resolve_path(root, raw, hidden=hidden)
        except PathRefused as exc:
            assert exc.status in (400, 404)
            return
        assert is_inside(root, resolved.path)
        assert resolved.path != str(secret.resolve())
        if not hidden:
            assert resolved.path not in hidden_files
            assert ".." not in resolved.parts

    check()


def test_property_the_secret_is_never_served(tmp_path: Path) -> None:
    root_path, _ = make_tree(tmp_path)
    root = real_root(root_path)
    app = static_app(root)
    loop = asyncio.new_event_loop()
    try:

        @settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(path=hostile_paths)
        def check(path: str) -> None:
            status, body = loop.run_until_complete(call_app(app, path.encode("utf-8")))
            assert status in (200, 301, 400, 404), (path, status)
            assert SECRET not in body
            assert HIDDEN not in body

        check()
    finally:
        loop.close()


names = st.binary(min_size=1, max_size=40).filter(
    lambda b: b"/" not in b and b"\x00" not in b and b not in (b".", b"..")
)


@given(name=names)
def test_property_quoted_names_come_back_as_the_same_component(name: bytes) -> None:
    component = os.fsdecode(name)
    url = url_for_parts((component,), slash=False)
    # A link only ever holds unreserved characters and escapes: nothing a browser would reinterpret.
    assert all(c.isalnum() or c in "-._~%/" for c in url)
    try:
        parts, trailing = split_url_path(url.encode("ascii"), hidden=True)
    except PathRefused:
        # Only names that would be refused anyway (control characters) may fail to come back.
        assert any(b < 0x20 or b == 0x7F for b in name) or b"\\" in name
        return
    assert parts == (component,)
    assert not trailing


@given(parts=st.lists(names, min_size=1, max_size=4))
def test_property_url_for_parts_round_trips(parts: list[bytes]) -> None:
    if any(b"\\" in p or any(b < 0x20 or b == 0x7F for b in p) for p in parts):
        return
    decoded = tuple(os.fsdecode(p) for p in parts)
    url = url_for_parts(decoded, prefix="/mnt", slash=True)
    assert url.startswith("/mnt/") and url.endswith("/")
    assert split_url_path(url[len("/mnt") :].encode(), hidden=True) == (decoded, True)


def test_quote_name_encodes_everything_reserved() -> None:
    assert quote_name("a b#c?d%e") == "a%20b%23c%3Fd%25e"
    assert quote_name('"<x>"') == "%22%3Cx%3E%22"
    assert quote_name(os.fsdecode(b"caf\xe9")) == "caf%E9"
    assert quote_name("café") == "caf%C3%A9"


# --- helpers ----------------------------------------------------------------------------------


def static_app(root: str, **options: object) -> ASGIApp:
    """The whole app of `comptoir serve ROOT`."""
    return build_app(make_config("static", StaticOptions(root=Path(root), **options)))  # type: ignore[arg-type]


async def call_app(app: ASGIApp, raw_path: bytes, method: str = "GET") -> tuple[int, bytes]:
    """Send one request with an exact raw path (no client normalisation) and collect the answer."""
    path = raw_path.decode("latin-1")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": raw_path,
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
        "extensions": {},
    }
    status = 0
    body = bytearray()

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    await app(scope, receive, send)
    return status, bytes(body)


def test_a_tempdir_root_with_symlinked_parents_still_works() -> None:
    # The root itself may be reached through a symlink (/tmp on macOS, bind mounts): what counts
    # is the real path.
    with tempfile.TemporaryDirectory() as base:
        real = Path(base) / "real"
        real.mkdir()
        (real / "f.txt").write_text("f")
        link = Path(base) / "link"
        link.symlink_to(real)
        root = real_root(link)
        assert resolve_path(root, b"/f.txt").path == os.path.join(root, "f.txt")
        status, body = asyncio.run(call_app(static_app(str(link)), b"/f.txt"))
        assert (status, body) == (200, b"f")
