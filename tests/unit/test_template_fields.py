"""The reads of user fields a body template makes, found in its Jsonnet source
(`app/domain/template_fields.py`), and the apply-time rule built on them: a body template
that reads a field not in `export_fields` is refused by `parse_job_config` (so by `jobs
apply` and `PUT /v1/jobs/{id}`), while records read back from the jobs topic still load."""

from __future__ import annotations

import json
import time
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.errors import ConfigError, FieldProblem
from app.domain.jobs import parse_job_config
from app.domain.stored_job import StoredJob
from app.domain.template_fields import (
    FieldRead,
    Group,
    field_reads,
    unselected_fields_rule,
    unselected_reads,
)
from app.domain.templates import render, syntax_error
from app.usecases.jobs import validate_documents

IDENTIFIERS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
GROUPS = st.sampled_from(["data", "by_fields"])
GAP_TEXTS = ["", " ", "\n", "\t ", " /* c */ ", " // c\n", "# c\n"]
GAPS = st.sampled_from(GAP_TEXTS)
FORMS = ["dot", "double", "single", "brackets"]
# Any text Jsonnet can carry (no NUL: its C API reads the source as a C string).
TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"))
SIGNIFICANT = st.text(st.sampled_from(list("user.data.by_fields[]\"'@|/*#\\-x \n\t\r")))
# Text that looks like code: pieces of reads among any characters.
CODE_LIKE = st.lists(
    TEXT | SIGNIFICANT | st.sampled_from(["user.data.ssn", "user['by_fields'].x", "\n|||\n"])
).map("".join)


def reads(*pairs: tuple[Group, str]) -> tuple[FieldRead, ...]:
    return tuple(FieldRead(group, name) for group, name in pairs)


# -- the finder on examples ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{ email: user.data.email }", reads(("data", "email"))),
        ("user.by_fields.phone", reads(("by_fields", "phone"))),
        ('user.data["ssn"]', reads(("data", "ssn"))),
        ("user.data['ssn']", reads(("data", "ssn"))),
        ("user.data[@'a''b']", reads(("data", "a'b"))),
        ('user.data["first name"]', reads(("data", "first name"))),
        ('user.data["\\u0073sn"]', reads(("data", "ssn"))),
        ('user["data"].ssn + user["by_fields"]["id"]', reads(("data", "ssn"), ("by_fields", "id"))),
        ("user . data\n  . ssn", reads(("data", "ssn"))),
        ("user/* a */.data // b\n.ssn", reads(("data", "ssn"))),
        ("user.data.address.city", reads(("data", "address"))),
        ("[user.data.a, user.data.b, user.data.a]", reads(("data", "a"), ("data", "b"))),
        ("if std.objectHas(user.data, 'ssn') then user.data.ssn", reads(("data", "ssn"))),
    ],
)
def test_static_reads_are_found(source: str, expected: tuple[FieldRead, ...]) -> None:
    assert field_reads(source) == expected


@pytest.mark.parametrize(
    "source",
    [
        "'user.data.ssn'",
        '"user.data.ssn"',
        '"say \\"user.data.ssn\\""',
        "@'user.data.ssn'",
        '@"it""s user.data.ssn"',
        "|||\n  user.data.ssn\n|||",
        "|||-\n  user.data.ssn\n\n    |||\n  user.data.ssn\n|||",
        "// user.data.ssn\n1",
        "# user.data.ssn\n1",
        "/* user.data.ssn\n user.by_fields.ssn */ 1",
        "{ user: 1 }",
        "self.user.data.ssn",
        "$.user.data.ssn",
        "users.data.ssn",
        "user.dat.ssn",
        "user.data",
        "user.data[key]",
        'user.data["s" + "sn"]',
        "std.objectFields(user.data)",
        'std.objectHas(user.data, "ssn")',
        'std.get(user.data, "ssn", null)',
        'user.data + { ssn: "x" }',
    ],
)
def test_text_guards_and_dynamic_reads_are_not_reads(source: str) -> None:
    assert field_reads(source) == ()


def test_a_text_block_ends_where_jsonnet_ends_it() -> None:
    source = "local t = |||\n  a\n   |||\n|||;\n[t, user.data.after]"
    assert render(source, {"data": {"after": 1}}, {}) == ["a\n |||\n", 1]
    assert field_reads(source) == reads(("data", "after"))


@pytest.mark.parametrize(
    ("read", "shown"),
    [
        (FieldRead("data", "ssn"), "user.data.ssn"),
        (FieldRead("by_fields", "first name"), 'user.by_fields["first name"]'),
        (FieldRead("data", "a\udc00"), 'user.data["a\\udc00"]'),
    ],
)
def test_a_read_is_shown_as_it_can_be_written(read: FieldRead, shown: str) -> None:
    assert str(read) == shown


def test_unselected_reads_keep_the_order_of_the_template() -> None:
    source = "[user.data.z, user.data.email, user.by_fields.a]"
    assert unselected_reads(source, {"email"}) == reads(("data", "z"), ("by_fields", "a"))


@pytest.mark.parametrize(
    ("template", "fields", "rule"),
    [
        (
            "{ email: user.data.email, ssn: user.data.ssn }",
            ("email",),
            "reads user.data.ssn, which is not in export_fields (selected: email)",
        ),
        (
            "[user.data.ssn, user.by_fields['phone']]",
            ("email", "plan"),
            "reads user.data.ssn, user.by_fields.phone, which are not in export_fields "
            "(selected: email, plan)",
        ),
        ("{ email: user.data.email }", ("email",), None),
        ("user.data.ssn", None, None),  # no fields selected: every field is visible
        (None, ("email",), None),
    ],
)
def test_the_rule_names_each_unselected_field(
    template: str | None, fields: tuple[str, ...] | None, rule: str | None
) -> None:
    assert unselected_fields_rule(template, fields) == rule


# -- the finder's properties --------------------------------------------------------------


def access(group: str, name: str, gap: str, form: str) -> str:
    """`user.<group>.<name>` written in one of the forms the finder reads."""
    group_part = f"{gap}.{gap}{group}" if form != "brackets" else f'{gap}[{gap}"{group}"{gap}]'
    if form == "dot":
        return f"user{group_part}{gap}.{gap}{name}"
    quoted = json.dumps(name) if form != "single" else "'" + name + "'"
    return f"user{group_part}{gap}[{gap}{quoted}{gap}]"


@given(IDENTIFIERS, GROUPS, GAPS, st.sampled_from(FORMS))
def test_any_static_read_is_found(name: str, group: Group, gap: str, form: str) -> None:
    source = "{ out: " + access(group, name, gap, form) + " }"
    assert field_reads(source) == (FieldRead(group, name),)


def test_the_forms_found_are_what_jsonnet_reads() -> None:
    sources = [access("data", "x", gap, form) for gap in GAP_TEXTS for form in FORMS]
    assert render("[" + ",\n".join(sources) + "]", {"data": {"x": 1}}, {}) == [1] * len(sources)


def literals(text: str) -> list[tuple[str, str]]:
    """`text` as each kind of Jsonnet string literal, with the value Jsonnet gives it."""
    single = "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    verbatim = '@"' + text.replace('"', '""') + '"'
    # A first line of its own sets the indent, so lines that start with blanks keep them.
    lines = [">", *text.replace("\r", "").split("\n")]
    block = "|||\n" + "".join(f"  {line}\n" for line in lines) + "|||"
    block_value = "".join(f"{line}\n" for line in lines)
    return [(json.dumps(text), text), (single, text), (verbatim, text), (block, block_value)]


# Each example runs Jsonnet once (about 0.1 s), to check the literals are what it reads.
@settings(max_examples=60, deadline=None)
@given(CODE_LIKE, IDENTIFIERS)
def test_text_in_string_literals_is_never_a_read(text: str, name: str) -> None:
    """Whatever a string holds (`user.data.x` too), it is no read; a read after it is."""
    pairs = literals(text)
    source = "[" + ", ".join(literal for literal, _ in pairs) + f", user.data.{name}]"
    assert render(source, {"data": {name: 1}}, {}) == [value for _, value in pairs] + [1]
    assert field_reads(source) == (FieldRead("data", name),), source


@settings(max_examples=60, deadline=None)
@given(CODE_LIKE, IDENTIFIERS)
def test_text_in_comments_is_never_a_read(text: str, name: str) -> None:
    line = text.replace("\n", " ").replace("\r", " ")
    block = text.replace("*/", "* /")
    source = f"// {line}\n# {line}\n/* {block} */ user.data.{name} /* {block} */ // {line}"
    assert syntax_error(source) is None, source
    assert field_reads(source) == (FieldRead("data", name),), source


@settings(max_examples=300, deadline=None)
@given(CODE_LIKE | st.text())
def test_any_text_gives_an_answer(source: str) -> None:
    found = field_reads(source)
    assert all(isinstance(r, FieldRead) and r.group in ("data", "by_fields") for r in found)
    assert len(set(found)) == len(found)


@pytest.mark.parametrize(
    "unit",
    ["user.data.", "user[", '"\\', "'", '@"', "|||\n", "|||\n  a\n", "/*", "//", "a" * 7, "\n"],
)
def test_time_is_linear_in_the_length(unit: str) -> None:
    source = unit * (200_000 // len(unit))
    started = time.perf_counter()
    field_reads(source)
    assert time.perf_counter() - started < 10  # quadratic would be hours


# -- the rule at apply time ---------------------------------------------------------------


def enrichment(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "crm",
        "type": "user_enrichment",
        "label": "CRM",
        "audiences": ["vip"],
        "webhook_url": "https://crm.example.com/enrich",
        "export_fields": ["email", "plan"],
    }
    doc.update(overrides)
    return doc


def problems_of(doc: dict[str, Any]) -> list[FieldProblem]:
    with pytest.raises(ConfigError) as caught:
        parse_job_config(doc, allowed=[])
    return caught.value.problems


def test_apply_refuses_a_body_template_reading_an_unselected_field() -> None:
    doc = enrichment(body_template="{ email: user.data.email, ssn: user.data.ssn }")
    assert problems_of(doc) == [
        FieldProblem(
            "body_template",
            "reads user.data.ssn, which is not in export_fields (selected: email, plan)",
        )
    ]


def test_apply_names_it_with_the_other_problems() -> None:
    doc = enrichment(body_template="user.by_fields.phone", url_template='"https://x.example.com"')
    assert [p.field for p in problems_of(doc)] == ["webhook_url", "body_template"]


@pytest.mark.parametrize(
    "template",
    [
        "{ email: user.data.email, plan: user.by_fields['plan'] }",
        "{ fields: std.objectFields(user.data), by: std.objectFields(user.by_fields) }",
        "{ ssn: std.get(user.data, 'ssn', null), id: user.id, seg: user.segment_events }",
        "{ note: 'user.data.ssn', from: job.label } // user.data.ssn",
    ],
)
def test_apply_accepts_body_templates_reading_selected_fields(template: str) -> None:
    assert parse_job_config(enrichment(body_template=template), allowed=[]).body_template


def test_url_templates_may_read_any_field() -> None:
    doc = enrichment(webhook_url=None, url_template='"https://crm.example.com/" + user.data.acct')
    assert parse_job_config(doc, allowed=[]).url_template


def test_the_cli_and_api_path_refuses_it() -> None:
    """`jobs apply` and `PUT /v1/jobs/{id}` validate through `validate_documents`."""
    with pytest.raises(ConfigError) as caught:
        validate_documents([enrichment(body_template="user.data.ssn")], [])
    assert [str(p) for p in caught.value.problems] == [
        "body_template: reads user.data.ssn, which is not in export_fields (selected: email, plan)"
    ]


def test_a_job_stored_before_the_rule_still_loads() -> None:
    """Records read back from the jobs topic are parsed without `allowed`: not re-judged."""
    record = enrichment(body_template="{ ssn: user.data.ssn }") | {"desired_state": "running"}
    stored = StoredJob.from_record(orjson.loads(orjson.dumps(record)))
    assert stored.config.body_template == "{ ssn: user.data.ssn }"
