"""What a first-time user installs (issue 10, item 13): `uv run comptoir ...` in a fresh checkout
installs comptoir's runtime dependencies only — no test or lint tools — and the `comptoir` command
it makes works from any folder. (`.ci/run` also runs the README's `uv tool install .`, which needs
the package index.)"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEV_TOOLS = ("pytest", "playwright", "mypy", "ruff", "hypothesis", "httpx")


def test_uv_run_in_a_fresh_checkout_installs_no_dev_tools(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    if uv is None:
        if os.environ.get("CI"):
            pytest.fail("uv is required in CI")
        pytest.skip("uv not installed")
    checkout = tmp_path / "comptoir"
    checkout.mkdir()
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(ROOT / name, checkout / name)
    shutil.copytree(ROOT / "src", checkout / "src", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_PROJECT"))}
    # Offline: what `uv sync` of this checkout already put in uv's cache is all it may use.
    done = subprocess.run(
        [uv, "run", "--offline", "--locked", "comptoir", "--version"],
        cwd=checkout,
        capture_output=True,
        text=True,
        env=env,
        timeout=100,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("comptoir, version ")
    (site_packages,) = (checkout / ".venv" / "lib").glob("python3*/site-packages")
    installed = {p.name.split("-")[0].lower() for p in site_packages.iterdir()}
    assert "granian" in installed and "starlette" in installed
    assert not installed & set(DEV_TOOLS)
    # The command works from anywhere, as an installed one does.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = checkout / ".venv" / "bin" / "comptoir"
    (elsewhere / "index.html").write_text("hi")
    (elsewhere / "sites.toml").write_text('[[site]]\nkind = "static"\nroot = "."\ndefault = true\n')
    done = subprocess.run(
        [str(command), "check"], cwd=elsewhere, capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("sites.toml: OK, 1 site")
