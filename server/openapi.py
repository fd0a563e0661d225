"""/openapi.json, built from the route table and the msgspec wire types.

Nothing here is written by hand per route: paths, parameters, bodies,
answers and each route's scope come from `routing.Endpoint` declarations,
and every schema from msgspec, so the description cannot drift from the
code that serves it. The same msgspec types check what arrives: a
`minimum`, `enum` or `pattern` shown here is the one the server enforces.
A Struct's rule over several fields (exactly one of `run_ids` and `filter`)
is its `__post_init__` from models.core.given, which carries its own schema.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from .models import ErrorBody
from .auth import TICKET_PARAM
from .routing import YAML_MEDIA, Endpoint, OneOf, takes_ticket

_PATH_PARAM = re.compile(r"{(\w+)}")
_REF = "#/components/schemas/{name}"
_ERROR_TEXT = {
    400: "Bad request (malformed JSON, a bad stream id, ...)",
    401: "No token, or an unknown, expired or revoked one",
    403: "The token lacks the scope this call needs (details.required_scope), or the lease is not its own",
    404: "No such workflow, job or token",
    408: "The request did not arrive within BODY_TIMEOUT_SECS",
    409: "Conflict: the lease is lost or the job cancelled, the workflow still active, the worker id taken",
    413: "The body exceeds MAX_BODY_BYTES",
    415: "The body is not of an accepted media type",
    422: "Invalid body, query or document; details name the field",
    503: "Redis is not answering, or this process is at a limit (Retry-After)",
}
_SCOPE_TEXT = {
    "public": "No token needed.",
    "read": "Needs a token with the read scope (submit and admin include it).",
    "submit": "Needs a token with the submit scope (admin includes it).",
    "worker": "Needs a token with the worker scope (admin includes it).",
    "admin": "Needs a token with the admin scope.",
    "metrics": "Needs METRICS_TOKEN.",
    "lease": "Needs the lease's own run token, or the worker token that claimed the lease.",
}


def _errors(endpoint: Endpoint) -> list[int]:
    codes = set(endpoint.errors) | {408, 503}
    if endpoint.scope != "public":
        codes |= {401, 403}
    if endpoint.body is not None:
        codes |= {400, 413, 415, 422}
    if endpoint.params:
        codes.add(422)
    return sorted(codes)


# Escapes and groups that mean something else (or nothing) in ECMA-262, or
# differ in Unicode coverage: a declared pattern spells its classes out.
_NOT_PORTABLE = re.compile(r"\\[AZzbBsSdDwWpPN]|\(\?[aiLmsux#P<=!]|\$")


def portable(pattern: str) -> str:
    """A declared `^...\\Z` pattern as ECMA-262 reads it the same: `$` is the
    end of input there (Python's `$` would also match before a final
    newline, hence `\\Z` in the declaration)."""
    body = pattern[1:-2] if pattern.startswith("^") and pattern.endswith("\\Z") else None
    if body is None or _NOT_PORTABLE.search(body):
        raise ValueError(f"pattern {pattern!r} must be ^...\\Z over explicit character classes"
                         " (see models/core.py), so that it means the same in ECMA-262")
    return f"^{body}$"


def _portable_patterns(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                node[key] = portable(value)
            else:
                _portable_patterns(value)
    elif isinstance(node, list):
        for item in node:
            _portable_patterns(item)


def _structs(types: list[Any]) -> dict[str, type]:
    """Every Struct class the schemas name, by component name."""
    found: dict[str, type] = {}

    def visit(info: Any) -> None:
        if isinstance(info, msgspec.inspect.StructType):
            if info.cls.__name__ in found:
                return
            found[info.cls.__name__] = info.cls
            for field in info.fields:
                visit(field.type)
        elif isinstance(info, msgspec.inspect.Metadata):
            visit(info.type)
        elif isinstance(info, msgspec.inspect.UnionType):
            for member in info.types:
                visit(member)
        elif isinstance(info, msgspec.inspect.CollectionType):
            visit(info.item_type)
        elif isinstance(info, msgspec.inspect.TupleType):
            for member in info.item_types:
                visit(member)
        elif isinstance(info, msgspec.inspect.DictType):
            visit(info.value_type)

    for info in msgspec.inspect.multi_type_info(types):
        visit(info)
    return found


def _content(schema: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return {media: {"schema": schema}}


def build(endpoints: list[Endpoint], *, title: str, version: str) -> dict[str, Any]:
    types: list[Any] = [ErrorBody]
    for endpoint in endpoints:
        for t in (endpoint.body, endpoint.yaml, endpoint.response):
            if isinstance(t, OneOf):
                types += t.types
            elif t is not None:
                types.append(t)
        types += [p.type for p in endpoint.params]
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    schema_of = dict(zip(map(repr, types), schemas))
    # A Struct whose fields go together (given): its rule, as JSON Schema.
    for name, cls in _structs(types).items():
        rule = getattr(getattr(cls, "__post_init__", None), "json_schema", None)
        if rule is not None and name in components:
            components[name].update(rule)

    def schema(t: Any) -> dict[str, Any]:
        if isinstance(t, OneOf):
            return {"oneOf": [schema_of[repr(member)] for member in t.types]}
        return schema_of[repr(t)]

    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        declared = {p.name: p for p in e.params if p.where == "path"}
        parameters = [{"name": name, "in": "path", "required": True,
                       **({"description": declared[name].description, "schema": schema(declared[name].type)}
                          if name in declared else {"schema": {"type": "string"}})}
                      for name in _PATH_PARAM.findall(e.path)]
        parameters += [{"name": p.name, "in": p.where, "required": p.required, "description": p.description,
                        **({"content": _content(schema(p.type))} if p.json else {"schema": schema(p.type)}),
                        **({"style": "form", "explode": True} if p.free_form else {})}
                       for p in e.params if p.where != "path"]
        ok: dict[str, Any] = {"description": e.summary}
        if 300 <= e.status < 400:  # a redirect: no body, a Location
            ok["headers"] = {"Location": {"schema": {"type": "string"}}}
        elif e.stream:
            ok["content"] = _content({"type": "string"}, "text/event-stream")
        elif e.content:
            ok["content"] = {media: {"schema": {"type": "string"}} for media in e.content}
        elif e.status != 204:  # a 204 has no body at all
            ok["content"] = _content(schema(e.response) if e.response is not None else {})
        responses: dict[str, Any] = {str(e.status): ok}
        if e.created:
            responses["201"] = {**ok, "description": "Created: " + e.summary}
        for code in _errors(e):
            responses[str(code)] = {"description": _ERROR_TEXT.get(code, "Error"),
                                    "content": {"application/json": {"schema": schema(ErrorBody)}}}
        op: dict[str, Any] = {
            "operationId": f"{e.method.lower()}{re.sub(r'[^A-Za-z0-9]+', '_', e.path).rstrip('_')}",
            "summary": e.summary,
            "description": _SCOPE_TEXT[e.scope] if "|" not in e.scope else
            "Needs a token with one of these scopes: " + ", ".join(e.scope.split("|")) + ".",
            "tags": [e.tag] if e.tag else [],
            "parameters": parameters,
            "responses": responses,
            "security": [] if e.scope == "public" else [{"bearer": []}, {"ticket": []}] if takes_ticket(e)
            else [{"bearer": []}],
            "x-rota-scope": e.scope,
        }
        if e.body is not None:
            # A YAML body is described by the document it parses to.
            json_body, yaml_body = schema(e.body), schema(e.yaml if e.yaml is not None else e.body)
            op["requestBody"] = {
                "required": e.body_required,
                "content": {media: {"schema": yaml_body if media in YAML_MEDIA else json_body} for media in e.media},
            }
        paths.setdefault(e.path, {})[e.method.lower()] = op
    spec = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "rota: pull-based worker-lease job queue. Errors are "
                                "{\"error\": {\"code\", \"message\", \"details\"}}."},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "An API token (rota_...), the admin token,"
                                                          " or a lease's run token (rotr_...)"},
                                "ticket": {"type": "apiKey", "in": "query", "name": TICKET_PARAM,
                                           "description": "A stream ticket (rots_..., POST /api/stream-tickets):"
                                                          " opens the one event stream it was issued for"}},
        },
    }
    spec = msgspec.json.decode(msgspec.json.encode(spec))  # (schemas shared by reference, copied apart)
    _portable_patterns(spec)
    return spec
