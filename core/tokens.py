"""Bearer tokens, checked the same way by the OTLP receivers and the query API."""

from __future__ import annotations

import hmac
from collections.abc import Iterable


def split_tokens(tokens: str) -> frozenset[str]:
    """The tokens of a comma-separated list, blanks dropped."""
    return frozenset(t.strip() for t in tokens.split(",") if t.strip())


class BearerTokens:
    """The accepted tokens. Every token is compared in constant time, and all of them are
    compared, so timing tells neither a token's prefix nor which token matched."""

    def __init__(self, tokens: Iterable[str]) -> None:
        self._tokens = tuple(token.encode() for token in tokens)

    @property
    def required(self) -> bool:
        return bool(self._tokens)

    def accepts(self, authorization: str | None) -> bool:
        if not self._tokens:
            return True
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        candidate = presented.strip().encode("utf-8", "replace")
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(candidate, token)
        return matched
