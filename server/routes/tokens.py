"""API token management (admin scope): create, list, revoke."""

from __future__ import annotations

from starlette.requests import Request

from ..http import JSON, decode_body, page_params
from ..models import TokenCreate, TokenCreated, TokenOut
from ..routing import Endpoint


async def create_token(request: Request) -> JSON:
    req = await decode_body(request, TokenCreate)
    record, token = await request.app.state.tokens.create(req.name, list(req.scopes), req.expires_in_secs)
    out = record.out()
    return JSON(TokenCreated(token=token, **{f: getattr(out, f) for f in out.__struct_fields__}), status_code=201)


async def list_tokens(request: Request) -> JSON:
    limit, offset = page_params(request)
    return JSON([record.out() for record in await request.app.state.tokens.list(limit, offset)])


async def revoke_token(request: Request) -> JSON:
    token_id = request.path_params["token_id"]
    record = await request.app.state.tokens.revoke(token_id)
    # This replica at once; the others when the revocation reaches them
    # over pub/sub, a moment later.
    request.app.state.auth.revoked(token_id)
    return JSON(record.out())


endpoints = [
    Endpoint("POST", "/api/tokens", create_token, "admin",
             "Create an API token; its secret is in this answer only", body=TokenCreate, body_required=True,
             status=201, response=TokenCreated, errors=(400, 422), tag="tokens"),
    Endpoint("GET", "/api/tokens", list_tokens, "admin", "List API tokens (no secrets), newest first",
             response=list[TokenOut], params=page_params.params, errors=(422,), tag="tokens"),
    Endpoint("DELETE", "/api/tokens/{token_id}", revoke_token, "admin", "Revoke a token, on every replica",
             response=TokenOut, errors=(404,), tag="tokens"),
]
