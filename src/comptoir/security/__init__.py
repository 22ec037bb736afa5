"""Security pieces: capability tokens, TLS (local CA), passwords and sessions, headers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from comptoir.config import ServerOptions
    from comptoir.state import StateStore
    from comptoir.types import ASGIApp


def secure_site(
    app: ASGIApp,
    options: ServerOptions,
    store: StateStore,
    assets: ASGIApp | None = None,
    site: str = "",
) -> ASGIApp:
    """Wrap one site: security headers → theme switch and `assets` → password gate (if set).

    `site` is the site's name: its session cookie is named after it."""
    # Imported here: `comptoir.security.capability` must stay cheap to import on its own.
    from comptoir.security.auth import LOGIN_PATH, LOGOUT_PATH, AuthSettings, PasswordGate
    from comptoir.security.headers import SecurityHeaders
    from comptoir.web.theme import ThemeSwitch

    secure = options.tls or options.cert is not None
    passed: tuple[bytes, ...] = ()
    if options.password_hash:
        passed = (LOGIN_PATH, LOGOUT_PATH)
        settings = AuthSettings(
            password_hash=options.password_hash,
            secure=secure,
            idle=options.session_idle,
            absolute=options.session_max,
            site=site,
        )
        app = PasswordGate(app, settings, store)
    app = ThemeSwitch(app, secure=secure, assets=assets, passed=passed)
    return SecurityHeaders(app, hsts=options.cert is not None)
