"""The manual against the code: what a reader looks up in docs/ must be what
the server does. (`make test` also builds the site with `mkdocs build
--strict` first, which fails on a broken link or anchor.)"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from server.app import endpoints
from tools import docs_hooks

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CODE = re.compile(r"^[a-z]+(_[a-z]+)*$")
# Error-making calls whose first (or, for a status, second) argument is the code.
ERROR_HELPERS = {"error_response", "_canned", "_error", "__init__"}


def page(name: str) -> str:
    return (DOCS / name).read_text()


def rendered(name: str) -> str:
    return docs_hooks.render(page(name), name)


def test_every_route_is_in_the_generated_api_table():
    text = rendered("http-api.md")
    missing = [f"{e.method} {e.path}" for e in endpoints() if f"| {e.method} | `{e.path}" not in text]
    assert not missing, f"routes missing from the HTTP API page: {missing}"
    assert "<!-- rota:" not in text


def test_the_sdk_page_shows_the_sdk_routes_linking_the_schemas_page():
    text = rendered("sdk.md")
    sdk = [e for e in endpoints() if e.tag == "in-job sdk"]
    assert sdk and all(f"| {e.method} | `{e.path}" in text for e in sdk)
    assert "(http-api.md#schema-" in text and "<!-- rota:" not in text


def test_no_route_table_is_kept_by_hand():
    """Routes come from /openapi.json at build time: a hand-written row
    (a table row starting with a method) would drift from it."""
    row = re.compile(r"^\|\s*(GET|POST|PUT|DELETE|PATCH)\b", re.MULTILINE)
    for path in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        assert not row.search(path.read_text()), f"{path.name} keeps a route table by hand"


def _error_codes() -> dict[str, str]:
    """Every error code the server can answer, found in its source: the
    first code-like string given to an ApiError class or an error helper."""
    trees = {p: ast.parse(p.read_text()) for p in (ROOT / "server").rglob("*.py")}
    makers = {"ApiError"}
    grown = True
    while grown:
        grown = False
        for tree in trees.values():
            for node in ast.walk(tree):
                if (isinstance(node, ast.ClassDef) and node.name not in makers
                        and any(isinstance(b, ast.Name) and b.id in makers for b in node.bases)):
                    makers.add(node.name)
                    grown = True
    makers |= ERROR_HELPERS
    codes: dict[str, str] = {}
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name not in makers:
                continue
            for arg in node.args[:2]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and CODE.match(arg.value):
                    codes.setdefault(arg.value, str(path.relative_to(ROOT)))
                    break
    return codes


def test_every_error_code_is_documented():
    codes = _error_codes()
    assert {"lease_lost", "lease_settled", "workflow_active", "store_unavailable"} <= set(codes)
    text = page("http-api.md")
    missing = {code: where for code, where in codes.items() if f"`{code}`" not in text}
    assert not missing, f"error codes the HTTP API page does not list: {missing}"


def test_every_setting_is_documented():
    source = (ROOT / "server" / "settings.py").read_text()
    names = set(re.findall(r'env(?:\.get)?\(\s*"([A-Z][A-Z0-9_]+)"|\(env, "([A-Z][A-Z0-9_]+)"', source))
    names = {a or b for a, b in names}
    assert {"HOST", "REDIS_URL", "MAX_OUTPUT_BYTES"} <= names
    text = page("configuration.md")
    assert not sorted(n for n in names if f"`{n}`" not in text)


def test_the_readme_is_the_front_page():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    linked = set(re.findall(r"\]\(docs/([\w-]+\.md)", readme))
    pages = {p.name for p in DOCS.glob("*.md")} - {"index.md"}
    assert pages <= linked, f"pages the README does not point to: {sorted(pages - linked)}"
    for target, anchor in re.findall(r"\]\(docs/([\w-]+\.md)(?:#([\w-]+))?\)", readme):
        assert (DOCS / target).exists(), target
        if anchor:
            headings = re.findall(r"^#+ (.+)$", page(target), re.MULTILINE)
            slugs = {re.sub(r"[^\w\s-]", "", h).strip().lower().replace(" ", "-") for h in headings}
            assert anchor in slugs, f"README links {target}#{anchor}, which has no such heading"


def test_the_design_page_names_every_redis_key_and_channel():
    """The hand-written rows (what each key holds) against the keys the Lua
    scripts build; the site adds which scripts touch each (tools/redis_keys.py)."""
    from tools import redis_keys

    model, text = redis_keys.model(), page("design.md")
    rows = docs_hooks.row_families(text, docs_hooks.KEYS_MARK)
    assert len(rows) == len(set(rows)), "a key has two rows"
    assert {"rj:", "lease:", "ready:", "token:", "settled:"} <= set(model.keys)
    assert set(rows) == set(model.keys), (
        f"keys without a row: {sorted(set(model.keys) - set(rows))}; "
        f"rows no script builds: {sorted(set(rows) - set(model.keys))}")
    assert set(model.readers) <= set(model.keys), "the server reads a key no script writes"
    channels = docs_hooks.row_families(text, docs_hooks.CHANNELS_MARK)
    assert set(channels) == set(model.channels) == {"wake", "j:", "r:", "tokens"}
    rendered_page = rendered("design.md")
    assert "<!-- rota:" not in rendered_page and "| Scripts | Read directly by |" in rendered_page
    claimid = next(line for line in rendered_page.split("\n") if line.startswith("| `claimid:"))
    assert claimid.endswith("| `claim`, `claim_many` | none |")


def test_the_design_page_names_every_script():
    scripts = sorted(p.stem for p in (ROOT / "server" / "lua").glob("*.lua") if not p.stem.startswith("_"))
    text = page("design.md")
    assert not [s for s in scripts if f"`{s}`" not in text]
