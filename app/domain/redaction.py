"""Keeping secrets out of text that is logged, stored or shown (errors, excerpts, statuses).

Invariant 6: a secret never appears, in any encoding, in a log line, a topic, a job status,
an error text or a command's output. Two complementary rules, both applied by `Redactor`:

- Known secret values (an authorization's header and parameter values, its client secret,
  the current OAuth token) are replaced in every form they take in practice: raw;
  percent-encoded (`quote(safe='')` and `quote_plus`, upper- or lower-case hex, or only
  partly encoded as URL libraries do); JSON-escaped (`\\"`, `\\/`, `\\uXXXX`, with or
  without `ensure_ascii`); HTML-escaped; base64, standard and URL-safe, with or without
  padding, of the secret alone, of its percent-encoded form and of `client_id:client_secret`
  (HTTP Basic) -- including inside a longer base64 blob, at any byte alignment. Each of
  these forms may itself be percent-encoded or JSON-escaped.
- Values of sensitive parameters (`name=value` in a URL query or a form body) are masked
  whatever they are: the names given (an authorization's parameter names) plus names that
  are always sensitive (`access_token`, `token`, `api_key`, `client_secret`, `sig`, ...;
  case-insensitive, also as the last part of a longer name like `refresh_token`).

Pure: no I/O. Secrets shorter than MIN_SECRET_LENGTH are not searched for (they would
redact ordinary words); parameters carrying them are still masked by name.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus, unquote

from app.domain.secrets import REDACTED

if TYPE_CHECKING:
    from app.domain.authorizations import Authorization

MIN_SECRET_LENGTH = 4  # shorter values would redact ordinary words
MIN_BASE64_CORE = 6  # shorter slices of a base64 form match too much ordinary text

SENSITIVE_PARAMS = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "api_key",
        "apikey",
        "api-key",
        "x-api-key",
        "key",
        "secret",
        "client_secret",
        "password",
        "passwd",
        "pwd",
        "sig",
        "signature",
        "x-amz-signature",
        "x-goog-signature",
        "auth",
        "authorization",
    }
)
"""Parameter names whose values are masked in any text (case-insensitive)."""

_SENSITIVE_SUFFIXES = ("token", "key", "secret", "password", "signature")
_NAME_SPLIT = re.compile(r"[-_.]")

# `name=` where name is not the tail of a longer name; the value runs to the next delimiter.
_PARAM_NAME = re.compile(r"(?<![A-Za-z0-9_.~%+-])([A-Za-z0-9_.~%+-]+)=")
# A quote does not end it: yarl leaves `'` unencoded in a query.
_PARAM_VALUE = re.compile(r"[^&#\s\"<>\\]*")
_MAX_PASSES = 8

# Characters that percent-encoding never touches and JSON never escapes: matched as is.
_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
_JSON_SHORT = {
    '"': '\\"',
    "\\": "\\\\",
    "/": "\\/",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_HTML = {
    "&": ("&amp;", "&#38;"),
    "<": ("&lt;", "&#60;"),
    ">": ("&gt;", "&#62;"),
    '"': ("&quot;", "&#34;"),
    "'": ("&#39;", "&#x27;", "&apos;"),
}


def _hex(value: int, width: int) -> str:
    """A regex matching `value` as hex digits in either case."""
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in f"{value:0{width}x}")


@lru_cache(maxsize=4096)
def _char_regex(char: str) -> str:
    """Every way one character of a secret may be written: raw, percent-encoded (its UTF-8
    bytes, any hex case; `+` for a space), JSON-escaped, HTML-escaped."""
    if char in _PLAIN:
        return re.escape(char)
    alts = [re.escape(char)]
    if char == " ":
        alts.append(r"\+")
    alts.append("".join("%" + _hex(b, 2) for b in char.encode("utf-8", "surrogatepass")))
    code = ord(char)
    if code < 0x10000:
        alts.append(r"\\u" + _hex(code, 4))
    else:  # JSON writes an astral character as a surrogate pair
        code -= 0x10000
        alts.append(
            r"\\u" + _hex(0xD800 + (code >> 10), 4) + r"\\u" + _hex(0xDC00 + (code & 0x3FF), 4)
        )
    if char in _JSON_SHORT:
        alts.append(re.escape(_JSON_SHORT[char]))
    alts.extend(re.escape(e) for e in _HTML.get(char, ()))
    return "(?:" + "|".join(alts) + ")"


def _form_regex(form: str) -> str:
    return "".join(_char_regex(c) for c in form)


def _base64_forms(data: bytes) -> set[str]:
    """`data` in base64 (standard and URL-safe, with and without padding), and the slices
    that `data` fixes whatever bytes surround it in a longer base64 blob (3 alignments)."""
    out: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        full = encode(data).decode()
        out.update((full, full.rstrip("=")))
        for offset in (1, 2):
            # Character i encodes bits [6i, 6i + 6): keep those inside data's bits.
            encoded = encode(b"\0" * offset + data + b"\0\0").decode()
            start = -(-offset * 8 // 6)
            end = (offset + len(data)) * 8 // 6
            core = encoded[start:end]
            if len(core) >= MIN_BASE64_CORE:
                out.add(core)
        core = full[: len(data) * 8 // 6]
        if len(core) >= MIN_BASE64_CORE:
            out.add(core)
    return out


def secret_forms(secret: str, client_id: str | None = None) -> set[str]:
    """The literal forms searched for `secret` (each also matched percent-encoded and
    JSON-escaped); empty for a secret shorter than MIN_SECRET_LENGTH."""
    if len(secret) < MIN_SECRET_LENGTH:
        return set()
    forms = {secret}
    encoded = {secret, quote(secret, safe=""), quote_plus(secret)}
    for value in encoded:
        forms |= _base64_forms(value.encode("utf-8", "surrogatepass"))
    if client_id is not None:
        pairs = {
            f"{client_id}:{secret}",
            f"{quote(client_id, safe='')}:{quote(secret, safe='')}",
            f"{quote_plus(client_id)}:{quote_plus(secret)}",
        }
        for pair in pairs:
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                full = encode(pair.encode("utf-8", "surrogatepass")).decode()
                forms.update((full, full.rstrip("=")))
    return forms


@lru_cache(maxsize=256)
def _compile(secrets: frozenset[str], client_id: str | None) -> re.Pattern[str] | None:
    forms: set[str] = set()
    for secret in secrets:
        forms |= secret_forms(secret, client_id)
    if not forms:
        return None
    ordered = sorted(forms, key=lambda f: (-len(f), f))  # longest first at one position
    return re.compile("|".join(_form_regex(f) for f in ordered))


def is_sensitive_param(name: str, names: frozenset[str] = frozenset()) -> bool:
    """Whether a parameter's value must be masked: one of `names` (lower case), an
    always-sensitive name, or a name ending in one (`refresh_token`, `X-Api-Key`);
    case-insensitive, percent-decoded."""
    lowered = unquote(name).lower()
    if lowered in SENSITIVE_PARAMS or lowered in names:
        return True
    parts = [p for p in _NAME_SPLIT.split(lowered) if p]
    return bool(parts) and parts[-1] in _SENSITIVE_SUFFIXES


def mask_url_params(text: str, names: Iterable[str] = ()) -> str:
    """`text` with the value of every sensitive `name=value` pair replaced by ***.

    Pairs are found wherever they stand: in URLs of error texts (`?api_key=...&sig=...`),
    in form bodies (`client_id=x&client_secret=y`), in `key=value` prose. A value runs to
    the next `&`, `#`, double quote, angle bracket, backslash or whitespace.
    """
    wanted = frozenset(n.lower() for n in names)
    pieces: list[str] = []
    done = 0
    for match in _PARAM_NAME.finditer(text):
        start = match.end()
        if match.start() < done or not is_sensitive_param(match.group(1), wanted):
            continue
        value = _PARAM_VALUE.match(text, start)
        end = value.end() if value else start
        if end == start or text[start:end] == REDACTED:
            continue
        pieces.append(text[done:start])
        pieces.append(REDACTED)
        done = end
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


class Redactor:
    """Removes a set of secrets, in every encoding, and sensitive parameter values from text.

    Build one per authorization (`Redactor.for_auth`) or from plain values; `text()` is
    cheap after the first call for the same secrets (the pattern is cached).
    """

    __slots__ = ("_names", "_pattern")

    def __init__(
        self,
        secrets: Iterable[str | None] = (),
        param_names: Iterable[str] = (),
        client_id: str | None = None,
    ) -> None:
        values = frozenset(s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH)
        self._pattern = _compile(values, client_id or None)
        self._names = frozenset(n.lower() for n in param_names)

    @classmethod
    def for_auth(cls, auth: Authorization | None, token: str | None = None) -> Redactor:
        """Everything of `auth` that must not be shown: header and parameter values (as
        configured and as sent, with `{token}` filled in), their credentials part (`Bearer
        x`, `Basic <base64>` and what it decodes to), the client secret (also as HTTP Basic
        with the client id), the OAuth token; and the values of its parameters by name."""
        if auth is None:
            return cls([token] if token else [])
        values: list[str] = [*auth.secret_values]
        names = [name for name, _ in auth.param_pairs]
        if token:
            values.append(token)
            headers, params = auth.request_parts(token)
            values.extend(v for _, v in headers + params)
        values.extend(_credential_parts(values))
        return cls(values, names, auth.client_id)

    def text(self, text: str) -> str:
        """`text` with every form of every secret and every sensitive parameter value
        replaced by ***."""
        for _ in range(_MAX_PASSES):
            before = text
            if self._pattern is not None:
                text = self._pattern.sub(REDACTED, text)
            text = mask_url_params(text, self._names)
            if text == before:
                return text
        return REDACTED  # a text that keeps producing secrets (adversarial): show nothing


def _credential_parts(values: Iterable[str]) -> list[str]:
    """`x` of a `Scheme x` header value; for `Basic`, also what x decodes to and its
    password part."""
    out: list[str] = []
    for value in values:
        scheme, _, credentials = value.strip().partition(" ")
        credentials = credentials.strip()
        if not credentials or " " in credentials:
            continue
        out.append(credentials)
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials, validate=True).decode()
            except ValueError:
                continue
            out.append(decoded)
            _, _, password = decoded.partition(":")
            out.append(password)
    return out


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every form of each secret (raw, percent-encoded, JSON-escaped, base64...)
    and every always-sensitive parameter value replaced by ***. Prefer `Redactor.for_auth`
    when the authorization is at hand: it also masks its parameters by name."""
    return Redactor(secrets).text(text)
