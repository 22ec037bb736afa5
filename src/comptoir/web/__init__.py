"""Templates (Jinja2, autoescaped) and static assets shared by every page comptoir renders."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from comptoir.web.page import page_state

if TYPE_CHECKING:
    import jinja2

STATIC_DIR = resources.files("comptoir.web") / "static"
# Every page links its CSS/JS under this path, answered by web/assets.py in front of every site.
ASSETS_PREFIX = "/.comptoir/"


@cache
def environment() -> jinja2.Environment:
    """The one Jinja2 environment: templates from the package, HTML always autoescaped.

    Jinja2 is imported at the first page (0.1 to 0.2 s): a worker whose first answers are no
    page (a row of an api site, an echo) starts that much sooner."""
    import jinja2

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
