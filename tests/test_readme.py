"""README.md keeps up with the registry: every kind documented, every demo site in its table.

A new kind's docs are its own section (`### comptoir <command>`), its name in the sites.toml table's
`kind` row and its demo sites in the demo's table; these tests name what is missing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from comptoir import cli
from comptoir.demo import SITES
from comptoir.sites import KINDS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_kind_has_its_section(name: str) -> None:
    kind = KINDS[name]
    assert re.search(rf"^### `comptoir {re.escape(kind.command)}\b", README, re.M), kind.command
    assert f'kind = "{name}"' in README, name


def test_the_sites_toml_table_names_every_kind() -> None:
    [row] = [line for line in README.splitlines() if line.startswith("| `kind` |")]
    assert {name for name in KINDS if f"`{name}`" not in row} == set()


def test_the_demo_table_lists_every_demo_site(tmp_path: Path) -> None:
    section = README.split("### `comptoir demo`", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(http://[^`]+)` \| (\w+) \|", section, re.M)
    assert rows == [(f"http://{s.host}:8000{s.path(tmp_path)}", s.kind) for s in SITES]


def test_the_check_sample_is_what_check_prints(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = README.split("$ comptoir check examples/kinds.toml\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit):
        cli.main(["check", "examples/kinds.toml"])
    out = capsys.readouterr().out
    # Tokens the file does not set show as `<random>`: the output is the same at every run.
    assert out == sample
