"""What users write, made safe to show: message text, nicknames, room names, rates.

Every name and message passes here before it is stored or sent, whichever door it came in by
(WebSocket, HTTP, TCP), so the rules are the same everywhere: control characters and the Unicode
controls that reorder text (U+202E "RIGHT-TO-LEFT OVERRIDE" makes `exe.txt` read `txt.exe`) are
removed, names are short and made of letters, digits and `-_.`, and compared without case.
"""

from __future__ import annotations

import re
import unicodedata

# C0 controls but tab and newline, DEL, C1 controls; the bidirectional embeddings, overrides and
# isolates (U+202A to U+202E, U+2066 to U+2069); zero-width marks that make two names look alike.
# Controls (tab and newline aside), bidirectional overrides and marks (U+061C too), zero-width
# and invisible characters, line and paragraph separators (a new line for some clients).
_INVISIBLE = "\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff"
_UNSAFE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_INVISIBLE}]")
# In names, tab and newline are unsafe too, and the blank Hangul fillers and grapheme joiner
# (a name that shows as nothing).
_UNSAFE_IN_NAMES = re.compile(f"[\x00-\x1f\x7f-\x9f{_INVISIBLE}\u034f\u115f\u1160\u3164\uffa0]")
_NAME = re.compile(r"[\w.-]+")

NICK_MAX = 24
ROOM_MAX = 32
DEFAULT_ROOM = "general"


class BadName(ValueError):
    """A nickname or room name that breaks the rules (the message says which)."""


def clean_text(text: str) -> str:
    """Message text without unsafe controls, CRLF as LF, trailing blanks trimmed."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _UNSAFE.sub("", text).strip()


def _clean_name(text: str) -> str:
    # NFKC: a fullwidth or styled spelling is the name it looks like (fullwidth alice is alice).
    return unicodedata.normalize("NFKC", _UNSAFE_IN_NAMES.sub("", text)).strip()


# Scripts written together: Japanese and Korean mix their own with Chinese characters.
_EAST_ASIAN = {"CJK", "HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA", "HANGUL", "HALFWIDTH"}


def _scripts(name: str) -> set[str]:
    """The scripts of a name's letters (LATIN, CYRILLIC…), by their Unicode names."""
    found = {unicodedata.name(c, "?").split(" ")[0] for c in name if c.isalpha()}
    return {"CJK" if s in _EAST_ASIAN else s for s in found}


def check_nick(text: str) -> str:
    """The nickname as shown (case kept), or BadName saying what is wrong with it."""
    nick = _clean_name(text)
    if not nick:
        raise BadName("a nickname needs at least one letter or digit")
    if len(nick) > NICK_MAX:
        raise BadName(f"a nickname has at most {NICK_MAX} characters")
    if not _NAME.fullmatch(nick):
        raise BadName("a nickname is made of letters, digits, '-', '_' and '.'")
    if len(_scripts(nick)) > 1:
        # alice with a Cyrillic first letter looks like alice: one script a name.
        raise BadName("a nickname's letters are of one script (not Latin and Cyrillic mixed)")
    return nick


def check_room(text: str) -> str:
    """The room's name (lowercase, without a leading `#`), or BadName saying why not."""
    room = _clean_name(text).removeprefix("#").lower()
    if not room:
        raise BadName("a room name needs at least one letter or digit")
    if len(room) > ROOM_MAX:
        raise BadName(f"a room name has at most {ROOM_MAX} characters")
    if not _NAME.fullmatch(room):
        raise BadName("a room name is made of letters, digits, '-', '_' and '.'")
    return room


def nick_key(nick: str) -> str:
    """What makes two nicknames the same one (`Ann` and `ann` are)."""
    return nick.casefold()


_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d*(?:\.\d+)?)\s*(ms|s|m|h)\s*$", re.IGNORECASE)
_RATE_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(text: str) -> tuple[float, float]:
    """`20/s`, `100/m`, `5/10s` → (messages per second, burst); ValueError with an example."""
    m = _RATE.match(text)
    if m is None:
        raise ValueError(f"not a rate: {text[:40]!r} (try 20/s, 100/m, 5/10s)")
    count = float(m.group(1))
    window = float(m.group(2) or 1) * _RATE_UNITS[m.group(3).lower()]
    if count <= 0 or window <= 0:
        raise ValueError(f"not a rate: {text[:40]!r} (a count and a time above zero)")
    return count / window, count


def check_rate(text: str) -> str:
    """The rate as given, once checked (the settings' parser for `--rate`)."""
    parse_rate(text)
    return text.strip()
