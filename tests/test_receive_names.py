"""Names of received files: whatever a client sends becomes one safe component."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comptoir.sites.receive.names import (
    FALLBACK,
    MAX_BYTES,
    clean_component,
    numbered,
    safe_components,
    safe_name,
    split_extension,
)

RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{d}{n}" for d in ("COM", "LPT") for n in (*"0123456789", "¹", "²", "³")
}


def assert_safe(name: str) -> None:
    """The properties every name we create on disk has."""
    assert name
    assert len(name.encode("utf-8")) <= MAX_BYTES
    assert name not in (".", "..")
    assert not name.startswith(".")
    assert not name.endswith((".", " "))
    assert name == name.strip()
    assert not any(c in name for c in '/\\<>:"|?*')
    assert all(unicodedata.category(c) not in ("Cc", "Cs", "Zl", "Zp") for c in name)
    assert not any(c in name for c in "\u202e\u202d\u2066\u2067\u2068\u2069\u200e\u200f")
    assert name.split(".", 1)[0].rstrip(" ").upper() not in RESERVED
    assert unicodedata.is_normalized("NFC", name)
    name.encode("utf-8")  # no lone surrogates


@pytest.mark.parametrize(
    ("given_name", "expected"),
    [
        ("photo.jpg", "photo.jpg"),
        ("my holiday photo.jpg", "my holiday photo.jpg"),
        ("été 2024 — plage.jpg", "été 2024 — plage.jpg"),
        ("日本語のファイル.txt", "日本語のファイル.txt"),
        ("../../etc/passwd", "_.._etc_passwd"),
        ("..\\..\\windows\\system.ini", "_.._windows_system.ini"),
        ("..", FALLBACK),
        (".", FALLBACK),
        ("", FALLBACK),
        ("   ", FALLBACK),
        ("...", FALLBACK),
        (".bashrc", "bashrc"),
        ("..hidden", "hidden"),
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("CON.txt", "_CON.txt"),
        ("Aux.tar.gz", "_Aux.tar.gz"),
        ("nul .txt", "_nul .txt"),
        ("COM1", "_COM1"),
        ("lpt9.log", "_lpt9.log"),
        ("COM¹.txt", "_COM¹.txt"),
        ("CONSOLE.txt", "CONSOLE.txt"),
        ("COM10", "COM10"),
        ("name. . ", "name"),
        ("trailing dot.", "trailing dot"),
        ("a\x00b\nc\td\x7f", "a_b_c_d_"),
        ("what?.txt", "what_.txt"),
        ('a<b>c:d"e|f*g.txt', "a_b_c_d_e_f_g.txt"),
        ("invoice\u202egpj.exe", "invoice_gpj.exe"),
        ("line\u2028break", "line_break"),
        ("caf\u0065\u0301.txt", "café.txt"),
        ("bad\udcffbyte", "bad_byte"),
    ],
)
def test_safe_name(given_name: str, expected: str) -> None:
    assert safe_name(given_name) == expected
    assert_safe(safe_name(given_name))


def test_long_names_are_cut_keeping_the_extension() -> None:
    name = safe_name("a" * 300 + ".txt")
    assert name == "a" * 251 + ".txt"
    assert len(name.encode()) == MAX_BYTES


def test_long_names_are_cut_on_a_character_boundary() -> None:
    name = safe_name("é" * 200 + ".tar.gz")
    assert name.endswith(".tar.gz")
    assert set(name[: -len(".tar.gz")]) == {"é"}
    assert len(name.encode()) <= MAX_BYTES
    emoji = safe_name("😀" * 100)
    assert set(emoji) == {"😀"}
    assert len(emoji.encode()) == 252


def test_a_huge_extension_is_not_an_extension() -> None:
    name = safe_name("x." + "y" * 400)
    assert len(name.encode()) == MAX_BYTES
    assert name.startswith("x.yyy")


def test_a_cut_never_leaves_a_trailing_dot_or_space() -> None:
    name = safe_name("a" * 254 + " .b" * 10)
    assert_safe(name)


@pytest.mark.parametrize(
    ("name", "stem", "ext"),
    [
        ("photo.jpg", "photo", ".jpg"),
        ("archive.tar.gz", "archive", ".tar.gz"),
        ("ARCHIVE.TAR.XZ", "ARCHIVE", ".TAR.XZ"),
        ("noext", "noext", ""),
        ("v1.2.3", "v1.2", ".3"),
        ("file. with spaces", "file. with spaces", ""),
        ("tar.gz", "tar", ".gz"),
        ("x." + "y" * 17, "x." + "y" * 17, ""),
    ],
)
def test_split_extension(name: str, stem: str, ext: str) -> None:
    assert split_extension(name) == (stem, ext)


def test_numbered() -> None:
    assert numbered("photo.jpg", 1) == "photo (1).jpg"
    assert numbered("photo.jpg", 12) == "photo (12).jpg"
    assert numbered("archive.tar.gz", 2) == "archive (2).tar.gz"
    assert numbered("README", 3) == "README (3)"
    long = numbered("a" * 251 + ".txt", 7)
    assert long == "a" * 247 + " (7).txt"
    assert len(long.encode()) == MAX_BYTES


@pytest.mark.parametrize(
    ("path", "folders", "name"),
    [
        ("a.txt", (), "a.txt"),
        ("dir/sub/a.txt", ("dir", "sub"), "a.txt"),
        ("../../etc/passwd", ("etc",), "passwd"),
        ("/abs/olute.txt", ("abs",), "olute.txt"),
        ("a/./b/../c.txt", ("a", "b"), "c.txt"),
        ("a//b/", ("a", "b"), FALLBACK),
        (".git/config", ("git",), "config"),
        ("CON/AUX.txt", ("_CON",), "_AUX.txt"),
        ("... /x", (), "x"),
        ("", (), FALLBACK),
    ],
)
def test_safe_components(path: str, folders: tuple[str, ...], name: str) -> None:
    assert safe_components(path.split("/")) == (folders, name)


def test_clean_component_may_be_empty() -> None:
    assert clean_component("..") == ""
    assert clean_component(" . ") == ""
    assert clean_component("ok") == "ok"


# Text as clients may send it: any code point (lone surrogates stand for undecodable bytes),
# with the troublesome ones drawn often.
hostile = st.lists(
    st.one_of(
        st.characters(codec=None),
        st.sampled_from([*'./\\ \t\x00<>:"|?*\u202e\u0301\u2028é', "CON", "lpt1", "..", "😀", "ﬃ"]),
    ),
    max_size=300,
).map("".join)


@settings(max_examples=200, deadline=None)
@given(hostile)
def test_safe_name_is_always_one_safe_component(text: str) -> None:
    assert_safe(safe_name(text))


@settings(max_examples=200, deadline=None)
@given(hostile)
def test_safe_name_is_idempotent(text: str) -> None:
    once = safe_name(text)
    assert safe_name(once) == once


@settings(max_examples=150, deadline=None)
@given(hostile, st.integers(min_value=1, max_value=10**6))
def test_numbered_names_are_safe_and_distinct(text: str, n: int) -> None:
    name = safe_name(text)
    other = numbered(name, n)
    assert_safe(other)
    assert other != name
    assert safe_name(other) == other
    assert f"({n})" in other


@settings(max_examples=150, deadline=None)
@given(st.lists(hostile, max_size=6).map("/".join))
def test_safe_components_only_go_down(text: str) -> None:
    folders, name = safe_components(text.split("/"))
    assert_safe(name)
    for folder in folders:
        assert_safe(folder)
