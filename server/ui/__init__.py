"""The operator's dashboard, served under /ui by the server itself.

No build step and nothing from elsewhere (it works air-gapped): Jinja2
renders each page's shell (layout, navigation, an empty skeleton) and
small hand-written ES modules in static/ fetch the JSON API with the
operator's token and draw the data. No datum is ever put into HTML on the
server: a browser navigation carries no Authorization header, so the
shells are public and hold nothing, and every value comes from the API
under the token's own scope. Every /ui answer carries a strict
Content-Security-Policy (headers.py): no inline script or style, no other
origin.

A page is one entry in pages.PAGES, one template and one module
(static/page-<name>.js); the navigation is built from the list.
"""

from __future__ import annotations

from .headers import UiHeaders
from .pages import endpoints

__all__ = ["UiHeaders", "endpoints"]
