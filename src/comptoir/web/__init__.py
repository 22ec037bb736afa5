"""Templates (Jinja2, autoescaped) and static assets shared by every page comptoir renders."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import jinja2

from comptoir.web.page import page_state

STATIC_DIR = resources.files("comptoir.web") / "static"
# Every page links its CSS/JS under this path, answered by web/assets.py in front of every site.
ASSETS_PREFIX = "/.comptoir/"


@cache
def environment() -> jinja2.Environment:
    """The one Jinja2 environment: templates from the package, HTML always autoescaped."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("comptoir.web", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.globals["assets"] = ASSETS_PREFIX
    # The request's theme, CSRF token and login state (web/page.py); base.html calls it.
    env.globals["page_state"] = page_state
    return env


def render(template: str, **context: Any) -> str:
    """Render a template to a string."""
    return environment().get_template(template).render(**context)
