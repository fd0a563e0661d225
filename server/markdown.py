"""Markdown written by jobs (a run's notes), rendered for the dashboard.

Jobs are untrusted, so two walls: markdown-it-py with raw HTML off (a tag
in the text stays text) and its link check (no javascript:, vbscript:,
file: or data: links); then nh3 (the Rust ammonia sanitiser) keeps only
the tags and attributes below, with http(s) and mailto links, whatever the
renderer let through. No images: a note has no business making a reader's
browser fetch anything (the dashboard's CSP would block it anyway).
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"])
_TAGS = {"p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "s", "del", "code",
         "pre", "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td"}
_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
_SCHEMES = {"http", "https", "mailto"}


# Notes rarely change while a page re-reads them: the last ones rendered
# are kept (a note is at most 64 KiB of Markdown).
@lru_cache(maxsize=128)
def render(markdown: str) -> str:
    """Sanitised HTML of `markdown`."""
    return nh3.clean(_md.render(markdown), tags=_TAGS, attributes=_ATTRIBUTES, url_schemes=_SCHEMES,
                     link_rel="noopener noreferrer nofollow", strip_comments=True)
