"""Hostile config input (issue 20): a blank credential is an error, never "unset"; padded
ids are refused, not stripped; error messages show a bounded rendering of any value and
list at most the first problems; a YAML file of nested aliases is refused before it is
built; the API's Host / Origin parsing never raises on any text."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.api.guards import is_loopback, split_authority
from app.cli.files import MAX_EXPANDED_NODES, ConfigFileError, load_documents
from app.domain.authorizations import load_stored_authorization, parse_authorization
from app.domain.errors import MAX_LISTED_PROBLEMS, ConfigError, FieldProblem, shown
from app.domain.jobs import parse_job_config
from app.settings import FILE_SETTINGS, SECRET_SETTINGS, SettingsError, load_settings

BLANKS = st.text(alphabet=" \t\r\n\x0b\x0c\u00a0\u2003", max_size=6)


def job(**fields: object) -> dict[str, object]:
    return {
        "id": "j1",
        "type": "audience_triggers",
        "label": "l",
        "audiences": ["a"],
        "webhook_url": "https://hooks.example.com/x",
        **fields,
    }


@settings(max_examples=80, deadline=None)
@given(name=st.sampled_from(FILE_SETTINGS), blank=BLANKS)
def test_a_blank_credential_is_an_error_naming_it(name: str, blank: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(**{name: blank})
    assert f"WEBHOOKS_{name.upper()}: is empty or only whitespace" in str(caught.value)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(SECRET_SETTINGS)), blank=BLANKS)
def test_a_blank_credential_file_is_an_error_naming_the_file(
    name: str, blank: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("secret") / "value"
    path.write_text(blank)
    with pytest.raises(SettingsError) as caught:
        load_settings(**{f"{name}_file": str(path)})
    text = str(caught.value)
    assert f"WEBHOOKS_{name.upper()}_FILE: {path} is empty" in text
    with pytest.raises(SettingsError, match="_FILE is empty: name a file"):
        load_settings(**{f"{name}_file": ""})


def test_an_api_token_with_content_is_kept_as_given() -> None:
    token = load_settings(api_token=" t0ken ").api_token
    assert token is not None and token.get_secret_value() == " t0ken "


@pytest.mark.parametrize("bad", [" j1", "j1 ", "j1\n", "\tj1", "j1\r\n", "j1\u2003"])
def test_padded_job_and_authorization_ids_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_job_config(job(id=bad))
    assert [p.field for p in caught.value.problems] == ["id"]
    with pytest.raises(ConfigError) as caught:
        parse_authorization({"id": bad.lower(), "label": "a", "method": "none"})
    assert [p.field for p in caught.value.problems] == ["id"]
    assert parse_job_config(job(id="j1")).id == "j1"


def test_a_blank_oauth_client_secret_is_required_not_accepted() -> None:
    doc = {
        "id": "o1",
        "label": "o",
        "method": "oauth2_client_credentials",
        "token_url": "https://auth.example.com/token",
        "client_id": "c",
    }
    for secret in ("", "   ", "\n"):
        with pytest.raises(ConfigError) as caught:
            parse_authorization({**doc, "client_secret": secret})
        assert FieldProblem("client_secret", "required for oauth2_client_credentials") in (
            caught.value.problems
        )


def test_a_deep_value_is_shown_bounded() -> None:
    deep: object = "audience_triggers"
    for _ in range(5000):
        deep = [deep]
    start = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        parse_job_config(job(type=deep))
    assert time.monotonic() - start < 5  # a RecursionError or a runaway repr would not end
    [problem] = caught.value.problems
    assert problem.field == "type" and len(problem.rule) < 300
    assert len(shown("x" * 1_000_000)) < 100
    assert len(shown({i: list(range(1000)) for i in range(1000)})) < 300


@settings(max_examples=60, deadline=None)
@given(count=st.integers(min_value=0, max_value=300))
def test_an_error_lists_the_first_problems_and_counts_all(count: int) -> None:
    problems = [FieldProblem(f"f{i}", "unknown field") for i in range(count)]
    error = ConfigError("job config", problems, unlisted=7)
    assert error.problems == problems[:MAX_LISTED_PROBLEMS]
    assert error.problem_count == count + 7
    assert str(error).count("\n  - ") == min(count, MAX_LISTED_PROBLEMS)
    if count + 7 > len(error.problems):
        assert f"and {count + 7 - len(error.problems)} more" in str(error)


def alias_bomb(levels: int, width: int) -> str:
    lines = ["l0: &l0 [" + ", ".join(["x"] * width) + "]"]
    for level in range(1, levels):
        refs = ", ".join([f"*l{level - 1}"] * width)
        lines.append(f"l{level}: &l{level} [{refs}]")
    return "\n".join([*lines, "id: bomb", f"type: *l{levels - 1}"]) + "\n"


def test_nested_aliases_are_refused_before_they_are_built(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(levels=9, width=9))  # 9**9 = 387 420 489 values
    assert path.stat().st_size < 500
    start = time.monotonic()
    with pytest.raises(ConfigFileError, match=f"expand to more than {MAX_EXPANDED_NODES}"):
        load_documents(path)
    assert time.monotonic() - start < 5


def test_anchors_that_share_a_value_still_work(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(
        "- {id: a, audiences: &aud [vip, churn], type: audience_triggers}\n"
        "- {id: b, audiences: *aud, type: audience_triggers}\n"
    )
    docs = load_documents(path)
    assert [d["audiences"] for d in docs] == [["vip", "churn"], ["vip", "churn"]]


@given(st.text(max_size=60))
def test_host_parsing_never_raises(text: str) -> None:
    parsed = split_authority(text, 80)
    if parsed is not None:
        host, port = parsed
        assert host and 0 <= port <= 99999
        is_loopback(host)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("LocalHost", ("localhost", 80)),
        ("[::1]:9", ("::1", 9)),
        ("[::1]", ("::1", 80)),
        ("evil.example:80:80", None),
        ("127.0.0.1:", None),
        ("[::1", None),
        ("", None),
        (":80", None),
    ],
)
def test_host_headers(header: str, expected: tuple[str, int] | None) -> None:
    assert split_authority(header, 80) == expected


@pytest.mark.parametrize("headers", ["X-Api-Key:", "X-Api-Key:   ", "A: 1\nAuthorization:\t"])
def test_a_header_credential_with_an_empty_value_is_refused(headers: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_authorization({"id": "h1", "label": "h", "method": "headers", "headers": headers})
    [problem] = caught.value.problems
    assert problem.field == "headers" and "has an empty value" in problem.rule
    stored = {"id": "h1", "label": "h", "method": "headers", "headers": headers}
    assert load_stored_authorization(stored, None).headers == headers.strip()
