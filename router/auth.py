"""API keys of the ingress (``router.auth``), checked as vLLM's ``--api-key`` checks them.

:func:`api_key_check` reads the secrets of every key ``router.auth`` names:
the comma-separated keys of ``api_keys_env`` (together, the key named
:data:`~cluster.config.UNNAMED_KEY`), each named key's ``secret_env``, and
the files of ``keys_dir`` (one per key, named after it: a mounted Kubernetes
Secret). A configured source that holds no secret is a
:class:`~cluster.exceptions.ConfigError`, so a garden meant to be closed
never runs open. :meth:`ApiKeyCheck.check` then checks one request's
``Authorization`` header against every secret in constant time and returns
the key's name, or raises :class:`~cluster.exceptions.AuthenticationError`
(401, OpenAI's ``invalid_api_key`` shape).

:func:`keys_dir_signature` tells when ``keys_dir`` changed, so a running
router re-reads it (keys rotate without a restart).
"""

from __future__ import annotations

import hmac
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

from cluster.config import UNNAMED_KEY, AuthSpec
from cluster.exceptions import AuthenticationError, ConfigError

__all__ = ["ApiKeyCheck", "api_key_check", "keys_dir_signature", "parse_api_keys"]

logger = logging.getLogger("ray.serve")

_MISSING = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
_WRONG = "Incorrect API key provided."


def parse_api_keys(text: str) -> tuple[str, ...]:
    """The keys of a comma-separated list, stripped, empty entries dropped."""
    return tuple(k for k in (part.strip() for part in text.split(",")) if k)


class ApiKeyCheck:
    """Checks ``Authorization: Bearer <key>`` against fixed secrets, each with a key name.

    ``keys`` maps a secret to its key's name (an iterable of secrets: all
    named :data:`UNNAMED_KEY`). With ``None`` every request passes: the
    garden has no auth.
    """

    def __init__(self, keys: Mapping[str, str] | tuple[str, ...] | list[str] | None) -> None:
        if keys is None:
            self._keys: tuple[tuple[bytes, str], ...] | None = None
            return
        named = keys if isinstance(keys, Mapping) else dict.fromkeys(keys, UNNAMED_KEY)
        # Empty: auth is on and no key passes (every key file was removed).
        self._keys = tuple((secret.encode(), name) for secret, name in named.items())

    @property
    def enabled(self) -> bool:
        """True when requests need a key."""
        return self._keys is not None

    @property
    def names(self) -> frozenset[str]:
        """The names of the keys it knows."""
        return frozenset(name for _, name in self._keys or ())

    def check(self, authorization: str | None) -> str | None:
        """The name of the key the header carries (None: no auth); else raise 401."""
        if self._keys is None:
            return None
        scheme, _, presented = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise AuthenticationError(_MISSING)
        given = presented.strip().encode()
        # Every key is compared (no early exit), each in constant time.
        found: str | None = None
        for secret, name in self._keys:
            if hmac.compare_digest(given, secret):
                found = name
        if found is None:
            raise AuthenticationError(_WRONG)
        return found


def keys_dir_signature(path: str | None) -> tuple[tuple[str, int, int, int], ...]:
    """What changes when a key file of ``path`` is added, removed or rewritten.

    A Kubernetes Secret volume swaps its files through symlinks; their
    targets' inode, change time and size are what is compared (a copy that
    keeps the modification time still changes the inode or change time).
    Unreadable: empty.
    """
    if path is None:
        return ()
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
        stats = [(e.name, e.stat()) for e in entries if not e.name.startswith(".") and e.is_file()]
    except OSError:
        return ()
    return tuple((name, st.st_ino, st.st_ctime_ns, st.st_size) for name, st in stats)


#: A key file's name must be a key name (an editor's ``alice~`` is not).
_KEY_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _dir_secrets(path: str, skipped: list[str]) -> list[tuple[str, str]]:
    """(secret, key name) of each key file of ``path``; what is left out goes to ``skipped``.

    Dot files (Kubernetes' own) are not keys; a file whose name is no key
    name, or is :data:`UNNAMED_KEY`, or that cannot be read, is skipped.
    """
    try:
        files = sorted(p for p in Path(path).iterdir() if not p.name.startswith("."))
    except OSError as err:
        raise ConfigError(
            "environment",
            [f"router.auth.keys_dir: cannot list {path!r}: {err.strerror or err}"],
        ) from err
    secrets: list[tuple[str, str]] = []
    for file in files:
        if not _KEY_FILE.match(file.name) or file.name == UNNAMED_KEY:
            skipped.append(f"{file.name!r} (not a key name, or the reserved {UNNAMED_KEY!r})")
            continue
        try:
            if not file.is_file():
                continue
            secret = file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            skipped.append(f"{file.name!r} (unreadable: {type(err).__name__})")
            continue
        if secret:
            secrets.append((secret, file.name))
    return secrets


def api_key_check(
    spec: AuthSpec, environ: Mapping[str, str], *, reloading: bool = False
) -> ApiKeyCheck:
    """The check ``spec`` asks for, with secrets read from ``environ`` and ``keys_dir``.

    At the start, raises :class:`ConfigError` naming the config path and
    the variable or directory when a configured source holds no secret.
    ``reloading`` (a running router re-reading ``keys_dir``): a named key
    whose file is gone is dropped, revoked, rather than failing the reload,
    and with no key left none passes. Skipped key files are logged.
    """
    if not spec.enabled:
        return ApiKeyCheck(None)
    problems: list[str] = []
    secrets: dict[str, str] = {}
    name = spec.api_keys_env
    if name is not None:
        keys = parse_api_keys(environ.get(name, ""))
        if not keys:
            state = "is empty" if name in environ else "is not set"
            problems.append(
                f"router.auth.api_keys_env: the environment variable {name!r} {state}; put "
                "comma-separated API keys in it (on Kubernetes: a key of the Secret named by "
                "apiKeys.existingSecret), or remove router.auth to serve without keys"
            )
        secrets.update(dict.fromkeys(keys, UNNAMED_KEY))
    skipped: list[str] = []
    if spec.keys_dir is not None:
        for secret, owner in _dir_secrets(spec.keys_dir, skipped):
            if secret in secrets:
                skipped.append(f"{owner!r} (the same secret as {secrets[secret]!r})")
            else:
                secrets[secret] = owner
    if skipped:
        logger.warning("router.auth.keys_dir: files skipped: %s", ", ".join(skipped))
    for i, key in enumerate(spec.keys):
        if key.secret_env is None:
            if key.name not in secrets.values() and reloading:
                logger.warning("API key %r revoked: its file in keys_dir is gone", key.name)
            elif key.name not in secrets.values():
                problems.append(
                    f"router.auth.keys[{i}] ({key.name!r}): no file {key.name!r} in "
                    f"router.auth.keys_dir {spec.keys_dir!r} holds its secret"
                )
            continue
        secret = environ.get(key.secret_env, "").strip()
        if not secret:
            problems.append(
                f"router.auth.keys[{i}].secret_env: the environment variable "
                f"{key.secret_env!r} of key {key.name!r} is not set or empty"
            )
            continue
        secrets[secret] = key.name
    if problems:
        raise ConfigError("environment", problems)
    if not secrets and not reloading:
        raise ConfigError(
            "environment", [f"router.auth.keys_dir: {spec.keys_dir!r} holds no key file"]
        )
    return ApiKeyCheck(secrets)
