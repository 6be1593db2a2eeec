"""Redaction seams not covered by tests/unit/test_redaction.py: `secret_forms` directly, empty
and too-short secrets, the MIN_SECRET_LENGTH boundary, repeated / adjacent / overlapping /
nested secrets, regex metacharacters in a secret, secrets in URL query strings, paths,
userinfo and fragments, header dumps of an authorization, `mask_url_params` edge cases, and
that `Redactor.text` is idempotent and replaces a secret by exactly one *** in plain text.
"""

from __future__ import annotations

import base64
from urllib.parse import quote, quote_plus

from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.authorizations import parse_authorization
from app.domain.redaction import (
    MIN_SECRET_LENGTH,
    Redactor,
    mask_url_params,
    redact,
    secret_forms,
)
from app.domain.secrets import REDACTED

# -- secret_forms ------------------------------------------------------------------------


def test_a_secret_shorter_than_the_minimum_has_no_forms() -> None:
    assert secret_forms("") == set()
    assert secret_forms("a" * (MIN_SECRET_LENGTH - 1)) == set()
    assert secret_forms("abc", client_id="client") == set()


def test_the_forms_of_a_secret_hold_it_raw_and_in_base64() -> None:
    secret = "s3cr3t/+ value"
    forms = secret_forms(secret)
    assert secret in forms
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for value in (secret, quote(secret, safe=""), quote_plus(secret)):
            full = encode(value.encode()).decode()
            assert full in forms
            assert full.rstrip("=") in forms


def test_with_a_client_id_the_forms_hold_http_basic_credentials() -> None:
    forms = secret_forms("cs-secret", client_id="client-1")
    basic = base64.b64encode(b"client-1:cs-secret").decode()
    assert basic in forms
    assert basic not in secret_forms("cs-secret")


def test_no_form_is_shorter_than_the_minimum() -> None:
    for secret in ("abcd", "abcde", "é😀ab", "a b+", "x" * 40):
        assert all(len(form) >= MIN_SECRET_LENGTH for form in secret_forms(secret))


# -- empty, missing and short secrets ----------------------------------------------------


def test_empty_and_missing_secrets_change_nothing() -> None:
    text = "HTTP 500 from https://h.example/p?page=2: database unavailable"
    assert redact(text, []) == text
    assert redact(text, [""]) == text
    assert redact(text, [None]) == text
    assert redact(text, ["", None, ""]) == text
    assert Redactor().text(text) == text
    assert Redactor([""], client_id="").text(text) == text


def test_an_empty_secret_does_not_stop_the_others() -> None:
    assert redact("a s3cr3t b", ["", None, "s3cr3t"]) == f"a {REDACTED} b"


def test_the_minimum_secret_length_is_searched_and_one_less_is_not() -> None:
    at_min = "w" * MIN_SECRET_LENGTH
    below = "z" * (MIN_SECRET_LENGTH - 1)
    assert redact(f"x {at_min} y", [at_min]) == f"x {REDACTED} y"
    assert redact(f"x {below} y", [below]) == f"x {below} y"


def test_empty_text_stays_empty() -> None:
    assert redact("", ["s3cr3t"]) == ""


# -- repeated, adjacent, overlapping and nested secrets ----------------------------------


def test_every_occurrence_of_a_secret_is_replaced() -> None:
    secret = "tok-8f3e2a"
    out = redact(f"{secret} then {secret}, and {quote(secret)} / {secret}", [secret])
    assert secret not in out
    assert out.count(REDACTED) == 4


def test_adjacent_copies_of_a_secret_leave_nothing_of_it() -> None:
    out = redact("x" + "tok-8f3e2a" * 5 + "y", ["tok-8f3e2a"])
    assert "tok-8f3e2a" not in out
    assert out.startswith("x") and out.endswith("y")


def test_the_same_secret_given_twice_is_one_secret() -> None:
    assert redact("a s3cr3t b", ["s3cr3t", "s3cr3t"]) == f"a {REDACTED} b"


def test_overlapping_secrets_neither_survives() -> None:
    for text in ("xx abcdefghi yy", "xx defghiabcdef yy", "abcdefabcdefghi"):
        out = redact(text, ["abcdef", "defghi"])
        assert "abcdef" not in out and "defghi" not in out, (text, out)


def test_a_secret_inside_another_neither_survives() -> None:
    inner, outer = "tok-1234", "pre-tok-1234-post"
    out = redact(f"{outer} and {inner} and {inner}-post", [inner, outer])
    assert inner not in out and outer not in out
    assert out.startswith(REDACTED)  # the longer one is taken whole, not split


def test_regex_metacharacters_in_a_secret_are_literal() -> None:
    secret = "a.*b+c(d)[e]|f$"
    text = f"1 {secret} 2 aXXXbbbc(d)[e]|f$ 3"
    out = redact(text, [secret])
    assert out == f"1 {REDACTED} 2 aXXXbbbc(d)[e]|f$ 3"


# -- URLs and headers --------------------------------------------------------------------


def test_a_secret_under_an_ordinary_query_name_is_removed_and_the_rest_kept() -> None:
    secret = "s3cr3t value/+&="
    for form in (secret, quote(secret, safe=""), quote_plus(secret)):
        url = f"https://h.example/p?q={form}&page=2#top"
        out = redact(f"POST {url} -> 500", [secret])
        assert secret not in out and form not in out
        assert "page=2#top" in out and out.startswith("POST https://h.example/p?q=")


def test_a_secret_in_the_path_and_in_userinfo_is_removed() -> None:
    secret = "tenant-9f8e7d"
    out = redact(f"https://user:{secret}@h.example/t/{secret}/in?page=1", [secret])
    assert secret not in out
    assert out == f"https://user:{REDACTED}@h.example/t/{REDACTED}/in?page=1"


def test_sensitive_parameters_in_a_fragment_are_masked() -> None:
    out = mask_url_params("https://app.example/cb#access_token=eyJ.abc&state=xyz")
    assert out == f"https://app.example/cb#access_token={REDACTED}&state=xyz"


def test_several_sensitive_parameters_in_one_query() -> None:
    text = "GET /in?api_key=k1&page=3&sig=abc%2Fdef&Token=t-9&user=bob HTTP/1.1"
    out = mask_url_params(text)
    assert out == (
        f"GET /in?api_key={REDACTED}&page=3&sig={REDACTED}&Token={REDACTED}&user=bob HTTP/1.1"
    )


def test_an_empty_or_already_masked_value_is_left_as_is() -> None:
    assert mask_url_params("?token=&page=2") == "?token=&page=2"
    assert mask_url_params(f"?token={REDACTED}&page=2") == f"?token={REDACTED}&page=2"


def test_a_masked_value_ends_at_a_quote_backslash_or_whitespace() -> None:
    assert mask_url_params('{"u": "h?api_key=abc"}') == f'{{"u": "h?api_key={REDACTED}"}}'
    assert mask_url_params('"h?api_key=abc\\"x"') == f'"h?api_key={REDACTED}\\"x"'
    assert mask_url_params("key=abc def") == f"key={REDACTED} def"


def test_given_parameter_names_match_whatever_their_case() -> None:
    out = mask_url_params("?My_Param=v1&my_param=v2&MY_PARAM=v3&other=v4", ["MY_PARAM"])
    assert out == f"?My_Param={REDACTED}&my_param={REDACTED}&MY_PARAM={REDACTED}&other=v4"


def test_a_longer_name_ending_in_a_given_name_is_not_masked_by_it() -> None:
    assert mask_url_params("?xcustom=v1&custom=v2", ["custom"]) == f"?xcustom=v1&custom={REDACTED}"


def test_header_values_of_an_authorization_are_removed_from_a_header_dump() -> None:
    auth = parse_authorization(
        {
            "id": "crm",
            "label": "CRM",
            "method": "headers",
            "headers": (
                "Authorization: Bearer abc123xyz\n"
                "X-Api-Key: k-99887766\n"
                f"X-Legacy: Basic {base64.b64encode(b'svc-user:pw-445566').decode()}"
            ),
        }
    )
    dump = (
        "request headers: {'Authorization': 'Bearer abc123xyz', 'X-Api-Key': 'k-99887766', "
        "'Content-Type': 'application/json'}; token abc123xyz; login svc-user:pw-445566; "
        "password pw-445566"
    )
    out = Redactor.for_auth(auth).text(dump)
    for leaked in ("abc123xyz", "k-99887766", "pw-445566", "svc-user:pw"):
        assert leaked not in out
    for kept in ("'Authorization': ", "'X-Api-Key': ", "'Content-Type': 'application/json'"):
        assert kept in out


def test_an_oauth_token_sent_as_a_bearer_header_is_removed() -> None:
    auth = parse_authorization(
        {
            "id": "idp",
            "label": "IdP",
            "method": "oauth2_client_credentials",
            "token_url": "https://idp.example.com/token",
            "client_id": "client-1",
            "client_secret": "cs-secret-value",
        }
    )
    token = "eyJhbGciOiJIUzI1NiJ9.e30.sig"
    out = Redactor.for_auth(auth, token).text(f"Authorization: Bearer {token}")
    assert token not in out
    # The whole value as sent ("Bearer <token>") is itself one of the secrets.
    assert out == f"Authorization: {REDACTED}"


# -- properties --------------------------------------------------------------------------

# No letters, digits, '=', '%', '\\' or base64 characters: nothing in it can be (part of) a
# form of a secret made of letters, or a `name=value` pair.
PLAIN_TEXT = st.text(alphabet=" .,:;!?()[]{}'*#@", max_size=15)
LETTER_SECRETS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=MIN_SECRET_LENGTH)


@settings(max_examples=300, deadline=None)
@given(
    secret=LETTER_SECRETS.filter(lambda s: len(s) <= 30),
    gaps=st.lists(PLAIN_TEXT, min_size=1, max_size=5),
)
def test_each_copy_of_a_secret_becomes_exactly_one_mask(secret: str, gaps: list[str]) -> None:
    text = secret.join(gaps)
    expected = REDACTED.join(gaps)
    assert Redactor([secret]).text(text) == expected


@settings(max_examples=300, deadline=None)
@given(text=PLAIN_TEXT, secret=LETTER_SECRETS.filter(lambda s: len(s) <= 30))
def test_text_without_the_secret_or_parameters_is_unchanged(text: str, secret: str) -> None:
    assert Redactor([secret], ["token"]).text(text) == text


@settings(max_examples=300, deadline=None)
@given(
    secrets=st.lists(st.text(min_size=0, max_size=12), max_size=3),
    names=st.lists(st.sampled_from(["q", "page", "custom", "id"]), max_size=2),
    text=st.text(max_size=60),
)
def test_redacting_twice_is_redacting_once(secrets: list[str], names: list[str], text: str) -> None:
    redactor = Redactor(secrets, names)
    once = redactor.text(text)
    assert redactor.text(once) == once
    for secret in secrets:
        if len(secret) >= MIN_SECRET_LENGTH:
            assert secret not in once
