from datetime import UTC, date, datetime

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from jinja2.exceptions import SecurityError, UndefinedError

from broadcaster.templating import (
    AlreadyApproved,
    Approvals,
    ChangedMeanwhile,
    TemplateFolder,
    TemplateSource,
    record_approvals,
)


def render(text: str, **context) -> str:
    return TemplateSource("t.de.j2", text.encode()).render(context)


def test_params_are_data_never_template_code():
    assert render("Ort: {{ location }}", location="{{ 7*7 }}") == "Ort: {{ 7*7 }}"
    assert render("{{ a }}", a="{% for x in range(3) %}x{% endfor %}") == (
        "{% for x in range(3) %}x{% endfor %}"
    )


@given(st.text())
def test_any_param_text_comes_out_exactly_as_given(value):
    assert render("[{{ location }}]", location=value) == f"[{value}]"


@given(st.dictionaries(st.sampled_from(["a", "b", "c"]), st.text(), min_size=3))
def test_several_params_never_evaluated(values):
    out = render("{{ a }}|{{ b }}|{{ c }}", **values)
    assert out == f"{values['a']}|{values['b']}|{values['c']}".strip()


def test_unknown_variable_is_an_error_not_a_gap():
    with pytest.raises(UndefinedError, match="locaton"):
        render("Ort: {{ locaton }}", location="x")


def test_sandbox_blocks_python_internals():
    with pytest.raises(SecurityError):
        render("{{ ''.__class__.__mro__[1].__subclasses__() }}")


def test_filters():
    at = datetime(2026, 11, 23, 14, 5, tzinfo=UTC)
    assert render("{{ t | clock }} {{ t | date }} {{ s | clock }}", t=at, s="09:30") == (
        "14:05 23.11.2026 09:30"
    )


def test_variables_skips_names_guarded_by_is_defined():
    source = TemplateSource(
        "k", b"{{ reason }}{% if location is defined %}{{ location }}{% endif %}"
    )
    assert source.variables() == {"reason"}


def approvals(tmp_path) -> Approvals:
    loaded, problems = Approvals.load(tmp_path / "approvals.yaml")
    assert problems == []
    return loaded


def test_two_different_people_must_approve_the_same_bytes(tmp_path):
    source = TemplateSource("major_fire/warning/short.de.j2", b"Warnung {{ location }}\n")
    book = approvals(tmp_path)
    assert book.refusal(source) == "has no approval"
    book.approve(source, "A. Schmidt", date(2026, 11, 20))
    assert "four eyes" in (book.refusal(source) or "")
    book.approve(source, "  a.  SCHMIDT ", date(2026, 11, 20))  # the same person again
    assert "four eyes" in (book.refusal(source) or "")
    book.approve(source, "B. Yilmaz", date(2026, 11, 21))
    assert book.refusal(source) is None
    book.save()
    reloaded = approvals(tmp_path)
    assert reloaded.refusal(source) is None
    assert reloaded.entries[source.key].approved_by == ("A. Schmidt", "B. Yilmaz")


def test_one_changed_byte_voids_the_approval(tmp_path):
    source = TemplateSource("k.de.j2", b"Warnung\n")
    book = approvals(tmp_path)
    book.approve(source, "A", date(2026, 11, 20))
    book.approve(source, "B", date(2026, 11, 20))
    changed = TemplateSource("k.de.j2", b"Warnung!\n")
    assert book.refusal(changed) == "was changed after its approval (sha256 differs)"
    book.approve(changed, "A", date(2026, 11, 22))  # approving new bytes starts afresh
    assert book.entries["k.de.j2"].approved_by == ("A",)
    assert book.refusal(source) is not None


@pytest.mark.parametrize(
    "again",
    [
        "A. Schmidt\u200b",
        "a.  schmidt",
        "\u2066A. SCHMIDT\u2069",
        "A. Sch\u00admidt",
        "\ufeffA.\u00a0Schmidt",
        "Ａ. Ｓｃｈｍｉｄｔ",
    ],
)
def test_a_name_with_invisible_characters_or_other_spacing_is_the_same_person(tmp_path, again):
    source = TemplateSource("k.de.j2", b"Warnung\n")
    book = approvals(tmp_path)
    book.approve(source, "A. Schmidt", date(2026, 11, 20))
    book.approve(source, again, date(2026, 11, 20))
    assert book.entries["k.de.j2"].approved_by == ("A. Schmidt",)
    assert book.refusal(source) == (
        "is approved by A. Schmidt only; four eyes need 2 different names"
    )


def test_hand_edited_names_are_compared_normalised_too(tmp_path):
    source = TemplateSource("k.de.j2", b"Warnung\n")
    names = ["A. Schmidt", "a. schmidt\u200b", "\u2060", "  A.\tSCHMIDT "]
    (tmp_path / "approvals.yaml").write_text(
        yaml.safe_dump({"k.de.j2": {"sha256": source.sha256, "approved_by": names}}),
        encoding="utf-8",
    )
    book = approvals(tmp_path)
    assert book.refusal(source) == (
        "is approved by A. Schmidt only; four eyes need 2 different names"
    )
    book.approve(source, "B. Yilmaz", date(2026, 11, 21))
    assert book.refusal(source) is None


def test_the_stored_name_is_the_display_form_and_an_empty_one_is_refused(tmp_path):
    source = TemplateSource("k.de.j2", b"Warnung\n")
    book = approvals(tmp_path)
    approval = book.approve(source, "  b.\u200b  Yilmaz\t", date(2026, 11, 20))
    assert approval.approved_by == ("b. Yilmaz",)  # the case is kept
    with pytest.raises(ValueError, match="empty after removing invisible characters"):
        book.approve(source, "\u200b \u2060\ufeff", date(2026, 11, 20))
    assert book.entries["k.de.j2"].approved_by == ("b. Yilmaz",)


def test_record_approvals_refuses_the_same_person_and_bytes_other_than_those_shown(tmp_path):
    (tmp_path / "fire" / "warning").mkdir(parents=True)
    (tmp_path / "fire" / "warning" / "short.de.j2").write_bytes(b"Feuer")
    folder = TemplateFolder(tmp_path)
    key = "fire/warning/short.de.j2"
    sha = folder.load(key).sha256
    day = date(2026, 12, 2)
    [first] = record_approvals(folder, [key], "K. Becker", day, seen=sha, first_only=True)
    assert first.refusal is not None
    assert "four eyes" in first.refusal
    with pytest.raises(AlreadyApproved, match=r"k\. becker already approved"):
        record_approvals(folder, [key], "k.  becker", day, seen=sha, first_only=True)
    with pytest.raises(ChangedMeanwhile):
        record_approvals(folder, [key], "M. Weber", day, seen="0" * 64, first_only=True)
    # The command line's behaviour: the same name again is recorded once, not refused.
    [again] = record_approvals(folder, [key], "K. Becker", day)
    assert again.approval.approved_by == ("K. Becker",)
    [second] = record_approvals(folder, [key], "M. Weber", day, seen=sha, first_only=True)
    assert (second.refusal, second.approval.approved_by) == (None, ("K. Becker", "M. Weber"))
    saved = yaml.safe_load((tmp_path / "approvals.yaml").read_text("utf-8"))
    assert saved[key]["approved_by"] == ["K. Becker", "M. Weber"]
