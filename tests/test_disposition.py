"""Content-Disposition for any file name (RFC 6266 with an RFC 8187 `filename*`)."""

from __future__ import annotations

import email.message
import os
import re
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comptoir.http.disposition import FALLBACK_NAME, ascii_fallback, content_disposition

HOSTILE = [
    "report.pdf",
    "two words.txt",
    "été à Paris.txt",
    'say "hi".txt',
    "back\\slash.txt",
    "100% sure.txt",
    "a%20b.txt",
    "#hash;semi.txt",
    "emoji 😀.png",
    "new\nline.txt",
    "tab\there",
    "日本語.txt",
    "'quotes'.txt",
    "😀",
]


def _params(value: str) -> dict[str, str]:
    """Parse the header as the standard library's email package does (RFC 2231/5987 aware)."""
    msg = email.message.EmailMessage()
    msg["content-disposition"] = value
    return {k: v for k, v in msg["content-disposition"].params.items()}


@pytest.mark.parametrize("name", HOSTILE)
def test_exact_name_round_trips_through_filename_star(name: str) -> None:
    value = content_disposition(name)
    assert value.isascii()
    assert value.startswith("attachment; ")
    star = re.search(r"filename\*=UTF-8''([^;\s]+)$", value)
    assert star is not None
    assert unquote(star.group(1), encoding="utf-8", errors="strict") == name
    # The fallback parses as the plain filename parameter.
    assert _params(value)["filename"] == ascii_fallback(name)


@pytest.mark.parametrize("name", HOSTILE)
def test_fallback_is_safe_for_naive_clients(name: str) -> None:
    fallback = ascii_fallback(name)
    assert fallback.isascii() and fallback.isprintable()
    # curl -J stops at the first quote and keeps what follows the last / or \.
    assert not set(fallback) & set('"\\/')
    assert not re.search(r"%[0-9A-Fa-f]{2}", fallback)
    assert fallback.strip() == fallback and fallback


def test_fallback_keeps_plain_ascii_names() -> None:
    for name in ("report.pdf", "two words.txt", "#hash;semi.txt", "100% sure.txt", "it's.txt"):
        assert ascii_fallback(name) == name


def test_fallback_drops_accents_and_replaces_the_rest() -> None:
    assert ascii_fallback("été à Paris.txt") == "ete a Paris.txt"
    assert ascii_fallback('say "hi".txt') == "say _hi_.txt"
    assert ascii_fallback("a%20b.txt") == "a_20b.txt"
    assert ascii_fallback("emoji 😀.png") == "emoji _.png"
    assert ascii_fallback("😀") == FALLBACK_NAME
    # A run of characters without an ASCII form is one `_`, not one per character.
    assert ascii_fallback("rapport 日本語 2024.pdf") == "rapport _ 2024.pdf"
    # Nothing recognisable left: a generic name that keeps the type (curl -OJ saves it).
    assert ascii_fallback("😀.pdf") == "download.pdf"
    assert ascii_fallback("日本語.txt") == "download.txt"
    assert ascii_fallback("Ωμέγα.tar.gz") == "download.tar.gz"
    assert ascii_fallback("..") == ascii_fallback("...") == FALLBACK_NAME
    assert ascii_fallback('"".txt') == "download.txt"


def test_undecodable_bytes_become_replacement_characters() -> None:
    name = os.fsdecode(b"caf\xe9.txt")
    value = content_disposition(name)
    assert value.isascii()
    assert "filename*=UTF-8''caf%EF%BF%BD.txt" in value
    assert ascii_fallback(name) == "caf_.txt"


def test_inline_disposition() -> None:
    assert content_disposition("a.txt", "inline").startswith("inline; filename=")


@given(st.text(min_size=1, max_size=40))
def test_any_name_gives_one_parsable_ascii_header(name: str) -> None:
    value = content_disposition(name)
    assert value.isascii() and "\n" not in value and "\r" not in value
    star = value.rsplit("filename*=UTF-8''", 1)[1]
    exact = os.fsencode(name).decode("utf-8", "replace") if _has_surrogates(name) else name
    assert unquote(star, errors="strict") == exact


def _has_surrogates(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


@given(st.text(min_size=1, max_size=40))
def test_any_fallback_is_a_plain_ascii_name(name: str) -> None:
    # What curl -OJ (which ignores filename*) will save the file as: always a usable name.
    fallback = ascii_fallback(name)
    assert fallback and fallback.isascii() and fallback.isprintable()
    assert not set(fallback) & set('"\\/') and not re.search(r"%[0-9A-Fa-f]{2}", fallback)
    assert fallback.strip() == fallback and fallback not in (".", "..")
    assert any(c.isalnum() for c in fallback)
