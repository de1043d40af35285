"""Bearer API keys with ``read`` and ``write`` scopes.

Keys come from the environment (``FORECASTER_API_KEYS``, comma-separated) and from a keys
file of hashes. Only SHA-256 digests are kept in memory: a key presented by a client is
hashed and looked up, so the process never holds, compares or logs plaintext keys after
start. API keys are long random tokens, so a fast unsalted hash is enough (a slow password
hash would cost milliseconds per request and buy nothing against 128-bit secrets).

Failures say as little as possible: ``401 {"detail": "not authenticated"}`` for a missing,
malformed or unknown key and ``403 {"detail": "forbidden"}`` for a known key without the
scope, so a caller cannot probe which keys or scopes exist.

>>> ring = KeyRing.from_sources("reader-key,admin-key:write")
>>> ring.lookup("reader-key").scopes
frozenset({'read'})
>>> sorted(ring.lookup("admin-key").scopes)
['read', 'write']
>>> ring.lookup("nope") is None
True
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from features.exceptions import ConfigError

log = logging.getLogger(__name__)

SCOPES = ("read", "write")
_IMPLIED = {"read": frozenset({"read"}), "write": frozenset({"read", "write"})}


def hash_key(key: str) -> str:
    """The digest stored for ``key``: ``sha256:<hex>``.

    Use it to write a keys file line: ``NAME read+write sha256:<hex>``.
    """
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who called: the key's name (never the key) and its scopes."""

    name: str
    scopes: frozenset[str]

    def __repr__(self) -> str:
        return f"Principal(name={self.name!r}, scopes={sorted(self.scopes)})"


def _parse_scopes(text: str, where: str) -> frozenset[str]:
    out: set[str] = set()
    for part in text.replace(",", "+").split("+"):
        s = part.strip().lower()
        if not s:
            continue
        if s not in _IMPLIED:
            raise ConfigError(f"{where}: scope must be one of {list(SCOPES)}, got {s!r}")
        out |= _IMPLIED[s]
    if not out:
        raise ConfigError(f"{where}: no scope given")
    return frozenset(out)


class KeyRing:
    """Digest -> :class:`Principal` lookup.

    Parameters
    ----------
    entries : iterable of (digest, Principal)
        ``digest`` as returned by :func:`hash_key`.
    """

    def __init__(self, entries: Iterable[tuple[str, Principal]] = ()) -> None:
        self._by_digest: dict[str, Principal] = {}
        for digest, principal in entries:
            self._by_digest[digest.lower()] = principal

    def __len__(self) -> int:
        return len(self._by_digest)

    def __repr__(self) -> str:
        return f"KeyRing({len(self)} keys)"

    def lookup(self, key: str) -> Principal | None:
        """The principal of ``key``, or ``None`` when it is not a known key.

        The presented key's digest is compared with every stored digest in constant
        time (no early exit), so the answer time does not depend on which digest matched.
        """
        digest = hash_key(key).encode("ascii")
        found: Principal | None = None
        for stored, principal in self._by_digest.items():
            if hmac.compare_digest(digest, stored.encode("ascii")):
                found = principal
        return found

    @classmethod
    def from_sources(cls, env_keys: str | None = None, keys_file: Path | None = None) -> KeyRing:
        """Keys from the comma-separated environment form and/or a keys file.

        Environment entries are ``KEY`` (scope ``read``) or ``KEY:SCOPES`` where
        ``SCOPES`` is ``read``, ``write`` or ``read+write``. Keys file lines are
        ``NAME SCOPES sha256:HEX``; blank lines and ``#`` comments are skipped.

        Raises
        ------
        ConfigError
            Naming the entry number (never the key) or the file and line that is wrong.
        """
        entries: list[tuple[str, Principal]] = []
        if env_keys:
            for i, raw in enumerate(env_keys.split(","), start=1):
                item = raw.strip()
                if not item:
                    continue
                key, scopes = item, frozenset({"read"})
                head, sep, tail = item.rpartition(":")
                if sep and tail.strip().lower().replace("+", "") in {
                    "read",
                    "write",
                    "readwrite",
                    "writeread",
                }:
                    key = head
                    scopes = _parse_scopes(tail, f"FORECASTER_API_KEYS entry {i}")
                if len(key) < 8:
                    raise ConfigError(
                        f"FORECASTER_API_KEYS entry {i}: a key must have at least 8 characters"
                    )
                entries.append((hash_key(key), Principal(f"env-{i}", scopes)))
        if keys_file is not None:
            entries.extend(_read_keys_file(keys_file))
        return cls(entries)


def _read_keys_file(path: Path) -> list[tuple[str, Principal]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read API keys file {path}: {exc.strerror}") from None
    out: list[tuple[str, Principal]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        body = line.split("#", 1)[0].strip()
        if not body:
            continue
        parts = body.split()
        where = f"{path}, line {n}"
        if len(parts) != 3:
            raise ConfigError(
                f"{where}: expected 'NAME SCOPES sha256:HEX', got {len(parts)} fields"
            )
        name, scopes, digest = parts
        algo, _, hexd = digest.partition(":")
        if algo.lower() != "sha256" or len(hexd) != 64:
            raise ConfigError(f"{where}: the digest must be 'sha256:' and 64 hex digits")
        try:
            int(hexd, 16)
        except ValueError:
            raise ConfigError(f"{where}: the digest must be 'sha256:' and 64 hex digits") from None
        out.append((digest.lower(), Principal(name, _parse_scopes(scopes, where))))
    return out


class FailedAuthLimiter:
    """Failed authentications per client address in a sliding window, in memory.

    After ``max_failures`` failures within ``window_s`` seconds a client is refused (429)
    until its oldest failure in the window expires; a successful authentication does not
    reset the count. At most ``max_clients`` addresses are tracked (the stalest are
    dropped first), so a flood of addresses cannot grow the process without bound.

    >>> lim = FailedAuthLimiter(max_failures=2, window_s=60)
    >>> lim.retry_after("10.0.0.1", now=0.0) is None
    True
    >>> lim.failed("10.0.0.1", now=0.0); lim.failed("10.0.0.1", now=1.0)
    >>> lim.retry_after("10.0.0.1", now=2.0)
    58
    >>> lim.retry_after("10.0.0.1", now=61.0) is None
    True
    """

    def __init__(
        self, max_failures: int = 10, window_s: float = 60.0, max_clients: int = 10_000
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_clients = max_clients
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _trim(self, client: str, now: float) -> deque[float] | None:
        q = self._failures.get(client)
        if q is None:
            return None
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if not q:
            del self._failures[client]
            return None
        return q

    def retry_after(self, client: str, now: float | None = None) -> int | None:
        """Seconds until ``client`` may try again, or ``None`` when it is not blocked."""
        if self.max_failures <= 0:
            return None
        now = time.monotonic() if now is None else now
        with self._lock:
            q = self._trim(client, now)
            if q is None or len(q) < self.max_failures:
                return None
            return max(1, int(q[-self.max_failures] + self.window_s - now + 0.999))

    def failed(self, client: str, now: float | None = None) -> None:
        """Count one failed authentication of ``client``."""
        if self.max_failures <= 0:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            q = self._trim(client, now)
            if q is None:
                if len(self._failures) >= self.max_clients:
                    self._failures.pop(next(iter(self._failures)), None)
                q = self._failures[client] = deque(maxlen=self.max_failures)
            q.append(now)
