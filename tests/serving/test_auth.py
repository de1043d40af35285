"""API keys: parsing, hashing, scopes, and errors that never echo a key."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.exceptions import ConfigError
from serving.auth import KeyRing, hash_key
from serving.settings import ServingSettings


def test_environment_keys_and_scopes() -> None:
    ring = KeyRing.from_sources("reader-key-1, writer-key-1:write ,both-key-01:read+write")
    assert ring.lookup("reader-key-1").scopes == {"read"}
    assert ring.lookup("writer-key-1").scopes == {"read", "write"}
    assert ring.lookup("both-key-01").scopes == {"read", "write"}
    assert ring.lookup("reader-key-1:write") is None
    assert ring.lookup("") is None


def test_a_colon_inside_a_key_is_part_of_the_key() -> None:
    ring = KeyRing.from_sources("abc:def:ghijkl")
    assert ring.lookup("abc:def:ghijkl") is not None


def test_only_digests_are_kept(tmp_path: Path) -> None:
    ring = KeyRing.from_sources("super-secret-key-9")
    assert "super-secret-key-9" not in repr(ring.__dict__)
    assert "super-secret-key-9" not in repr(ring.lookup("super-secret-key-9"))


def test_keys_file(tmp_path: Path) -> None:
    f = tmp_path / "keys"
    f.write_text(
        f"# name scopes digest\nci read {hash_key('ci-key-123456')}\n\n"
        f"ops read+write {hash_key('ops-key-123456')}  # on call\n"
    )
    ring = KeyRing.from_sources(None, f)
    assert ring.lookup("ci-key-123456").name == "ci"
    assert "write" in ring.lookup("ops-key-123456").scopes
    assert ring.lookup(hash_key("ci-key-123456")) is None  # the digest is not a key


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("ci read", "expected 'NAME SCOPES sha256:HEX'"),
        ("ci admin sha256:" + "0" * 64, "scope must be one of"),
        ("ci read md5:abc", "digest must be"),
        ("ci read sha256:" + "z" * 64, "digest must be"),
    ],
)
def test_bad_keys_file_names_file_and_line(tmp_path: Path, line: str, match: str) -> None:
    f = tmp_path / "keys"
    f.write_text("# header\n" + line + "\n")
    with pytest.raises(ConfigError, match=match) as err:
        KeyRing.from_sources(None, f)
    assert f"{f}, line 2" in str(err.value)


def test_short_environment_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError, match="entry 2") as err:
        KeyRing.from_sources("long-enough-key,short")
    assert "short" not in str(err.value)


def test_missing_keys_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read API keys file"):
        KeyRing.from_sources(None, tmp_path / "absent")


def test_settings_hide_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORECASTER_API_KEYS", "env-key-abcdef,env-admin-key:write")
    s = ServingSettings()
    assert "env-key-abcdef" not in repr(s) and "env-key-abcdef" not in str(s.model_dump())
    ring = KeyRing.from_sources(s.api_keys.get_secret_value() if s.api_keys else None)
    assert len(ring) == 2
