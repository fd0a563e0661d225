"""The dashboard as the server serves it (no browser here: tests/test_dashboard.py
drives one): every /ui answer carries the strict CSP and its companions, the
shells hold no data and no inline script or style, every file a page names
exists, and the scripts never write HTML from data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.ui import headers as ui_headers
from server.ui import pages as ui_pages

STATIC = Path(ui_pages.__file__).parent / "static"
TEMPLATES = Path(ui_pages.__file__).parent / "templates"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
       " font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def assert_locked_down(resp) -> None:
    assert resp.headers["content-security-policy"] == CSP
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["referrer-policy"] == "no-referrer"


def concrete(path: str) -> str:
    return path.replace("{run_id}", "some-run").replace("{wf}", "some-workflow")


async def test_root_redirects_to_the_dashboard(api):
    resp = await api.get("/", follow_redirects=False)
    assert resp.status_code == 307 and resp.headers["location"] == "/ui"
    assert_locked_down(resp)


@pytest.mark.parametrize("page", ui_pages.PAGES, ids=lambda p: p.name)
async def test_every_page_is_a_shell_under_the_csp(api, page):
    resp = await api.get(concrete(page.path))
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    assert_locked_down(resp)
    html = resp.text
    assert f'src="/ui/static/page-{page.name}.js"' in html
    # nothing inline: every script has a src, no style attribute or element, no handler
    assert not re.search(r"<script(?![^>]*\ssrc=)", html), "inline script"
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=", html, re.IGNORECASE)
    # nothing from elsewhere
    assert not re.search(r"""(src|href)=["'](https?:)?//""", html)
    for nav in ui_pages.NAV:
        assert f'href="{nav.path}"' in html


async def test_pages_need_no_token_and_show_no_data(auth_api):
    """A browser navigation carries no Authorization header: the shells are
    public, and hold nothing the API would refuse a stranger."""
    resp = await auth_api.get("/ui/runs/some-run")
    assert resp.status_code == 200 and "some-run" not in resp.text
    assert (await auth_api.get("/api/runs")).status_code == 401


@pytest.mark.parametrize("name", sorted(ui_pages.STATIC))
async def test_every_file_is_served_with_its_type_and_the_csp(api, name):
    resp = await api.get(f"/ui/static/{name}")
    assert resp.status_code == 200
    assert_locked_down(resp)
    expected = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml", "png": "image/png"}
    assert resp.headers["content-type"].startswith(expected[name.rsplit(".", 1)[1]])
    again = await api.get(f"/ui/static/{name}", headers={"If-None-Match": resp.headers["etag"]})
    assert again.status_code == 304


@pytest.mark.parametrize("path", ["/ui/static/nope.js", "/ui/static/..%2Fpages.py", "/ui/static/pages.py",
                                  "/ui/nowhere", "/ui/static/"])
async def test_anything_else_under_ui_is_404_with_the_csp(api, path):
    resp = await api.get(path)
    assert resp.status_code == 404
    assert_locked_down(resp)


async def test_api_answers_carry_no_dashboard_headers(api):
    resp = await api.get("/healthz")
    assert "content-security-policy" not in resp.headers


def test_every_page_has_its_template_and_module():
    for page in ui_pages.PAGES:
        assert (TEMPLATES / f"{page.name}.html").exists(), page.name
        assert f"page-{page.name}.js" in ui_pages.STATIC, page.name


def test_every_module_imported_exists():
    for path in STATIC.glob("*.js"):
        for name in re.findall(r'from "\./([\w-]+\.js)"', path.read_text()):
            assert (STATIC / name).exists(), (path.name, name)


def test_no_script_writes_html_from_data():
    """Text goes in as text. The one exception parses the server's sanitised
    Markdown in an inert template and rebuilds it from an allow-list."""
    offenders = []
    for path in STATIC.glob("*.js"):
        for line in path.read_text().splitlines():
            if re.search(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function",
                         line) and "template.innerHTML = html;" not in line:
                offenders.append(f"{path.name}: {line.strip()}")
            if re.search(r"\.style\.|setAttribute\(\s*[\"']style", line):
                offenders.append(f"{path.name}: {line.strip()}")
    assert not offenders


def test_the_csp_is_the_one_documented():
    assert ui_headers.CSP == CSP


# ---- the dashboard's own writes ---------------------------------------------------------

WORKFLOW = {"name": "w", "jobs": [{"id": "a", "command": "true"}]}


async def test_the_dashboards_own_writes_pass_the_cross_origin_guard(api):
    """A browser sends Origin on its own page's POSTs too: an Origin naming
    the very host the request is for is the dashboard itself."""
    for host, origin in (("localhost", "http://localhost"), ("127.0.0.1:3000", "http://127.0.0.1:3000"),
                         ("localhost:8443", "https://localhost:8443")):
        resp = await api.post("/api/workflows", json=WORKFLOW, headers={"Host": host, "Origin": origin})
        assert resp.status_code == 201, (host, origin, resp.text)
    # another port is another origin
    resp = await api.post("/api/workflows", json=WORKFLOW, headers={"Host": "localhost:3000",
                                                                   "Origin": "http://localhost:3001"})
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "cross_origin_refused"


async def test_same_origin_writes_with_any_host_need_auth(redis, settings):
    """With ALLOWED_HOSTS open (a public address) a page may rebind its own
    name to this server, and its requests then look same-origin: only a
    token (which no page can send by itself) makes them harmless, so with
    auth off such a server still wants the origin in CORS_ORIGINS."""
    from tests.test_hardening import app_client

    _, client = await app_client(redis, settings, allowed_hosts=None)
    try:
        resp = await client.post("/api/workflows", json=WORKFLOW,
                                 headers={"Host": "rebound.example", "Origin": "http://rebound.example"})
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "cross_origin_refused"
    finally:
        await client.aclose()
    _, client = await app_client(redis, settings, allowed_hosts=None, auth=True, admin_token="a" * 40)
    try:
        resp = await client.post("/api/workflows", json=WORKFLOW, headers={
            "Host": "rota.example", "Origin": "https://rota.example", "Authorization": "Bearer " + "a" * 40})
        assert resp.status_code == 201, resp.text
    finally:
        await client.aclose()
