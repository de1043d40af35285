"""FastAPI dependencies shared by the routers: API key scopes, the snapshot, errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from serving.auth import KeyRing, Principal
from serving.state import Snapshot

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="API key as a bearer token: `Authorization: Bearer <key>`.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]

UNAUTHENTICATED = HTTPException(
    status_code=401, detail="not authenticated", headers={"WWW-Authenticate": "Bearer"}
)
FORBIDDEN = HTTPException(status_code=403, detail="forbidden")


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting keys that hold ``scope`` (401 unknown key, 403 no scope)."""

    async def check(request: Request, credentials: Credentials) -> Principal:
        if credentials is None:
            raise UNAUTHENTICATED
        ring: KeyRing = request.app.state.keyring
        principal = ring.lookup(credentials.credentials)
        if principal is None:
            raise UNAUTHENTICATED
        if scope not in principal.scopes:
            raise FORBIDDEN
        return principal

    check.__name__ = f"require_{scope}"
    return check


ReadKey = Annotated[Principal, Depends(require("read"))]
WriteKey = Annotated[Principal, Depends(require("write"))]


async def _snapshot(request: Request) -> Snapshot:
    return request.app.state.holder.snapshot  # type: ignore[no-any-return]


CurrentSnapshot = Annotated[Snapshot, Depends(_snapshot)]


def not_ready() -> HTTPException:
    return HTTPException(status_code=503, detail="no forecasts loaded yet; see /readyz")


def invalid(where: Sequence[str | int], msg: str, value: Any = None) -> RequestValidationError:
    """A 422 in FastAPI's own shape, naming the parameter (``["query", "horizon"]``)."""
    return RequestValidationError(
        [{"loc": tuple(where), "msg": msg, "type": "value_error", "input": value}]
    )


_QUERY_NAMES: dict[int, frozenset[str]] = {}


def _query_names(dependant: Any) -> set[str]:
    """Query parameter names of a route's dependency tree (its own and its dependencies')."""
    out = {p.alias for p in getattr(dependant, "query_params", [])}
    for sub in getattr(dependant, "dependencies", []):
        out |= _query_names(sub)
    return out


async def no_unknown_query(request: Request) -> None:
    """422 for a query parameter the route does not take (``?horizn=48`` is a typo, not a
    request for the default horizon)."""
    if not request.scope["query_string"]:
        return
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    names = _QUERY_NAMES.get(id(route))
    if names is None:
        names = frozenset(_query_names(dependant))
        _QUERY_NAMES[id(route)] = names
    for key in request.query_params:
        if key not in names:
            expected = ", ".join(sorted(names)) or "none"
            raise invalid(["query", key], f"unknown query parameter; expected: {expected}", key)


NoUnknownQuery = Depends(no_unknown_query)
