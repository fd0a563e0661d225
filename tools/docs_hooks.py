"""MkDocs hook (mkdocs.yml `hooks:`): the parts of the manual that are read
from the code at build time rather than kept by hand.

`<!-- rota:routes -->` in a page becomes the route table, rendered from the
document the server answers at /openapi.json (itself built from the route
table in server/routing.py), one table per tag; `<!-- rota:routes tag="in-job
sdk" -->` the table of one tag only. `<!-- rota:schemas -->` (on the HTTP API
page, which the tables link to) lists the wire types they name. The
hand-written prose around them (error codes, claims, leases, SSE...) stays in
the page.

On the design page, the hand-written tables of Redis keys and channels
right after `<!-- rota:redis-keys -->` and `<!-- rota:redis-channels -->`
gain the columns read from the code (tools/redis_keys.py): the scripts that
touch each key and the modules reading it, the scripts publishing on each
channel.
"""

from __future__ import annotations

import json
import re
import sys
from functools import cache
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # MkDocs loads this file by its path
    sys.path.insert(0, str(ROOT))

from tools import redis_keys  # noqa: E402

ROUTES_MARK = re.compile(r'<!-- rota:routes(?: tag="([^"]+)")? -->')
SCHEMAS_MARK = "<!-- rota:schemas -->"
SCHEMAS_PAGE = "http-api.md"
KEYS_MARK = "<!-- rota:redis-keys -->"
CHANNELS_MARK = "<!-- rota:redis-channels -->"

# Answers every route may give, explained once above the table rather than
# repeated on every row: 401 and 403 (any route needing a token), 408 and 503.
_COMMON_ERRORS = {"401", "403", "408", "503"}
_INLINE_FIELDS = 6  # a body or answer with more fields links to its schema only


@cache
def openapi_document() -> dict[str, Any]:
    """What GET /openapi.json answers, from an app built with the default
    settings (no Redis is contacted: the document is built with the app)."""
    from server.app import create_app
    from server.settings import Settings

    return json.loads(create_app(Settings.from_env({})).state.openapi)


def _ref_name(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[-1] if ref else None


def schema_anchor(name: str) -> str:
    return "schema-" + name.lower().strip("_")


class _Renderer:
    """Markdown for one page: `base` is where the schema list is ("" on its
    own page, else that page's file)."""

    def __init__(self, doc: dict[str, Any], base: str):
        self.doc, self.base = doc, base
        self.components = doc["components"]["schemas"]

    def link(self, name: str) -> str:
        return f"[`{name}`]({self.base}#{schema_anchor(name)})"

    def type_text(self, schema: dict[str, Any]) -> str:
        """A schema as a short type: `text`, `[LogChunk]`, `{text: text}`, a link..."""
        name = _ref_name(schema)
        if name:
            return self.link(name)
        if "anyOf" in schema or "oneOf" in schema:
            return " or ".join(self.type_text(s) for s in schema.get("anyOf", schema.get("oneOf")))
        if "enum" in schema:
            return " \\| ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
        kind = schema.get("type")
        if kind == "array":
            return "[" + self.type_text(schema.get("items", {})) + "]"
        if kind == "object" and "properties" not in schema:
            values = schema.get("additionalProperties")
            return "{text: " + self.type_text(values) + "}" if isinstance(values, dict) else "object"
        return {"string": "text", "integer": "integer", "number": "number", "boolean": "boolean",
                "null": "`null`", None: "any JSON"}.get(kind, str(kind))

    def shape(self, schema: dict[str, Any]) -> str:
        """A body or an answer: its type, and its fields when there are few."""
        name = _ref_name(schema)
        if name and name in self.components:
            props = self.components[name].get("properties", {})
            required = set(self.components[name].get("required", []))
            if 0 < len(props) <= _INLINE_FIELDS:
                fields = ", ".join(p if p in required else p + "?" for p in props)
                return f"{self.link(name)} `{{{fields}}}`"
            return self.link(name)
        if "anyOf" in schema or "oneOf" in schema:
            return " or ".join(self.shape(s) for s in schema.get("anyOf", schema.get("oneOf")))
        return self.type_text(schema)

    def body_cell(self, op: dict[str, Any]) -> str:
        parts = []
        body = op.get("requestBody")
        if body:
            media = list(body["content"])
            shape = self.shape(body["content"][media[0]]["schema"])
            if any("yaml" in m for m in media):
                shape += " (JSON or YAML)"
            parts.append(shape if body.get("required") else shape + " (optional)")
        parts += [f"header `{p['name']}`" for p in op.get("parameters", []) if p["in"] == "header"]
        return "; ".join(parts)

    def success_cell(self, op: dict[str, Any]) -> str:
        status = next(code for code in op["responses"] if code[0] in "23")
        content = op["responses"][status].get("content", {})
        if status.startswith("3"):
            return f"{status} redirect"
        if "text/event-stream" in content:
            return f"{status} `text/event-stream`"
        if content and "application/json" not in content:
            return f"{status} " + ", ".join(f"`{media}`" for media in content)
        schema = content.get("application/json", {}).get("schema", {})
        return f"{status} {self.shape(schema)}" if schema else status

    def routes(self, only_tag: str | None = None) -> str:
        """One table per tag, in the order the server declares its routes."""
        by_tag: dict[str, list[str]] = {}
        for path, ops in self.doc["paths"].items():
            for method, op in ops.items():
                tag = op["tags"][0] if op["tags"] else "other"
                if only_tag is not None and tag != only_tag:
                    continue
                errors = ", ".join(c for c in op["responses"] if c[0] in "45" and c not in _COMMON_ERRORS)
                row = " | ".join([method.upper(), _path_cell(path, op), op["x-rota-scope"].replace("|", " or "),
                                  op["summary"].replace("|", "\\|"), self.body_cell(op), self.success_cell(op),
                                  errors])
                by_tag.setdefault(tag, []).append(f"| {row} |")
        if only_tag is not None and not by_tag:
            raise ValueError(f"no route is tagged {only_tag!r}")
        out = []
        for tag, rows in by_tag.items():
            if only_tag is None:
                out += [f"### {tag[0].upper() + tag[1:]}", ""]
            out += ["| Method | Path | Scope | What it does | Body | Success | Errors |",
                    "|---|---|---|---|---|---|---|", *rows, ""]
        return "\n".join(out)

    def schemas(self) -> str:
        """Every wire type the routes name, with its fields (`?`: may be left out)."""
        out = []
        for name, schema in sorted(self.components.items(), key=lambda kv: kv[0].lower()):
            required = set(schema.get("required", []))
            fields = ", ".join(f"`{p}{'' if p in required else '?'}` {self.type_text(s)}"
                               for p, s in schema.get("properties", {}).items())
            about = " " + schema["description"].strip() if schema.get("description") else ""
            out.append(f"- **`{name}`**{{ #{schema_anchor(name)} }}:{about} {fields or self.type_text(schema)}")
        return "\n".join(out) + "\n"


def _path_cell(path: str, op: dict[str, Any]) -> str:
    query = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
    return f"`{path}" + ("?" + "&".join(query) if query else "") + "`"


def table_after(markdown: str, mark: str) -> list[str]:
    """The lines of the table right after `mark` (header, rule, rows)."""
    lines = markdown[markdown.index(mark) + len(mark):].lstrip("\n").split("\n")
    end = next((i for i, line in enumerate(lines) if not line.startswith("|")), len(lines))
    return lines[:end]


def row_families(markdown: str, mark: str) -> list[str]:
    """The key (or channel) family each row of the table after `mark` names."""
    return [redis_keys.family(re.search(r"`([^`]+)`", row).group(1))
            for row in table_after(markdown, mark)[2:]]


def _extend_table(markdown: str, mark: str, headers: list[str],
                  cells: Callable[[str], list[str]]) -> str:
    table = table_after(markdown, mark)
    out = [table[0] + "".join(f" {h} |" for h in headers), table[1] + "---|" * len(headers)]
    for row, family in zip(table[2:], row_families(markdown, mark)):
        out.append(row + "".join(f" {cell} |" for cell in cells(family)))
    return markdown.replace(mark + "\n" + "\n".join(table), "\n".join(out), 1)


def _names(names: list[str]) -> str:
    return ", ".join(f"`{name}`" for name in names) or "none"


def render(markdown: str, page_file: str) -> str:
    """`markdown` with its marks replaced; `page_file` is its path under docs/."""
    if KEYS_MARK in markdown or CHANNELS_MARK in markdown:
        model = redis_keys.model()
        if KEYS_MARK in markdown:
            markdown = _extend_table(markdown, KEYS_MARK, ["Scripts", "Read directly by"], lambda f: [
                _names(model.keys.get(f, [])), _names(model.readers.get(f, []))])
        if CHANNELS_MARK in markdown:
            markdown = _extend_table(markdown, CHANNELS_MARK, ["Published by"],
                                     lambda f: [_names(model.channels.get(f, []))])
    if ROUTES_MARK.search(markdown) or SCHEMAS_MARK in markdown:
        renderer = _Renderer(openapi_document(), "" if page_file == SCHEMAS_PAGE else SCHEMAS_PAGE)
        markdown = ROUTES_MARK.sub(lambda m: renderer.routes(m.group(1)), markdown)
        markdown = markdown.replace(SCHEMAS_MARK, renderer.schemas())
    left = re.search(r"<!-- rota:.*?-->", markdown)
    if left:  # a mistyped mark, or one not right above its table, would vanish silently
        raise ValueError(f"{page_file}: {left.group(0)} was not replaced")
    return markdown


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return render(markdown, page.file.src_uri)
