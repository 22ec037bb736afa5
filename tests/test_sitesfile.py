"""sites.toml: loading, every validation problem with its line, `comptoir check`, flag overrides."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path
from typing import Any

import pytest

from comptoir import cli
from comptoir.config import Config, ServerOptions
from comptoir.server import Server
from comptoir.sites import KINDS
from comptoir.sitesfile import key_lines, load_sites_file, parse_sites, summary
from tests.conftest import comptoir_cmd

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

SITE = """
[[site]]
hosts = ["a.example"]
kind = "static"
root = "www"
"""

SHARE = '[[site]]\nhosts = ["a.example"]\nkind = "share"\n'
RECEIVE = '[[site]]\nhosts = ["a.example"]\nkind = "receive"\n'


def write(tmp_path: Path, text: str) -> Path:
    """A sites.toml in tmp_path, next to an existing `www` folder."""
    (tmp_path / "www").mkdir(exist_ok=True)
    path = tmp_path / "sites.toml"
    path.write_text(text.lstrip("\n"), encoding="utf-8")
    return path


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    out, err = capsys.readouterr()
    code = exc.value.code
    return (code if isinstance(code, int) else 0), out, err


# --- key_lines: where each key is, since tomllib does not say --------------------------------


def test_key_lines_numbers_tables_of_an_array() -> None:
    text = """\
# comment = 1
[server]
port = 8000

[[site]]
hosts = [
  "a.example",   # not a key = line
]
kind = "static"

[[ site ]]  # spaces and a comment
"root" = "x"
cache.deep = 1
"""
    lines = key_lines(text)
    assert lines[("server",)] == 2
    assert lines[("server", "port")] == 3
    assert lines[("site", 0)] == 5
    assert lines[("site", 0, "hosts")] == 6
    assert lines[("site", 0, "kind")] == 9
    assert lines[("site", 1)] == 11
    assert lines[("site", 1, "root")] == 12
    assert lines[("site", 1, "cache")] == 13
    assert lines[("site", 1, "cache", "deep")] == 13
    assert ("comment",) not in lines


def test_key_lines_skips_multiline_strings_and_follows_subtables() -> None:
    text = '''\
[[site]]
note = """
fake = "not a key"
"""
kind = "static"
[site.extra]
x = 1
[[site]]
kind = 'literal'
'''
    lines = key_lines(text)
    assert lines[("site", 0, "note")] == 2
    assert ("site", 0, "fake") not in lines
    assert lines[("site", 0, "kind")] == 5
    assert lines[("site", 0, "extra", "x")] == 7
    assert lines[("site", 1, "kind")] == 9


# --- a valid file --------------------------------------------------------------------------


def test_example_file_loads_with_paths_relative_to_its_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # somewhere else entirely
    config = load_sites_file(EXAMPLES / "sites.toml")
    assert [s.name for s in config.sites] == ["site-a", "site-b", "fallback"]
    a, b, fallback = config.sites
    assert a.hosts == ("site-a.localhost", "*.site-a.localhost")
    assert a.options.root == EXAMPLES / "site-a"
    assert (b.path, b.options.listing, b.options.cache) == ("/docs", True, 60)
    assert fallback.default and fallback.hosts == ()
    assert config.server.port == 8000


def test_keys_may_use_dashes_and_get_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[server]\nlog-format = "json"\ngrace = "1m"\n'
        '[[site]]\nhosts = "b.example"\npath = "/docs/"\nkind = "static"\n',
    )
    config = load_sites_file(path)
    assert config.server.log_format == "json"
    assert config.server.grace == 60
    site = config.sites[0]
    assert site.hosts == ("b.example",)
    assert site.path == "/docs"
    assert site.name == "b.example/docs"
    # `root` left out: the file's own folder.
    assert site.options.root == tmp_path


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, SITE)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert isinstance(load_sites_file(path), Config)


# --- every problem: file:line: key: message, exit code 2, no traceback ------------------------

CASES: list[tuple[str, str, str]] = [
    (
        "unknown_server_key",
        "[server]\nprot = 8000\n" + SITE,
        "sites.toml:2: server.prot: unknown key (did you mean 'port'?)",
    ),
    (
        "server_wrong_type",
        '[server]\nport = "http"\n' + SITE,
        "sites.toml:2: server.port: must be a number",
    ),
    (
        "server_range",
        "[server]\nport = 70000\n" + SITE,
        "sites.toml:2: server.port: must be at most 65535",
    ),
    (
        "server_bad_duration",
        '[server]\ngrace = "soon"\n' + SITE,
        "sites.toml:2: server.grace: not a duration: 'soon' (try 30s, 30m, 2h, 1h30m)",
    ),
    (
        "server_not_a_table",
        "server = 5\n" + SITE,
        "sites.toml:1: server: must be a table: [server]",
    ),
    (
        "kind_option_type",
        SITE + 'cache = "long"\n',
        "sites.toml:5: site[0].cache: must be a number",
    ),
    (
        "kind_option_bool",
        SITE + 'listing = "yes"\n',
        "sites.toml:5: site[0].listing: must be true or false",
    ),
    (
        "unknown_site_key",
        SITE + "listng = false\n",
        "sites.toml:5: site[0].listng: unknown key (did you mean 'listing'?)",
    ),
    (
        "unknown_kind",
        '[[site]]\nhosts = ["a.example"]\nkind = "statik"\n',
        "sites.toml:3: site[0].kind: unknown kind 'statik'; one of ",
    ),
    (
        "missing_kind",
        '[[site]]\nhosts = ["a.example"]\n',
        "sites.toml:1: site[0].kind: missing; one of ",
    ),
    (
        "missing_hosts",
        '[[site]]\nkind = "static"\nroot = "www"\n',
        "sites.toml:1: site[0].hosts: missing; list the host names of this site"
        " (or set default = true)",
    ),
    (
        "empty_hosts",
        '[[site]]\nhosts = []\nkind = "static"\nroot = "www"\n',
        "sites.toml:2: site[0].hosts: is empty; list the host names of this site"
        " (or set default = true)",
    ),
    (
        "hosts_wrong_type",
        '[[site]]\nhosts = 5\nkind = "static"\nroot = "www"\n',
        'sites.toml:2: site[0].hosts: must be a list of host names, e.g. ["example.com"]',
    ),
    (
        "invalid_host",
        '[[site]]\nhosts = ["a b.example"]\nkind = "static"\nroot = "www"\n',
        "sites.toml:2: site[0].hosts: 'a b.example' is not a valid host name",
    ),
    (
        "host_with_port",
        '[[site]]\nhosts = ["a.example:8080"]\nkind = "static"\nroot = "www"\n',
        "sites.toml:2: site[0].hosts: 'a.example:8080': give host names without a port"
        " (the port is the server's)",
    ),
    (
        "bare_ipv6",
        '[[site]]\nhosts = ["::1"]\nkind = "static"\nroot = "www"\n',
        "sites.toml:2: site[0].hosts: '::1': write IPv6 addresses in brackets, as in [::1]",
    ),
    (
        "wildcard_in_the_middle",
        '[[site]]\nhosts = ["a.*.example"]\nkind = "static"\nroot = "www"\n',
        "sites.toml:2: site[0].hosts: 'a.*.example': a wildcard covers one whole label at the"
        " start, as in *.example.com",
    ),
    (
        "star_alone",
        '[[site]]\nhosts = ["*"]\nkind = "static"\nroot = "www"\n',
        "sites.toml:2: site[0].hosts: '*' is not a host name; set default = true for a site"
        " answering any host",
    ),
    (
        "path_without_slash",
        SITE + 'path = "blog"\n',
        "sites.toml:5: site[0].path: 'blog' must start with \"/\"",
    ),
    (
        "path_with_dots",
        SITE + 'path = "/a/../b"\n',
        "sites.toml:5: site[0].path: '/a/../b': empty, '.' and '..' segments are not allowed",
    ),
    (
        "path_with_query",
        SITE + 'path = "/a?b"\n',
        "sites.toml:5: site[0].path: '/a?b': spaces, '?', '#', '%' and '\\' are not allowed",
    ),
    (
        "path_wrong_type",
        SITE + "path = 1\n",
        'sites.toml:5: site[0].path: must be a string, e.g. "/blog"',
    ),
    (
        "default_wrong_type",
        SITE + 'default = "yes"\n',
        "sites.toml:5: site[0].default: must be true or false",
    ),
    (
        "name_wrong_type",
        SITE + "name = 3\n",
        "sites.toml:5: site[0].name: must be a non-empty string",
    ),
    (
        "duplicate_host_and_path",
        SITE + '[[site]]\nhosts = ["A.Example."]\nkind = "static"\nroot = "www"\n',
        "sites.toml:6: site[1].hosts: A.Example. is already served by site[0]",
    ),
    (
        "duplicate_host_in_one_site",
        '[[site]]\nhosts = ["a.example", "a.example"]\nkind = "static"\nroot = "www"\n',
        "sites.toml:2: site[0].hosts: a.example is already served by this site",
    ),
    (
        "duplicate_idna_spellings",
        '[[site]]\nhosts = ["bücher.example"]\nkind = "static"\nroot = "www"\n'
        '[[site]]\nhosts = ["xn--bcher-kva.example"]\nkind = "static"\nroot = "www"\n',
        "sites.toml:6: site[1].hosts: xn--bcher-kva.example is already served by site[0]",
    ),
    (
        "duplicate_default",
        '[[site]]\ndefault = true\nkind = "static"\nroot = "www"\n'
        '[[site]]\ndefault = true\npath = "/"\nkind = "static"\nroot = "www"\n',
        "sites.toml:6: site[1].default: site[0] is already the default site at /",
    ),
    (
        "duplicate_name",
        SITE + 'name = "one"\n[[site]]\nhosts = ["b.example"]\nkind = "static"\nroot = "www"\n'
        'name = "one"\n',
        "sites.toml:10: site[1].name: 'one' is already the name of site[0]",
    ),
    # Each kind's own checks, blamed on the key they are about.
    (
        "share_missing_path",
        SHARE + 'paths = ["www", "nope"]\n',
        "sites.toml:4: site[0].paths: not found: ",
    ),
    (
        "share_short_token",
        SHARE + 'paths = ["www"]\ntoken = "short"\n',
        "sites.toml:5: site[0].token: use at least 16 characters",
    ),
    (
        "share_once_and_count",
        SHARE + 'paths = ["www"]\ncount = 3\nonce = true\n',
        "sites.toml:6: site[0].once: --once means --count 1: give one or the other",
    ),
    (
        "receive_missing_folder",
        RECEIVE + 'root = "nope"\n',
        "sites.toml:4: site[0].root: folder not found: ",
    ),
    (
        "receive_bad_token",
        RECEIVE + 'root = "www"\ntoken = "a b"\n',
        "sites.toml:5: site[0].token: use only letters, digits, - and _",
    ),
    (
        "echo_port_range",
        '[[site]]\nhosts = ["a.example"]\nkind = "echo"\ntcp = 70000\n',
        "sites.toml:4: site[0].tcp: must be at most 65535",
    ),
    (
        "unknown_table",
        SITE + '[[sites]]\nkind = "static"\n',
        "sites.toml:5: sites: unknown table or key; expected [server] and [[site]]"
        " (did you mean 'site'?)",
    ),
    ("no_sites", "[server]\nport = 8000\n", "sites.toml:1: no sites: add a [[site]] table"),
    ("empty_site_list", "site = []\n", "sites.toml:1: no sites: add a [[site]] table"),
    ("grace_inf", "[server]\ngrace = inf\n" + SITE, "sites.toml:2: server.grace: must be a finite"),
    (
        "grace_absurd",
        "[server]\ngrace = 1e10\n" + SITE,
        "sites.toml:2: server.grace: not a duration: '10000000000.0'",
    ),
    (
        "size_absurd",
        '[[site]]\nhosts = ["a.example"]\nkind = "echo"\nmax-body = "' + "9" * 400 + '"\n',
        "sites.toml:4: site[0].max-body: too large: ",
    ),
    ("site_not_tables", 'site = "a.example"\n', "sites.toml:1: site: must be tables: [[site]]"),
    ("toml_syntax", SITE + "cache = \n", "sites.toml:5: invalid TOML: Invalid value (column 9)"),
    (
        "toml_unterminated",
        SITE + 'name = """x\n',
        "sites.toml:5: invalid TOML: Unterminated string (at end of file)",
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_problem_is_one_line_with_file_line_and_key(
    text: str,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, text)
    code, out, err = run_cli(["check", "sites.toml"], capsys)
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("comptoir: error: " + expected)


def test_missing_folder_is_blamed_on_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, SITE.replace('"www"', '"nope"'))
    code, _, err = run_cli(["check", "sites.toml"], capsys)
    assert code == 2
    assert (
        err == f"comptoir: error: sites.toml:4: site[0].root: folder not found: {tmp_path}/nope\n"
    )


def test_every_problem_is_reported_at_once_in_file_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path,
        """
[server]
port = "x"
workers = 0

[[site]]
hosts = ["a.example"]
kind = "static"
root = "missing"
cache = -1
spa = 1

[[site]]
kind = "nope"
""",
    )
    code, _, err = run_cli(["check", "sites.toml"], capsys)
    assert code == 2
    assert err.splitlines() == [
        "comptoir: error: sites.toml:2: server.port: must be a number",
        "comptoir: error: sites.toml:3: server.workers: must be at least 1",
        f"comptoir: error: sites.toml:8: site[0].root: folder not found: {tmp_path}/missing",
        "comptoir: error: sites.toml:9: site[0].cache: must be at least 0",
        "comptoir: error: sites.toml:10: site[0].spa: must be true or false",
        "comptoir: error: sites.toml:12: site[1].hosts: missing; list the host names of this"
        " site (or set default = true)",
        "comptoir: error: sites.toml:13: site[1].kind: unknown kind 'nope'; one of "
        + err.splitlines()[-1].rsplit("one of ", 1)[1],
    ]


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda p: None, "sites.toml: file not found"),
        (lambda p: p.mkdir(), "sites.toml: is a folder, not a sites.toml file"),
        (lambda p: p.write_bytes(b"port = \xff\n"), "sites.toml: not UTF-8 text"),
    ],
    ids=["missing", "folder", "not_utf8"],
)
def test_unreadable_file(
    setup: Any,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    setup(tmp_path / "sites.toml")
    code, _, err = run_cli(["check"], capsys)
    assert (code, err) == (2, f"comptoir: error: {expected}\n")


def test_check_prints_a_summary_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["check", str(EXAMPLES / "sites.toml")], capsys)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"{EXAMPLES / 'sites.toml'}: OK, 3 sites, port 8000"
    assert lines[1].split() == ["site-a", "static", "site-a.localhost,", "*.site-a.localhost"]
    assert lines[2].split() == ["site-b", "static", "site-b.localhost/docs/"]
    assert lines[3].split() == ["fallback", "static", "default"]


def test_check_shows_each_kind_at_its_address_with_random_parts_marked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_cli(["check", str(EXAMPLES / "kinds.toml")], capsys)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    count = len(load_sites_file(EXAMPLES / "kinds.toml").sites)
    assert lines[0].endswith(f": OK, {count} sites, port 8000")
    rows = {line.split()[0]: line.split() for line in lines[1 : 1 + count]}
    assert rows["web"] == ["web", "static", "site-a.localhost"]
    assert rows["echo"] == ["echo", "echo", "site-a.localhost/echo/"]
    assert rows["share"] == ["share", "share", "files.localhost/<random>/"]
    assert rows["drop"] == ["drop", "receive", "drop.localhost/<random>/"]
    assert lines[1 + count :] == ["  <random>: a new secret at each start (`run` prints the links)"]


def test_the_kinds_example_has_a_site_of_every_kind() -> None:
    # examples/kinds.toml shows each kind in a sites.toml, under the options of its command.
    config = load_sites_file(EXAMPLES / "kinds.toml")
    assert sorted({s.kind for s in config.sites}) == sorted(KINDS)


def test_check_shows_a_token_given_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path,
        """
[[site]]
hosts = ["a.example", "*.a.example"]
path = "/files"
kind = "share"
paths = ["www"]
token = "a-fixed-share-token"

[[site]]
default = true
path = "/in"
kind = "receive"
root = "www"
""",
    )
    code, out, err = run_cli(["check", "sites.toml"], capsys)
    assert (code, err) == (0, "")
    assert [line.split() for line in out.splitlines()[1:3]] == [
        [
            "a.example/files",
            "share",
            "a.example/files/a-fixed-share-token/,",
            "*.a.example/files/a-fixed-share-token/",
        ],
        ["default/in", "receive", "default", "/in/<random>/"],
    ]
    assert out.splitlines()[3].strip().startswith("<random>: ")


def test_check_addresses_agree_with_the_banner_of_run(tmp_path: Path) -> None:
    # What `check` shows is what `run` serves: the banner's URLs, but for the random parts.
    path = write(
        tmp_path,
        SITE + 'path = "/web"\n\n[[site]]\nhosts = ["b.example"]\nkind = "share"\n'
        'paths = ["www"]\ntoken = "0123456789abcdef"\n',
    )
    config = load_sites_file(path)
    config = dataclasses.replace(config, server=ServerOptions(host="127.0.0.1", port=0))
    server = Server(config)
    try:
        urls = [u.url for u in server.urls()]
        port = server.bind().getsockname()[1]
    finally:
        server.bind().close()
    assert urls == [
        f"http://a.example:{port}/web/",
        f"http://b.example:{port}/0123456789abcdef/",
    ]
    lines = summary(config, str(path), redrawn=load_sites_file(path)).splitlines()
    assert [line.split()[-1] for line in lines[1:]] == [
        "a.example/web/",
        "b.example/0123456789abcdef/",
    ]


def test_run_flags_and_variables_override_the_server_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, '[server]\nport = 9000\nworkers = 3\nlog-format = "json"\n' + SITE)
    seen: list[Config] = []
    monkeypatch.setattr(cli, "run_config", seen.append)
    monkeypatch.setenv("COMPTOIR_WORKERS", "2")
    code, _, _ = run_cli(["run", str(path), "--port", "0"], capsys)
    assert code == 0
    server = seen[0].server
    assert (server.port, server.workers, server.log_format) == (0, 2, "json")


def test_bad_file_starts_nothing_and_prints_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = -1\n" + SITE + "cache = true\n")
    proc = subprocess.run(
        comptoir_cmd("run", str(path), "--port", "0"), capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        f"comptoir: error: {path}:2: server.port: must be at least 0",
        f"comptoir: error: {path}:8: site[0].cache: must be a number",
    ]


def test_parse_sites_is_usable_without_a_file(tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    config = parse_sites(SITE, "inline", tmp_path)
    assert config.sites[0].options.root == tmp_path / "www"


def test_server_paths_are_relative_to_the_file_too(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\ncert = "certs/site.pem"\n' + SITE)
    assert load_sites_file(path).server.cert == tmp_path / "certs" / "site.pem"


def test_check_runs_the_server_checks_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, '[server]\nkey = "site.key"\n' + SITE)
    code, out, err = run_cli(["check", "sites.toml"], capsys)
    assert (code, out) == (2, "")
    assert err.startswith("comptoir: error: ")
    assert "--key needs --cert" in err


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ('password-file = "missing"', "cannot read --password-file"),
        ('password-hash = "x"', "password-hash: not a comptoir password hash"),
        ('cert = "missing.pem"', "cannot read --cert"),
    ],
)
def test_check_finds_what_run_would_refuse_about_the_password(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    server: str,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, f"[server]\n{server}\n" + SITE)
    code, out, err = run_cli(["check", "sites.toml"], capsys)
    assert (code, out) == (2, "")
    assert message in err
    # A readable file is fine, and its password is not printed.
    (tmp_path / "pw").write_text("s3cret\n")
    write(tmp_path, '[server]\npassword-file = "pw"\n' + SITE)
    code, out, err = run_cli(["check", "sites.toml"], capsys)
    assert code == 0 and "s3cret" not in out + err
