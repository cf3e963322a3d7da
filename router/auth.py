"""API keys of the ingress (``router.auth``), checked as vLLM's ``--api-key`` checks them.

:func:`api_key_check` reads the keys once, when the router starts, from the
environment variable that ``router.auth.api_keys_env`` names; a configured
variable that is unset or empty is a :class:`~cluster.exceptions.ConfigError`,
so a garden meant to be closed never runs open. :meth:`ApiKeyCheck.check`
then checks one request's ``Authorization`` header against every key in
constant time, and raises :class:`~cluster.exceptions.AuthenticationError`
(401, OpenAI's ``invalid_api_key`` shape) when it matches none.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping

from cluster.config import AuthSpec
from cluster.exceptions import AuthenticationError, ConfigError

__all__ = ["ApiKeyCheck", "api_key_check", "parse_api_keys"]

_MISSING = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
_WRONG = "Incorrect API key provided."


def parse_api_keys(text: str) -> tuple[str, ...]:
    """The keys of a comma-separated list, stripped, empty entries dropped."""
    return tuple(k for k in (part.strip() for part in text.split(",")) if k)


class ApiKeyCheck:
    """Checks ``Authorization: Bearer <key>`` against a fixed set of keys.

    With no keys (``None``) every request passes: the garden has no auth.
    """

    def __init__(self, keys: Iterable[str] | None) -> None:
        self._keys = None if keys is None else tuple(k.encode() for k in keys)
        if self._keys == ():
            raise ValueError("an ApiKeyCheck needs at least one key (None: no auth)")

    @property
    def enabled(self) -> bool:
        """True when requests need a key."""
        return self._keys is not None

    def check(self, authorization: str | None) -> None:
        """Return when the header carries a known key (or there is no auth); else raise 401."""
        if self._keys is None:
            return
        scheme, _, presented = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise AuthenticationError(_MISSING)
        given = presented.strip().encode()
        # Every key is compared (no early exit), each in constant time.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(given, key)
        if not matched:
            raise AuthenticationError(_WRONG)


def api_key_check(spec: AuthSpec, environ: Mapping[str, str]) -> ApiKeyCheck:
    """The check ``spec`` asks for, with keys read from ``environ``.

    Raises :class:`ConfigError` naming ``router.auth.api_keys_env`` and the
    variable when the variable is configured but unset or holds no key.
    """
    name = spec.api_keys_env
    if name is None:
        return ApiKeyCheck(None)
    keys = parse_api_keys(environ.get(name, ""))
    if not keys:
        state = "is empty" if name in environ else "is not set"
        raise ConfigError(
            "environment",
            [
                f"router.auth.api_keys_env: the environment variable {name!r} {state}; put "
                "comma-separated API keys in it (on Kubernetes: a key of the Secret named by "
                "apiKeys.existingSecret), or remove router.auth to serve without keys"
            ],
        )
    return ApiKeyCheck(keys)
