"""The web UI's composition root: templates, languages, middlewares, static files and pages, added to the
node's aiohttp application by one call, `setup_ui(app)`.

The UI is server-rendered HTML that works without JavaScript (officers may be on locked-down machines and
slow links) and reaches the node only through the same `node.*` components as the JSON API. Middlewares
run in this order, inside the node's own error and token middlewares:

1. `error_pages_middleware`: a refusal under `/ui/` becomes an HTML page, not JSON;
2. `session_middleware`: pages need a signed-in officer (administration pages an admin);
3. `csrf_middleware`: every POST under `/ui/` carries this browser's form token.

The security headers are added to every response of the application (`ui.headers`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import aiohttp_jinja2
import jinja2
from aiohttp import web

from ui import i18n
from ui.csrf import csrf_middleware
from ui.errors import error_pages_middleware
from ui.headers import install_security_headers
from ui.labels import label
from ui.pages_auth import add_auth_routes
from ui.pages_cases import add_case_routes
from ui.pages_dashboard import add_dashboard_routes
from ui.pages_directory import add_directory_routes
from ui.pages_new_case import add_new_case_routes
from ui.pages_notices import add_notice_routes
from ui.pages_peers import add_peer_routes
from ui.pages_profiles import add_profile_routes
from ui.pages_roster import add_roster_routes
from ui.pages_stats import add_stats_routes
from ui.pages_users import add_user_routes
from ui.sessions import session_middleware

TEMPLATES_DIR: Final = Path(__file__).parent / "templates"
STATIC_DIR: Final = Path(__file__).parent / "static"


def setup_ui(app: web.Application) -> None:
    """Add the web UI to the node's app; call before the app starts (aiohttp then freezes the middlewares)."""
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        default_helpers=False,
    )
    i18n.install(env)
    env.filters["label"] = label
    app.middlewares.append(error_pages_middleware)
    app.middlewares.append(session_middleware)
    app.middlewares.append(csrf_middleware)
    install_security_headers(app)
    add_dashboard_routes(app)
    add_auth_routes(app)
    add_new_case_routes(app)  # before the case routes: "new" would otherwise read as a case ID
    add_case_routes(app)
    add_directory_routes(app)
    add_profile_routes(app)
    add_peer_routes(app)
    add_roster_routes(app)
    add_stats_routes(app)
    add_notice_routes(app)
    add_user_routes(app)
    app.router.add_static("/ui/static/", STATIC_DIR, name="ui_static", append_version=False)
