"""GET /api/runs/{run_id}/notes, on both stores: a run's Markdown notes
(written by its jobs, so untrusted) rendered to HTML that is safe to show:
no raw HTML, no script links, no event handlers, no images; the text of
anything refused is shown, escaped."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from server.markdown import render
from tests.test_api import assert_error
from tests.test_auth import ADMIN, bearer, make_token
from tests.test_sdk import ok, running, url

HOSTILE = """# Report <script>window.__pwned=1</script>

[click](javascript:window.__pwned=1) [again](JaVaScRiPt:alert(1)) [v](vbscript:x) [f](file:///etc/passwd)
[d](data:text/html,<script>alert(1)</script>)
<img src=x onerror="window.__pwned=1">
"><img src=x onerror=alert(1)>
![pixel](https://tracker.example/p.png)
<a href="javascript:alert(1)">raw</a>
[ok](https://example.com/a?b=1&c=2)

| col | `code` |
|-----|--------|
| **bold** | ~~gone~~ |
"""


class Elements(HTMLParser):
    """Every element and attribute of an HTML text."""

    def __init__(self, html: str):
        super().__init__()
        self.found: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


def assert_inert(html: str) -> None:
    for tag, attrs in Elements(html).found:
        assert tag in SAFE_TAGS, (tag, html)
        assert set(attrs) <= {"href", "title", "rel", "start"}, (tag, attrs)
        if "href" in attrs:
            assert attrs["href"].startswith(("https://", "http://", "mailto:")), attrs


SAFE_TAGS = {"p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "s", "del", "code",
             "pre", "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td"}


def test_markdown_renders_and_refuses_what_could_run():
    html = render(HOSTILE)
    assert_inert(html)
    assert "<script" not in html and "<img" not in html
    # what was refused is still shown, as text
    assert "&lt;script&gt;" in html and "&lt;img src=x" in html
    assert '<a href="https://example.com/a?b=1&amp;c=2" rel="noopener noreferrer nofollow">ok</a>' in html
    assert "<table>" in html and "<strong>bold</strong>" in html and "<code>code</code>" in html
    assert "<h1>" in html


@pytest.mark.parametrize("text", ["", "plain", "a" * 65_536, "*" * 5000, "[" * 5000, "> " * 2000 + "deep"])
def test_markdown_of_any_text_renders(text):
    assert_inert(render(text))


async def test_a_runs_notes_come_rendered(api):
    claimed, run = await running(api)
    await ok(await api.post(url(claimed, "annotate"),
                            json={"markdown": HOSTILE, "style": "warning", "context": "report"}))
    await ok(await api.post(url(claimed, "annotate"), json={"markdown": "**fine**"}))
    notes = (await api.get(f"/api/runs/{run}/notes")).json()
    assert [(n["context"], n["style"]) for n in notes] == [("report", "warning"), ("default", "info")]
    assert notes[0]["markdown"] == HOSTILE
    assert_inert(notes[0]["html"])
    assert notes[1]["html"] == "<p><strong>fine</strong></p>\n" and notes[1]["job_id"] == "build"


async def test_a_run_without_notes_has_none(api):
    _, run = await running(api)
    assert (await api.get(f"/api/runs/{run}/notes")).json() == []


async def test_notes_of_an_unknown_run_are_404(api):
    assert_error(await api.get("/api/runs/nope/notes"), 404, "run_not_found")


async def test_notes_need_the_read_scope(auth_api):
    worker = await make_token(auth_api, "worker")
    assert_error(await auth_api.get("/api/runs/x/notes", headers=bearer(worker["token"])), 403, "forbidden")
    assert_error(await auth_api.get("/api/runs/x/notes", headers=ADMIN), 404, "run_not_found")
