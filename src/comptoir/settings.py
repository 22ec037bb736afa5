"""Options declared once, as data, and used by the CLI, sites.toml validation and the docs alike.

An options class is a frozen dataclass whose fields are made with `setting(...)`. The CLI builds its
click options from the fields (cli.py), sites.toml is validated against the same fields
(`options_from_mapping`), and the README's option tables can be printed from them. Adding an option
is adding one field.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from comptoir.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Setting:
    """How one option is presented: help text, CLI spelling and value checks."""

    help: str
    # The CLI argument name when the option is positional (e.g. `serve DIR`), else None.
    argument: str | None = None
    # Extra short flags, e.g. ("-p",).
    short: tuple[str, ...] = ()
    # For bool options: the CLI spells them `--name/--no-name` unless `flag_only` (just `--name`).
    flag_only: bool = False
    minimum: float | None = None
    maximum: float | None = None
    # A parser from the user's text to the field's value (sizes, durations); it raises ValueError.
    parse: Callable[[str], Any] | None = None
    # Shown in help instead of the raw default (e.g. "all interfaces").
    default_text: str | None = None
    # Hidden from --help (for values only scripts set).
    secret: bool = False
    # Not settable from the command line (e.g. a kind's option only sites.toml sets).
    cli: bool = True
    # Also read from COMPTOIR_<NAME>; False when that variable means something else (the
    # `--password` flag prompts, while COMPTOIR_PASSWORD holds the password itself).
    env: bool = True
    # For options sites.toml gives as tables (an api site's `[[site.route]]`): the value from one
    # table; it raises ValueError.
    table: Callable[[Mapping[str, Any]], Any] | None = None


class OptionError(ConfigError):
    """A bad value for one option, with the option's name and the problem kept for callers."""

    def __init__(self, where: str, name: str, problem: str) -> None:
        super().__init__(f"{where}: {name}: {problem}")
        self.name = name
        self.problem = problem


def setting(default: Any, help: str, **kwargs: Any) -> Any:
    """Declare one option field: its default and how it is presented."""
    meta = {"setting": Setting(help=help, **kwargs)}
    if isinstance(default, list | dict | set):
        raise TypeError("use immutable defaults (tuple) for options")
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class OptionField:
    """One option of an options class, resolved: name, type, default, presentation."""

    name: str
    type: Any
    default: Any
    setting: Setting

    @property
    def flag(self) -> str:
        """The long CLI flag, e.g. `--log-format`."""
        return "--" + self.name.replace("_", "-")

    @property
    def choices(self) -> tuple[str, ...] | None:
        """The allowed values when the type is a Literal of strings."""
        tp = _unwrap_optional(self.type)
        if typing.get_origin(tp) is Literal:
            return tuple(str(a) for a in typing.get_args(tp))
        return None

    @property
    def is_sequence(self) -> bool:
        """True for tuple-typed options (repeatable flags, several positional arguments)."""
        return typing.get_origin(_unwrap_optional(self.type)) is tuple

    @property
    def item_type(self) -> Any:
        """The element type of a sequence option, or the type itself."""
        tp = _unwrap_optional(self.type)
        if typing.get_origin(tp) is tuple:
            return typing.get_args(tp)[0]
        return tp

    @property
    def optional(self) -> bool:
        """True when None is an accepted value."""
        return _is_optional(self.type)


def option_fields(cls: type[Any]) -> list[OptionField]:
    """The declared options of an options class, in declaration order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        s = f.metadata.get("setting")
        if s is None:
            continue
        out.append(OptionField(f.name, hints[f.name], f.default, s))
    return out


def _is_optional(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    return origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


def _unwrap_optional(tp: Any) -> Any:
    if _is_optional(tp):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0]
    return tp


def convert_value(opt: OptionField, value: Any, where: str) -> Any:
    """Check and convert one raw value (from TOML, env or CLI text) to the option's type."""
    if value is None:
        if opt.optional:
            return None
        raise OptionError(where, opt.name, "must not be empty")
    if opt.is_sequence:
        if isinstance(value, str | Path):
            value = [value]
        if not isinstance(value, list | tuple):
            raise OptionError(where, opt.name, "must be a list")
        return tuple(_convert_scalar(opt, opt.item_type, v, where) for v in value)
    return _convert_scalar(opt, _unwrap_optional(opt.type), value, where)


def _convert_scalar(opt: OptionField, tp: Any, value: Any, where: str) -> Any:
    s = opt.setting
    if s.table is not None:
        if not isinstance(value, Mapping):
            raise OptionError(where, opt.name, "must be a table")
        try:
            return s.table(value)
        except ValueError as exc:
            raise OptionError(where, opt.name, str(exc)) from None
    if s.parse is not None and isinstance(value, str):
        try:
            value = s.parse(value)
        except ValueError as exc:
            raise OptionError(where, opt.name, str(exc)) from None
        _check_bounds(opt, value, where)
        return value
    choices = opt.choices
    if choices is not None:
        if value not in choices:
            raise OptionError(where, opt.name, f"must be one of {', '.join(choices)}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise OptionError(where, opt.name, "must be true or false")
    if tp is Path:
        if not isinstance(value, str | Path):
            raise OptionError(where, opt.name, "must be a path (a string)")
        return Path(value).expanduser()
    if tp is int or tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise OptionError(where, opt.name, "must be a number")
        if tp is int and not isinstance(value, int):
            raise OptionError(where, opt.name, "must be a whole number")
        if not math.isfinite(value):
            raise OptionError(where, opt.name, "must be a finite number")
        if s.parse is not None:
            # A number for a size or duration (`grace = 30`) obeys the same rules as its text.
            return _convert_scalar(opt, tp, str(value), where)
        _check_bounds(opt, value, where)
        return tp(value)
    if tp is str:
        if not isinstance(value, str):
            raise OptionError(where, opt.name, "must be a string")
        return value
    if s.parse is not None:
        # Already of the parsed type (e.g. a number of bytes given as a TOML integer).
        return value
    raise OptionError(where, opt.name, "has an unsupported type")


def options_from_mapping(cls: type[T], data: Mapping[str, Any], where: str) -> T:
    """Build an options object from a mapping of option names (TOML keys use `-` or `_`)."""
    fields = {o.name: o for o in option_fields(cls)}
    values: dict[str, Any] = {}
    for key, raw in data.items():
        name = key.replace("-", "_")
        opt = fields.get(name)
        if opt is None:
            raise OptionError(where, key, "unknown key")
        values[name] = convert_value(opt, raw, where)
    return cls(**values)


def _check_bounds(opt: OptionField, value: Any, where: str) -> None:
    s = opt.setting
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    if s.minimum is not None and value < s.minimum:
        raise OptionError(where, opt.name, f"must be at least {s.minimum:g}")
    if s.maximum is not None and value > s.maximum:
        raise OptionError(where, opt.name, f"must be at most {s.maximum:g}")


# Beyond these, a size or duration is a typo (and would overflow what it is handed to).
MAX_SIZE = 2**60  # 1 EiB
MAX_DURATION = 10 * 365 * 86400.0  # ten years

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def _shown(text: str) -> str:
    # A value quoted in an error line, cut short: the line must stay one readable line.
    return repr(text if len(text) <= 40 else text[:37] + "...")


def parse_size(text: str) -> int:
    """Parse `10M`, `1.5GiB`, `512k`, `2048` (bytes; binary multiples) into bytes."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"not a size: {_shown(text)} (try 10M, 2G, 512k)")
    unit = (m.group(2) or "").lower().rstrip("b").rstrip("i")
    size = float(m.group(1)) * _SIZE_UNITS[unit]
    if not size <= MAX_SIZE:  # also catches inf from a number of 400 digits
        raise ValueError(f"too large: {_shown(text)} (at most 1E)")
    return int(size)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Parse `30s`, `30m`, `2h`, `1h30m`, `1d` or a bare number of seconds into seconds."""
    t = text.strip().lower()
    try:
        total = float(t)
    except ValueError:
        pos, total = 0, 0.0
        for m in _DURATION.finditer(t):
            if m.start() != pos:
                break
            total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
            pos = m.end()
        if pos != len(t) or not t:
            raise ValueError(f"not a duration: {_shown(text)} (try 30s, 30m, 2h, 1h30m)") from None
    # float() takes "inf" and "nan" too: neither is a duration anyone means.
    if not 0 <= total <= MAX_DURATION:
        raise ValueError(f"not a duration: {_shown(text)} (0 to 10 years, e.g. 30s, 2h, 7d)")
    return total
