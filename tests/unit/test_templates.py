"""Jsonnet URL and body templates."""

from __future__ import annotations

import pytest

from app.domain.templates import TemplateError, render, render_url, syntax_error

USER = {"id": "u1", "data": {"email": "beth@example.com", "region": "eu"}}
JOB = {"id": "job1", "label": "L"}


def test_good_template_has_no_syntax_error() -> None:
    assert syntax_error('"https://x.example.com/" + user.data.region + "/" + job.id') is None


def test_template_reading_absent_fields_still_parses() -> None:
    assert syntax_error("user.data.no.such.field") is None


@pytest.mark.parametrize("source", ['"https://x.example.com/" +', "{ a: ", "local x = 1"])
def test_bad_template_has_a_syntax_error(source: str) -> None:
    message = syntax_error(source)
    assert isinstance(message, str)
    assert message


def test_render_url_sees_user_and_job() -> None:
    source = '"https://x.example.com/" + user.data.region + "/" + job.id + "?u=" + user.id'
    assert render_url(source, USER, JOB) == "https://x.example.com/eu/job1?u=u1"


def test_render_returns_json_value() -> None:
    assert render("{ email: user.data.email, n: 2 }", USER, JOB) == {
        "email": "beth@example.com",
        "n": 2,
    }


@pytest.mark.parametrize("source", ["42", "{ url: 'https://x.example.com' }", "null", "[]"])
def test_render_url_of_a_non_string_raises(source: str) -> None:
    with pytest.raises(TemplateError):
        render_url(source, USER, JOB)


def test_render_error_raises_template_error() -> None:
    with pytest.raises(TemplateError):
        render_url('error "boom"', USER, JOB)


def test_syntax_error_is_not_fooled_by_closing_the_probe() -> None:
    """BUG: syntax_error wraps the source in `local _template = (\n...\n); null`, so a
    source that closes that parenthesis itself passes the check though it never parses."""
    source = "1); local z = (2"
    with pytest.raises(TemplateError):
        render(source, USER, JOB)  # it really does not parse
    assert syntax_error(source) is not None
