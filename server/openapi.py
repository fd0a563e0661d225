"""/openapi.json, built from the route table and the msgspec wire types.

Nothing here is written by hand per route: paths, parameters, bodies,
answers and each route's scope come from `routing.Endpoint` declarations,
and every schema from msgspec, so the description cannot drift from the
code that serves it.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from .models import ErrorBody
from .routing import YAML_MEDIA, Endpoint

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


def build(endpoints: list[Endpoint], *, title: str, version: str) -> dict[str, Any]:
    types: list[Any] = [ErrorBody]
    for endpoint in endpoints:
        for t in (endpoint.body, endpoint.response):
            if t is not None:
                types.append(t)
        types += [p.type for p in endpoint.params]
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    schema_of = dict(zip(map(repr, types), schemas))

    def schema(t: Any) -> dict[str, Any]:
        return schema_of[repr(t)]

    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                      for name in _PATH_PARAM.findall(e.path)]
        parameters += [{"name": p.name, "in": p.where, "required": p.required, "description": p.description,
                        "schema": schema(p.type)} for p in e.params]
        if e.stream:
            ok: dict[str, Any] = {"text/event-stream": {"schema": {"type": "string"}}}
        elif e.content:
            ok = {media: {"schema": {"type": "string"}} for media in e.content}
        else:
            ok = {"application/json": {"schema": schema(e.response) if e.response is not None else {}}}
        if 300 <= e.status < 400:  # a redirect: no body, a Location
            answer: dict[str, Any] = {"description": e.summary,
                                      "headers": {"Location": {"schema": {"type": "string"}}}}
        else:
            answer = {"description": e.summary, "content": ok}
        responses: dict[str, Any] = {str(e.status): answer}
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
            "security": [] if e.scope == "public" else [{"bearer": []}],
            "x-rota-scope": e.scope,
        }
        if e.body is not None:
            body_schema = schema(e.body)
            op["requestBody"] = {
                "required": e.body_required,
                "content": {media: {"schema": {"type": "string"} if media in YAML_MEDIA else body_schema}
                            for media in e.media},
            }
        paths.setdefault(e.path, {})[e.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "rota: pull-based worker-lease job queue. Errors are "
                                "{\"error\": {\"code\", \"message\", \"details\"}}."},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "An API token (rota_...), the admin token,"
                                                          " or a lease's run token (rotr_...)"}},
        },
    }
