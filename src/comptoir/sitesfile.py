"""sites.toml: several sites on one port, chosen by host name and path (`comptoir run`, `check`).

```toml
[server]                 # the fields of ServerOptions: host, port, workers, ...
port = 8000

[[site]]
hosts = ["a.example", "*.a.example"]
path = "/"               # optional mount point
kind = "static"          # a key of sites.KINDS
name = "site-a"          # optional label for the banner
default = false          # answers hosts no other site names
root = "site-a"          # the kind's own options, named as its CLI flags
```

Loading reports every problem of the file at once, one per line, as `file:line: key: problem`, and
nothing starts while there is one. tomllib gives no positions for keys, so `key_lines` finds them by
scanning the text. Relative paths are relative to the file's folder, so a file means the same thing
from whichever folder it is run.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comptoir.config import Config, ServerOptions, SiteConfig
from comptoir.errors import ConfigError, ConfigProblems
from comptoir.hosts import normalize_host, normalize_mount
from comptoir.settings import OptionError, option_fields, options_from_mapping
from comptoir.sites import KINDS

# Keys of a [[site]] table that place the site; every other key is an option of its kind.
SITE_KEYS = ("hosts", "path", "kind", "default", "name")

# A key path into the document: ("server", "port"), ("site", 2, "cache"), ("site", 2).
KeyPath = tuple[str | int, ...]


def load_sites_file(path: Path) -> Config:
    """Read and validate a sites.toml file; ConfigError/ConfigProblems name every problem."""
    filename = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{filename}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{filename}: is a folder, not a sites.toml file") from None
    except OSError as exc:
        raise ConfigError(f"{filename}: cannot read: {exc.strerror}") from None
    try:
        # utf-8-sig: some Windows editors start UTF-8 files with a byte-order mark.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{filename}: not UTF-8 text") from None
    return parse_sites(text, filename, path.parent.absolute())


def parse_sites(text: str, filename: str, base: Path) -> Config:
    """Validate the text of a sites.toml file into a Config (paths relative to `base`)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigProblems([_syntax_problem(filename, text, str(exc))]) from None
    report = _Report(filename, key_lines(text))
    for key in data:
        if key not in ("server", "site"):
            hint = _did_you_mean(key, ["server", "site"])
            report.add((key,), "unknown table or key; expected [server] and [[site]]" + hint)
    server = _server(data.get("server", {}), report, base)
    # The kinds' checks may depend on the server's options (workers, TLS, host).
    sites = _sites(data.get("site"), report, base, server or ServerOptions())
    if report.problems:
        raise ConfigProblems(report.lines())
    assert server is not None
    return Config(server=server, sites=tuple(sites))


# Stands for a part of a site's address drawn afresh at each start (a share's random token).
RANDOM_PART = "<random>"


def summary(config: Config, filename: str, redrawn: Config | None = None) -> str:
    """A short description of a valid file, for `comptoir check`: one line per site.

    Each site's address includes the path its kind adds (a share's or a receive's token).
    `redrawn` is the same file loaded a second time: the parts of an address that differ between
    the two loads are drawn at random at each start, so they are shown as `<random>`.
    """
    count = len(config.sites)
    lines = [f"{filename}: OK, {count} site{'s' if count != 1 else ''}, port {config.server.port}"]
    width = max(len(s.name) for s in config.sites)
    kind_width = max(len(s.kind) for s in config.sites)
    random_parts = False
    for i, s in enumerate(config.sites):
        at = _site_path(s)
        if redrawn is not None and i < len(redrawn.sites):
            at = _mark_random(at, _site_path(redrawn.sites[i]))
            random_parts = random_parts or RANDOM_PART in at
        shown = "" if at == "/" else at
        where = [h + shown for h in s.hosts]
        if s.default:
            where.append(f"default{' ' + shown if shown else ''}")
        lines.append(f"  {s.name:<{width}}  {s.kind:<{kind_width}}  {', '.join(where)}")
    if random_parts:
        lines.append(f"  {RANDOM_PART}: a new secret at each start (`run` prints the links)")
    return "\n".join(lines)


def _site_path(site: SiteConfig) -> str:
    """The path of a site's front page: its mount point, then what its kind adds."""
    suffix = KINDS[site.kind].url_suffix(site.options)
    return site.path.rstrip("/") + "/" + suffix.lstrip("/")


def _mark_random(path: str, other: str) -> str:
    """`path` with the segments that differ in `other` replaced by RANDOM_PART."""
    mine, theirs = path.split("/"), other.split("/")
    if len(mine) != len(theirs):
        return path
    return "/".join(a if a == b else RANDOM_PART for a, b in zip(mine, theirs, strict=True))


@dataclass
class _Report:
    """Collects problems with their line numbers."""

    filename: str
    positions: dict[KeyPath, int]
    problems: list[tuple[int, str]] = dataclasses.field(default_factory=list)

    def add(self, key: KeyPath, message: str) -> None:
        """Record one problem about the value at `key` (or the file, for an empty key)."""
        label = _label(key)
        text = f"{label}: {message}" if label else message
        self.problems.append((self.line_of(key), text))

    def line_of(self, key: KeyPath) -> int:
        """The line of `key`, or of the nearest enclosing table found (line 1 at worst)."""
        while key:
            if key in self.positions:
                return self.positions[key]
            key = key[:-1]
        return 1

    def lines(self) -> list[str]:
        """The problems as `file:line: problem`, in file order."""
        ordered = sorted(self.problems, key=lambda p: p[0])  # stable: same line, found order
        return [f"{self.filename}:{line}: {text}" for line, text in ordered]


def _label(key: KeyPath) -> str:
    out = ""
    for part in key:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + part
    return out


def _did_you_mean(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key.replace("-", "_"), known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


_TOML_POSITION = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)$")


def _syntax_problem(filename: str, text: str, message: str) -> str:
    m = _TOML_POSITION.search(message)
    if m is None:
        return f"{filename}: invalid TOML: {message}"
    message = message[: m.start()]
    if m.group(1) is None:
        # "At end of document": point at the last line that has something on it.
        last = text.rstrip().count("\n") + 1
        return f"{filename}:{last}: invalid TOML: {message} (at end of file)"
    return f"{filename}:{m.group(1)}: invalid TOML: {message} (column {m.group(2)})"


def _server(raw: Any, report: _Report, base: Path) -> ServerOptions | None:
    if not isinstance(raw, Mapping):
        report.add(("server",), "must be a table: [server]")
        return None
    valid = _valid_options(ServerOptions, raw, ("server",), report)
    options: ServerOptions = _relative_to(
        options_from_mapping(ServerOptions, valid, "server"), base
    )
    return options


def _valid_options(
    cls: type[Any],
    table: Mapping[str, Any],
    at: KeyPath,
    report: _Report,
    extra_keys: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The options of `table` that are valid, each checked on its own so every bad key is told."""
    names = [o.name for o in option_fields(cls)]
    valid = {}
    for key, value in table.items():
        if key in extra_keys:
            continue
        if key.replace("-", "_") not in names:
            report.add((*at, key), "unknown key" + _did_you_mean(key, [*names, *extra_keys]))
            continue
        option = next(o for o in option_fields(cls) if o.name == key.replace("-", "_"))
        if option.setting.table is not None and isinstance(value, list):
            # Tables of an array (`[[site.route]]`): each is told at its own line, all at once.
            bad = False
            for i, item in enumerate(value):
                try:
                    options_from_mapping(cls, {key: [item]}, _label(at))
                except OptionError as exc:
                    report.add((*at, key, i), exc.problem)
                    bad = True
            if not bad:
                valid[key] = value
            continue
        try:
            options_from_mapping(cls, {key: value}, _label(at))
        except OptionError as exc:
            report.add((*at, key), exc.problem)
            continue
        valid[key] = value
    return valid


def _relative_to(options: Any, base: Path) -> Any:
    """The options with relative paths made relative to the file's folder."""
    changes: dict[str, Any] = {}
    for opt in option_fields(type(options)):
        if opt.item_type is not Path:
            continue
        value = getattr(options, opt.name)
        if isinstance(value, Path):
            changes[opt.name] = base / value
        elif isinstance(value, tuple):
            changes[opt.name] = tuple(base / v for v in value)
    return dataclasses.replace(options, **changes)


def _sites(raw: Any, report: _Report, base: Path, server: ServerOptions) -> list[SiteConfig]:
    if raw is None or raw == []:
        report.add((), "no sites: add a [[site]] table")
        return []
    if not isinstance(raw, list) or not all(isinstance(t, Mapping) for t in raw):
        report.add(("site",), "must be tables: [[site]]")
        return []
    sites = [_site(i, table, report, base, server) for i, table in enumerate(raw)]
    _check_unique(sites, ["name" in t for t in raw], report)
    return [s for s in sites if s is not None]


def _site(
    i: int, table: Mapping[str, Any], report: _Report, base: Path, server: ServerOptions
) -> SiteConfig | None:
    at: KeyPath = ("site", i)
    before = len(report.problems)
    default = table.get("default", False)
    if not isinstance(default, bool):
        report.add((*at, "default"), "must be true or false")
    hosts = _hosts(table.get("hosts"), default is True, (*at, "hosts"), report)
    path = _mount(table.get("path", "/"), (*at, "path"), report)
    name = table.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        report.add((*at, "name"), "must be a non-empty string")
    kind_name = table.get("kind")
    known = ", ".join(sorted(KINDS))
    if kind_name is None:
        report.add((*at, "kind"), f"missing; one of {known}")
        return None
    if not isinstance(kind_name, str) or kind_name not in KINDS:
        report.add((*at, "kind"), f"unknown kind {kind_name!r}; one of {known}")
        return None
    kind = KINDS[kind_name]
    # Built from the valid keys alone, so the kind's own checks still run and report too.
    valid = _valid_options(kind.options, table, at, report, extra_keys=SITE_KEYS)
    options = _relative_to(options_from_mapping(kind.options, valid, _label(at)), base)
    for problem in kind.validate(options, server):
        # The key as the file wrote it (`max-size` or `max_size`); none: the site as a whole.
        key: KeyPath = () if problem.option is None else (_written(table, problem.option),)
        if problem.item is not None:
            key = (*key, problem.item)
        report.add((*at, *key), problem.message)
    if len(report.problems) > before:
        return None
    assert hosts is not None and path is not None
    if not name:
        name = (hosts[0] if hosts else "default") + ("" if path == "/" else path)
    return SiteConfig(
        kind=kind_name, options=options, hosts=hosts, path=path, default=default, name=name
    )


def _written(table: Mapping[str, Any], name: str) -> str:
    """How the file spells the key of option `name` (dashes or underscores)."""
    keys = [k for k in table if k.replace("-", "_") == name]
    return keys[0] if keys else name


def _hosts(raw: Any, default: bool, at: KeyPath, report: _Report) -> tuple[str, ...] | None:
    if raw is None:
        if default:
            return ()
        report.add(at, "missing; list the host names of this site (or set default = true)")
        return None
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(h, str) for h in raw):
        report.add(at, 'must be a list of host names, e.g. ["example.com"]')
        return None
    if not raw and not default:
        report.add(at, "is empty; list the host names of this site (or set default = true)")
        return None
    ok = True
    for h in raw:
        problem = _host_problem(h)
        if problem:
            report.add(at, problem)
            ok = False
    return tuple(raw) if ok else None


def _host_problem(host: str) -> str | None:
    if host.strip() in ("*", ""):
        return f"{host!r} is not a host name; set default = true for a site answering any host"
    if normalize_host(host, wildcard=True) is None:
        if "*" in host:
            return f"{host!r}: a wildcard covers one whole label at the start, as in *.example.com"
        if _is_ipv6(host):
            return f"{host!r}: write IPv6 addresses in brackets, as in [::1]"
        return f"{host!r} is not a valid host name"
    bare = host.rsplit("]", 1)[-1] if host.startswith("[") else host
    if ":" in bare:
        return f"{host!r}: give host names without a port (the port is the server's)"
    return None


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


_BAD_MOUNT_CHARS = re.compile(r"[?#%\\\s\x00-\x1f\x7f]")


def _mount(raw: Any, at: KeyPath, report: _Report) -> str | None:
    if not isinstance(raw, str):
        report.add(at, 'must be a string, e.g. "/blog"')
        return None
    if not raw.startswith("/"):
        report.add(at, f'{raw!r} must start with "/"')
        return None
    parts = raw.strip("/").split("/")
    if raw.strip("/") and any(p in ("", ".", "..") for p in parts):
        report.add(at, f"{raw!r}: empty, '.' and '..' segments are not allowed")
        return None
    if _BAD_MOUNT_CHARS.search(raw):
        report.add(at, f"{raw!r}: spaces, '?', '#', '%' and '\\' are not allowed")
        return None
    return normalize_mount(raw)


def _check_unique(sites: list[SiteConfig | None], named: list[bool], report: _Report) -> None:
    """One site per host name and path; one default site per path; names given are unique."""
    seen: dict[tuple[str, str], int] = {}
    names: dict[str, int] = {}
    for i, site in enumerate(sites):
        if site is None:
            continue
        shown_path = "" if site.path == "/" else site.path
        for h in site.hosts:
            key = (normalize_host(h, wildcard=True) or h, site.path)
            if key in seen:
                other = "this site" if seen[key] == i else f"site[{seen[key]}]"
                report.add(("site", i, "hosts"), f"{h}{shown_path} is already served by {other}")
            else:
                seen[key] = i
        if site.default:
            key = ("", site.path)
            if key in seen:
                report.add(
                    ("site", i, "default"),
                    f"site[{seen[key]}] is already the default site at {site.path}",
                )
            else:
                seen[key] = i
        if not named[i]:
            continue
        if site.name in names:
            report.add(
                ("site", i, "name"),
                f"{site.name!r} is already the name of site[{names[site.name]}]",
            )
        else:
            names[site.name] = i


# Keys: bare (a-z, 0-9, _ and -) or quoted; dotted keys are several of these joined by dots.
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_KEY_LINE = re.compile(rf"^\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*=\s*(.*)$")
_HEADER_LINE = re.compile(rf"^\s*(\[\[?)\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*\]\]?")


def key_lines(text: str) -> dict[KeyPath, int]:
    """Map each table and key of a (valid) TOML text to its 1-based line number.

    Tables of an array (`[[site]]`) are numbered in order: `("site", 0, "root")`. Values inside
    inline tables are not mapped; callers fall back to the enclosing key's line.
    """
    positions: dict[KeyPath, int] = {}
    arrays: dict[KeyPath, int] = {}  # array-of-tables path -> tables seen so far
    table: KeyPath = ()
    in_string: str | None = None  # the delimiter of the multi-line string being skipped
    for lineno, line in enumerate(text.splitlines(), start=1):
        if in_string is not None:
            if in_string in line:
                in_string = None
            continue
        header = _HEADER_LINE.match(line)
        if header is not None:
            parts = _key_parts(header.group(2))
            table = (*_resolve(parts[:-1], arrays), parts[-1])
            if header.group(1) == "[[":
                index = arrays.get(table, 0)
                arrays[table] = index + 1
                positions.setdefault(table, lineno)
                table = (*table, index)
            positions.setdefault(table, lineno)
            continue
        m = _KEY_LINE.match(line)
        if m is None:
            continue
        parts = _key_parts(m.group(1))
        for n in range(1, len(parts) + 1):
            positions.setdefault(table + parts[:n], lineno)
        in_string = _opens_multiline_string(m.group(2))
    return positions


def _key_parts(dotted: str) -> tuple[str, ...]:
    return tuple(p.strip("\"'") for p in re.findall(_KEY_PART, dotted))


def _resolve(parts: tuple[str, ...], arrays: dict[KeyPath, int]) -> KeyPath:
    """A header's parent path, with the current index inserted after each array of tables."""
    path: KeyPath = ()
    for part in parts:
        path = (*path, part)
        if path in arrays:
            path = (*path, arrays[path] - 1)
    return path


def _opens_multiline_string(value: str) -> str | None:
    for delimiter in ('"""', "'''"):
        if value.startswith(delimiter) and value.count(delimiter) % 2 == 1:
            return delimiter
    return None


def warnings(config: Config, *, password: bool) -> list[str]:
    """What `check` and `run` point out in a valid file: with a password, an echo site sharing a
    host name with another site.

    The other site's session cookie then reaches echo too (a cookie is for a host name, any port,
    and a Path=/ one for every path). Echo shows no comptoir cookie back and sandboxes what a
    client makes it answer, but a host name of its own leaves it nothing to reach at all.
    """
    if not password:
        return []
    out = []
    for echo in (s for s in config.sites if s.kind == "echo"):
        for other in config.sites:
            if other is echo:
                continue
            shared = _shared_host(echo.hosts, other.hosts)
            if shared is not None:
                out.append(
                    f"echo site {echo.name!r} shares {shared} with {other.name!r}, which the"
                    " password protects: give echo a host name of its own"
                )
                break
    return out


def _shared_host(a: tuple[str, ...], b: tuple[str, ...]) -> str | None:
    """A host name both lists answer ("any host" when one answers every name), or None."""
    if not a or not b:
        return "any host" if not a and not b else (b or a)[0]
    for x in a:
        for y in b:
            if x == y or _covers(x, y) or _covers(y, x):
                return x if not x.startswith("*.") else y
    return None


def _covers(wildcard: str, name: str) -> bool:
    """True when `*.example.test` answers `name` (or both are wildcards of one tree)."""
    if not wildcard.startswith("*."):
        return False
    parent = wildcard[1:]  # ".example.test"
    return name.endswith(parent) or name == wildcard
