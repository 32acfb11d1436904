"""Rendering an alert from the sample deployment: approvals, drill prefix, params as data."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broadcaster.deployment import Deployment, load_deployment
from broadcaster.messages import AlertContext, TemplateNotApproved, channel_messages
from broadcaster.playbooks import validate_params
from tests.servers import REPO

FIRE = {"location": "Ackerstraße 12", "district": "Flingern-Nord", "smoke_direction": "Nordost"}
ISSUED = datetime(2026, 11, 23, 10, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def repo() -> Deployment:
    return load_deployment(REPO / "broadcaster.yaml")


def alert(d: Deployment, mode="live", params=None, scenario="major_fire", stage=None):
    playbook = d.playbooks[scenario]
    values = validate_params(playbook, params if params is not None else FIRE)
    return AlertContext(playbook, stage or playbook.default_stage, values, mode, "E-1", ISSUED)


def every_text(rendered):
    for texts in rendered.texts.values():
        yield from (texts.title, texts.short, texts.long)


def test_live_alert_from_approved_templates_carries_no_drill_prefix(repo):
    rendered = repo.renderer().render(alert(repo))
    assert rendered.unapproved == {}
    assert set(rendered.texts) == {"de", "en"}
    de = rendered.texts["de"]
    assert "Flingern-Nord" in de.title
    assert "Ackerstraße 12" in de.short
    assert de.instruction
    assert "Fenster und Türen" in de.instruction
    assert de.instruction in de.long
    for text in every_text(rendered):
        assert "ÜBUNG" not in text
        assert "EXERCISE" not in text


def test_drill_texts_all_start_with_the_prefix_of_their_language(repo):
    rendered = repo.renderer().render(alert(repo, mode="drill"))
    for lang, prefix in (("de", "ÜBUNG: "), ("en", "EXERCISE: ")):
        texts = rendered.texts[lang]
        for text in (texts.title, texts.short, texts.long):
            assert text.startswith(prefix)


def test_every_channel_gets_its_language_and_variant(repo):
    rendered = repo.renderer().render(alert(repo))
    messages = {
        m.channel_id: m
        for m in channel_messages(repo.playbooks["major_fire"], repo.channels, rendered)
    }
    assert set(messages) == {"website_log", "social_log", "english_log"}  # officer_log is internal
    assert messages["website_log"].text == rendered.texts["de"].long
    assert messages["social_log"].text == rendered.texts["de"].short
    assert messages["english_log"].text == rendered.texts["en"].short


def copy_of(deployment_copy: Path) -> Deployment:
    return load_deployment(deployment_copy)


def test_a_template_changed_after_loading_is_refused_live(deployment_copy):
    d = copy_of(deployment_copy)
    path = d.templates.path("major_fire/warning/long.en.j2")
    path.write_text(path.read_text(encoding="utf-8") + "Extra line.\n", encoding="utf-8")
    with pytest.raises(TemplateNotApproved) as caught:
        d.renderer().render(alert(d))
    assert list(caught.value.refusals) == ["major_fire/warning/long.en.j2"]
    assert "changed after its approval" in caught.value.refusals["major_fire/warning/long.en.j2"]
    drill = d.renderer().render(alert(d, mode="drill"))  # a drill may use it, and says so
    assert list(drill.unapproved) == ["major_fire/warning/long.en.j2"]
    assert drill.texts["en"].long.endswith("Extra line.")


def test_a_single_approver_is_not_enough_for_live(deployment_copy):
    d = copy_of(deployment_copy)
    entry = d.approvals.entries["major_fire/warning/title.de.j2"]
    d.approvals.entries["major_fire/warning/title.de.j2"] = type(entry)(
        entry.sha256, (entry.approved_by[0], entry.approved_by[0].upper()), entry.approved_at
    )
    with pytest.raises(TemplateNotApproved, match="four eyes"):
        d.renderer().render(alert(d))


def test_without_approvals_file_nothing_goes_out_live(deployment_copy):
    (deployment_copy.parent / "templates/approvals.yaml").unlink()
    d = copy_of(deployment_copy)
    with pytest.raises(TemplateNotApproved) as caught:
        d.renderer().render(alert(d))
    assert len(caught.value.refusals) == 8  # 4 variants x 2 languages


def test_retraction_renders_the_reason_and_is_approved(repo):
    rendered = repo.renderer().render_retraction(alert(repo), "Fehlalarm der Brandmeldeanlage")
    assert rendered.unapproved == {}
    assert "Fehlalarm der Brandmeldeanlage" in rendered.texts["de"].short
    assert "Ackerstraße 12" in rendered.texts["de"].long


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.text(
        # what public text refuses (text_hygiene.REFUSED) lies in these categories
        alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp")),
        min_size=1,
        max_size=40,
    )
)
def test_param_content_is_never_evaluated_on_the_whole_path(repo, location):
    for value in (location, "{{ 7*7 }}", "{% raw %}x", "{{ ''.__class__ }}"):
        params = {**FIRE, "location": value}
        rendered = repo.renderer().render(alert(repo, params=params))
        assert value in rendered.texts["de"].long
        assert "49" not in rendered.texts["de"].short.replace(value, "")
