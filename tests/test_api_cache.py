"""The api kind's cache of parsed tables: the next start reads Parquet instead of parsing the CSV,
and never serves rows other than the file's own."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from comptoir.config import ServerOptions
from comptoir.sites.api import ApiOptions, cache, validate
from comptoir.sites.api import probe as probe_module
from comptoir.sites.api.routes import parse_route
from comptoir.sites.api.tables import load_table

ROWS = """id,name,score,price,active,born,seen,note
1,Ada,90,10.5,true,1990-01-02,2024-05-01T10:30:00,
2,Bob,75,,false,1985-06-30,2024-05-02T08:00:00,"two
lines"
3,Chloé,,3.25,true,,,
bad,row
4,Dan,75,7,false,2001-12-31,2024-05-03T00:00:00.250000,x
"""


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("COMPTOIR_CACHE_DIR", str(folder))
    # Files written an instant ago are kept here (test_a_file_just_modified_is_not_kept has
    # the rule as it is).
    monkeypatch.setattr(cache, "RACY_SECONDS", -1.0)
    return folder / "tables"


def aged(path: Path) -> None:
    """Modified ten seconds ago (for processes that keep the real rule)."""
    when = time.time_ns() - 10 * 10**9
    os.utime(path, ns=(when, when))


def entries(folder: Path) -> list[str]:
    """The suffixes of the files kept, but the rows written as JSON (tests/test_api_rowstore.py)."""
    if not folder.exists():
        return []
    return sorted(p.suffix for p in folder.iterdir() if p.suffix != ".rows")


def test_a_table_read_again_comes_from_the_cache_as_it_was_parsed(
    tmp_path: Path, own_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "people.csv"
    path.write_text(ROWS, encoding="latin-1")  # "Chloé" in Latin-1: the source's encoding kept
    parsed = load_table("people", path, types={"score": "float"})
    assert entries(own_cache) == [".json", ".parquet"]

    def no_parsing(*args: object, **kwargs: object) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr(pl, "read_csv", no_parsing)
    cached = load_table("people", path, types={"score": "float"})
    assert_frame_equal(cached.frame, parsed.frame)
    assert cached.frame["born"].dtype == pl.Date and cached.frame["seen"].dtype == pl.Datetime
    assert cached.frame.row(2, named=True)["name"] == "Chloé"
    assert cached.frame.row(3, named=True)["seen"] == dt.datetime(2024, 5, 3, 0, 0, 0, 250000)
    assert cached.frame.n_chunks("all") == [1] * cached.frame.width
    assert (cached.key, cached.signature, cached.source) == (
        parsed.key,
        parsed.signature,
        parsed.source,
    )
    assert cached.source.encoding == "latin-1"
    # The row left out is still reported at each start.
    assert [str(p) for p in cached.problems] == [f"{path}:6: 2 fields, expected 8"]
    assert cached.skipped == 1
    # Lookups by key work on the cached frame (its key column known to be sorted).
    assert cached.position(4) == 3


def test_other_options_or_an_edited_file_are_misses(tmp_path: Path, own_cache: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,v\n1,10\n2,20\n")
    load_table("t", path)
    assert load_table("t", path, types={"v": "string"}).frame["v"].dtype == pl.String
    assert len(entries(own_cache)) == 4  # one entry per set of options
    before = os.stat(path)
    path.write_text("id,v\n1,10\n2,20\n3,30\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # same mtime: size tells
    assert load_table("t", path).frame["v"].to_list() == [10, 20, 30]
    # Same size, same mtime, other bytes: the change time tells.
    path.write_text("id,v\n1,10\n2,20\n3,31\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert load_table("t", path).frame["v"].to_list() == [10, 20, 31]
    assert len(entries(own_cache)) == 4  # the file's new version replaced its last


def test_a_broken_entry_is_a_miss_and_an_unwritable_cache_no_failure(
    tmp_path: Path, own_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,v\n1,10\n2,20\n")
    load_table("t", path)
    [rows] = own_cache.glob("*.parquet")
    rows.write_bytes(rows.read_bytes()[:100])  # cut short: its size is not the one recorded
    assert load_table("t", path).frame["v"].to_list() == [10, 20]
    # Garbage of the recorded size: not what was written, the file is parsed.
    [rows] = own_cache.glob("*.parquet")  # the entry written again, its rows named anew
    rows.write_bytes(b"\0" * rows.stat().st_size)
    assert load_table("t", path).frame["v"].to_list() == [10, 20]

    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache's folder would be")
    monkeypatch.setenv("COMPTOIR_CACHE_DIR", str(blocked))
    assert load_table("t", path).frame["v"].to_list() == [10, 20]
    assert not list(tmp_path.glob("**/*.tmp"))


def test_the_start_check_uses_the_cache_and_runs_no_polars_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ok.csv").write_text("id,v\n1,a\n")
    aged(tmp_path / "ok.csv")  # the probe's process keeps the rule on files just modified
    routes = (parse_route({"path": "/w", "table": "ok", "where": {"id": "abc"}}),)
    options = ApiOptions(data=(tmp_path,), route=routes)
    expected = ["/w: where 'abc' is not an integer (column 'id')"]
    # The first check reads the file in a process of its own, which fills the cache.
    assert [str(p) for p in validate(options, ServerOptions())] == expected

    def no_probe(options: ApiOptions) -> None:
        raise AssertionError("the file was read again")

    monkeypatch.setattr(probe_module, "probe", no_probe)
    assert [str(p) for p in validate(options, ServerOptions())] == expected
    # A file edited since: read again (in the probe).
    (tmp_path / "ok.csv").write_text("id,v\n1,a\n2,b\n")
    with pytest.raises(AssertionError, match="read again"):
        validate(options, ServerOptions())


def test_the_process_that_forks_the_workers_starts_no_polars_threads(tmp_path: Path) -> None:
    """Polars' threads do not survive a fork: the check from the cache makes tables with no rows,
    which must not start them (a worker forked after that would hang on its first query)."""
    (tmp_path / "ok.csv").write_text("id,v,d\n1,a,2024-01-01\n")
    aged(tmp_path / "ok.csv")
    script = f"""
import os
from pathlib import Path
from comptoir.config import ServerOptions
from comptoir.sites.api import ApiOptions, validate
options = ApiOptions(data=(Path({str(tmp_path)!r}),))
assert validate(options, ServerOptions()) == []  # the probe fills the cache
assert validate(options, ServerOptions()) == []  # from the cache, in this process
names = [open(f"/proc/self/task/{{t}}/comm").read().strip() for t in os.listdir("/proc/self/task")]
print(",".join(n for n in names if n.startswith("polars-") and n[7:].isdigit()))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == ""


def test_entries_of_files_gone_are_pruned(tmp_path: Path, own_cache: Path) -> None:
    for i in range(3):
        (tmp_path / f"t{i}.csv").write_text("id\n1\n")
        load_table(f"t{i}", tmp_path / f"t{i}.csv")
    assert len(entries(own_cache)) == 6
    (tmp_path / "t0.csv").unlink()
    (tmp_path / "t1.csv").unlink()
    (tmp_path / "t3.csv").write_text("id\n1\n")
    load_table("t3", tmp_path / "t3.csv")  # a store prunes
    assert len(entries(own_cache)) == 4
    assert cache.lookup(tmp_path / "t2.csv", key=None, types=None, strict=False) is not None


def test_a_file_read_again_while_serving_is_kept_after_its_rows_are_served(
    tmp_path: Path, own_cache: Path
) -> None:
    import time

    from comptoir.sites.api.app import ApiSite
    from comptoir.sites.contract import SiteContext

    path = tmp_path / "t.csv"
    path.write_text("id,v\n1,10\n")
    site = ApiSite(ApiOptions(data=(path,)), SiteContext())
    path.write_text("id,v\n1,10\n2,20\n")
    assert site._load("t").frame["v"].to_list() == [10, 20]
    deadline = time.monotonic() + 10
    while cache.lookup(path, key=None, types=None, strict=False) is None:
        assert time.monotonic() < deadline, "never kept"
        time.sleep(0.02)


def test_the_cache_is_under_xdg_cache_home_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COMPTOIR_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.folder() == tmp_path / "xdg" / "comptoir" / "tables"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.folder() == tmp_path / "home" / ".cache" / "comptoir" / "tables"


def test_a_folder_others_can_write_to_is_not_used(tmp_path: Path, own_cache: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,v\n1,10\n")
    load_table("t", path)
    own_cache.chmod(0o777)
    assert cache.lookup(path, key=None, types=None, strict=False) is None
    path.write_text("id,v\n1,10\n2,20\n")
    load_table("t", path)  # parsed, and not kept there
    assert cache.lookup(path, key=None, types=None, strict=False) is None
    own_cache.chmod(0o700)
    assert len(entries(own_cache)) == 2  # only the first read's entry


def test_entries_of_another_format_are_pruned(tmp_path: Path, own_cache: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id\n1\n")
    load_table("t", path)
    [meta] = own_cache.glob("*.json")
    old = own_cache / ("0123" * 8 + ".json")
    old.write_text(meta.read_text().replace(f'"format": {cache.FORMAT}', '"format": 2'))
    (tmp_path / "u.csv").write_text("id\n1\n")
    load_table("u", tmp_path / "u.csv")
    assert not old.exists()
    assert len(entries(own_cache)) == 4
    legacy = own_cache / ("4567" * 8 + ".arrow")  # an earlier format's rows, a minute old
    legacy.write_bytes(b"old")
    os.utime(legacy, ns=(time.time_ns() - 61 * 10**9,) * 2)
    load_table("u", tmp_path / "u.csv", types={"id": "integer"})  # another entry: a store
    assert not legacy.exists()


def test_a_file_just_modified_is_not_kept(
    tmp_path: Path, own_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a file system whose times are coarse (FAT: 2 s), a rewrite of the same size within the
    tick keeps the stamp: a file modified an instant before it is read is parsed next time too."""
    monkeypatch.setattr(cache, "RACY_SECONDS", 2.0)
    path = tmp_path / "t.csv"
    path.write_text("id,v\n1,10\n")
    load_table("t", path)
    assert entries(own_cache) == []
    aged(path)
    load_table("t", path)
    assert entries(own_cache) == [".json", ".parquet"]


def test_damaged_or_foreign_entries_are_misses(tmp_path: Path, own_cache: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,v\n1,10\n2,20\n")
    load_table("t", path)
    [meta] = own_cache.glob("*.json")
    [rows] = own_cache.glob("*.parquet")
    good = rows.read_bytes()
    # A flipped byte of the same size: the hash tells (Parquet is written without checksums).
    rows.write_bytes(good[:40] + bytes([good[40] ^ 1]) + good[41:])
    assert load_table("t", path).frame["v"].to_list() == [10, 20]
    for shape in ("[]", "null", '{"format": 4}', "{"):
        meta.write_text(shape)
        assert cache.lookup(path, key=None, types=None, strict=False) is None
        assert load_table("t", path).frame["v"].to_list() == [10, 20]


def test_only_what_comptoir_wrote_is_ever_removed(tmp_path: Path, own_cache: Path) -> None:
    own_cache.mkdir(parents=True, mode=0o700)
    theirs = ["notes.tmp", "sales.json", "sales.parquet", "schema.json"]
    for name in theirs:
        (own_cache / name).write_text("[]")
        old = time.time_ns() - 7200 * 10**9
        os.utime(own_cache / name, ns=(old, old))
    path = tmp_path / "t.csv"
    path.write_text("id\n1\n")
    load_table("t", path)
    assert all((own_cache / name).exists() for name in theirs)


def test_a_link_or_a_folder_others_can_replace_is_not_used(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "tables").symlink_to(elsewhere)
    assert not cache._trusted(shared / "tables")
    open_parent = tmp_path / "open"
    (open_parent / "tables").mkdir(parents=True, mode=0o700)
    open_parent.chmod(0o777)
    assert not cache._trusted(open_parent / "tables")
    open_parent.chmod(0o1777)  # sticky, as /tmp: others cannot replace what is ours
    assert cache._trusted(open_parent / "tables")


def test_no_home_is_no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPTOIR_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def nowhere() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", nowhere)
    path = tmp_path / "t.csv"
    path.write_text("id\n1\n")
    assert cache.folder() is None
    assert load_table("t", path).frame["id"].to_list() == [1]


def test_a_cache_that_cannot_be_written_stops_nothing(
    tmp_path: Path, own_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import polars as pl

    def full(*args: object, **kwargs: object) -> None:
        raise pl.exceptions.ComputeError("parquet: No space left on device")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", full)
    path = tmp_path / "t.csv"
    path.write_text("id\n1\n")
    assert load_table("t", path).frame["id"].to_list() == [1]
    assert list(own_cache.iterdir()) == []  # no temporary file left


def test_many_tables_in_one_start_all_hit_the_next_time(
    tmp_path: Path, own_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "KEEP_ENTRIES", 3)
    paths = []
    for i in range(5):
        paths.append(tmp_path / f"t{i}.csv")
        paths[-1].write_text("id\n1\n")
    for path in paths:
        load_table(path.stem, path)
    assert all(cache.lookup(p, key=None, types=None, strict=False) for p in paths)


def test_the_check_says_the_same_with_the_cache_or_without(tmp_path: Path) -> None:
    """A Parquet file's UInt8 column is an integer column to the cache's type names; the check
    from the cache would take 300 for one of its values: it reads the file instead."""
    data = tmp_path / "levels.parquet"
    pl.DataFrame({"id": [1, 2], "level": pl.Series([1, 2], dtype=pl.UInt8)}).write_parquet(data)
    aged(data)
    routes = (parse_route({"path": "/l", "table": "levels", "where": {"level": "300"}}),)
    options = ApiOptions(data=(data,), route=routes)
    first = [str(p) for p in validate(options, ServerOptions())]
    assert first == ["/l: where '300' is out of range for column 'level'"]
    assert [str(p) for p in validate(options, ServerOptions())] == first
