"""The dashboard's pages (each a shell: layout, navigation, an empty
skeleton) and its static files, as routes of the one route table."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from ..errors import NotFound
from ..routing import Endpoint, Param

HERE = Path(__file__).resolve().parent
_templates = Jinja2Templates(directory=str(HERE / "templates"))


@dataclass(frozen=True)
class Page:
    name: str  # its template (<name>.html) and module (static/page-<name>.js)
    title: str
    path: str
    section: str = ""  # the navigation entry it belongs to; "": its own
    nav: bool = True

    @property
    def current(self) -> str:
        return self.section or self.name


# The navigation, in order, then the pages reached from it. A page is one
# entry here, a template and a module.
PAGES = [
    Page("runs", "Runs", "/ui"),
    Page("workflows", "Workflows", "/ui/workflows"),
    Page("schedules", "Schedules", "/ui/schedules"),
    Page("workers", "Workers", "/ui/workers"),
    Page("queues", "Queues", "/ui/queues"),
    Page("groups", "Groups", "/ui/groups"),
    Page("dead-letters", "Dead letters", "/ui/dead-letters"),
    Page("run", "Run", "/ui/runs/{run_id}", section="runs", nav=False),
    Page("workflow", "Workflow", "/ui/workflows/{wf}", section="workflows", nav=False),
]
NAV = [p for p in PAGES if p.nav]

# ---- static files --------------------------------------------------------------------

_MEDIA = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".svg": "image/svg+xml", ".png": "image/png"}
# One flat directory: a file's name is all its URL holds.
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*\.(js|css|svg|png)\Z")


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    media_type: str
    etag: str


def _load_static() -> dict[str, StaticFile]:
    """Every file, read once: they are small, and a release never changes them."""
    out = {}
    for path in sorted((HERE / "static").iterdir()):
        if _NAME.match(path.name):
            body = path.read_bytes()
            out[path.name] = StaticFile(body, _MEDIA[path.suffix], '"' + hashlib.sha256(body).hexdigest()[:20] + '"')
    return out


STATIC = _load_static()


async def static_file(request: Request) -> Response:
    name = request.path_params["file"]
    found = STATIC.get(name)
    if found is None:
        raise NotFound("not_found", f"no dashboard file {name!r}")
    # Revalidated on every load (a 304 is cheap): a new release's modules
    # never mix with an old one's from the cache.
    headers = {"ETag": found.etag, "Cache-Control": "no-cache"}
    if found.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)


def static_url(name: str) -> str:
    if name not in STATIC:
        raise KeyError(f"no static file {name}")  # a template naming a missing file fails its test
    return f"/ui/static/{name}"


# ---- pages --------------------------------------------------------------------------


def _page_handler(page: Page):
    async def shell(request: Request) -> Response:
        return _templates.TemplateResponse(
            request, f"{page.name}.html", {"page": page, "nav": NAV, "static": static_url},
            headers={"Cache-Control": "no-cache"})

    shell.__name__ = f"page_{page.name.replace('-', '_')}"
    return shell


async def home(request: Request) -> Response:
    return RedirectResponse("/ui", status_code=307)


_HTML = ("text/html",)
# A page's address may carry its own state (filters, a cursor), which its
# script reads; the server serves the same shell whatever it holds.
_STATE = Param("state", dict[str, str], "the page's own state, read by its script (any query parameters)")
endpoints = [
    Endpoint("GET", "/", home, "public", "The dashboard's address: redirects to /ui", status=307, tag="dashboard"),
] + [
    Endpoint("GET", page.path, _page_handler(page), "public",
             f"Dashboard page: {page.title.lower()} (a shell holding no data; it reads the API with the"
             " operator's token)", content=_HTML, tag="dashboard", params=(_STATE,))
    for page in PAGES
] + [
    Endpoint("GET", "/ui/static/{file}", static_file, "public", "The dashboard's scripts, styles and images",
             content=tuple(sorted(set(_MEDIA.values()))), errors=(404,), tag="dashboard"),
]
