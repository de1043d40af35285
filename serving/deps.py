"""FastAPI dependencies shared by the routers: API key scopes, the snapshot, errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from serving.auth import FailedAuthLimiter, KeyRing, Principal
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


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """The caller's principal, or 401; 429 (``Retry-After``) for a client address that
    failed too often lately (see :class:`serving.auth.FailedAuthLimiter`).

    The result is kept on the request, so a second dependency asking again costs nothing
    and a failure is counted once.
    """
    done = getattr(request.state, "principal", None)
    if done is not None:
        return done  # type: ignore[no-any-return]
    limiter: FailedAuthLimiter | None = getattr(request.app.state, "auth_limiter", None)
    client = _client(request)
    if limiter is not None:
        wait = limiter.retry_after(client)
        if wait is not None:
            raise HTTPException(
                status_code=429,
                detail="too many failed authentications; try again later",
                headers={"Retry-After": str(wait)},
            )
    ring: KeyRing = request.app.state.keyring
    principal = ring.lookup(credentials.credentials) if credentials is not None else None
    if principal is None:
        if limiter is not None and credentials is not None:
            limiter.failed(client)  # a wrong key (a missing one guesses nothing)
        raise UNAUTHENTICATED
    request.state.principal = principal
    return principal


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting keys that hold ``scope`` (401 unknown key, 403 no scope)."""

    async def check(request: Request, credentials: Credentials) -> Principal:
        principal = authenticate(request, credentials)
        if scope not in principal.scopes:
            raise FORBIDDEN
        return principal

    check.__name__ = f"require_{scope}"
    check.needs_key = True  # type: ignore[attr-defined]
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


def _needs_key(dependant: Any) -> bool:
    """Whether a route's dependency tree asks for an API key (:func:`require`)."""
    if getattr(getattr(dependant, "call", None), "needs_key", False):
        return True
    return any(_needs_key(sub) for sub in getattr(dependant, "dependencies", []))


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
            if _needs_key(dependant):
                # Authenticate first: the answer lists the route's parameter names.
                authenticate(request, await _bearer(request))
            expected = ", ".join(sorted(names)) or "none"
            raise invalid(["query", key], f"unknown query parameter; expected: {expected}", key)


NoUnknownQuery = Depends(no_unknown_query)
