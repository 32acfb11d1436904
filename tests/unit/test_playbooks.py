from datetime import datetime

import pytest
from pydantic import ValidationError

from broadcaster.playbooks import ParamError, Playbook, load_playbooks, validate_params
from tests.servers import REPO

PLAYBOOK = {
    "id": "demo",
    "name": {"de": "Demo", "en": "Demo"},
    "languages": ["de", "en"],
    "params": {
        "location": {"type": "string", "required": True, "max_length": 10},
        "direction": {"type": "string", "max_length": 5, "default": ""},
        "radius_m": {"type": "integer", "min": 100, "max": 5000},
        "wind": {"type": "number", "min": 0},
        "indoors": {"type": "boolean"},
        "at": {"type": "time"},
        "until": {"type": "datetime"},
    },
    "cap": {
        "category": "Fire",
        "urgency": "Immediate",
        "severity": "Severe",
        "certainty": "Observed",
    },
    "stages": {"warning": {"msg_type": "Alert"}, "all_clear": {"msg_type": "Update"}},
}


def playbook(**changes) -> Playbook:
    return Playbook.model_validate({**PLAYBOOK, **changes})


def test_defaults_and_none_for_absent_optional_params():
    values = validate_params(playbook(), {"location": "Flingern"})
    assert values == {
        "location": "Flingern",
        "direction": "",
        "radius_m": None,
        "wind": None,
        "indoors": None,
        "at": None,
        "until": None,
    }
    assert playbook().default_stage == "warning"


def test_values_are_converted_from_text():
    values = validate_params(
        playbook(),
        {
            "location": "A",
            "radius_m": "500",
            "wind": "88.5",
            "indoors": "yes",
            "at": "14:30",
            "until": "2026-11-23T18:00:00+01:00",
        },
    )
    assert values["radius_m"] == 500
    assert values["wind"] == 88.5
    assert values["indoors"] is True
    assert values["at"] == "14:30"
    assert values["until"] == datetime.fromisoformat("2026-11-23T18:00:00+01:00")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "param 'location' is required"),
        ({"location": "x" * 11}, "param 'location' is 11 characters long, at most 10"),
        ({"location": "a\nb"}, "param 'location' contains U+000A LINE FEED at position 2"),
        ({"location": "a\u202eb"}, "param 'location' contains U+202E RIGHT-TO-LEFT OVERRIDE"),
        ({"location": "a\u200bb"}, "param 'location' contains U+200B ZERO WIDTH SPACE"),
        ({"location": 5}, "param 'location' must be text"),
        ({"location": "a", "radius_m": 50}, "param 'radius_m' is 50, at least 100"),
        ({"location": "a", "radius_m": 9000}, "param 'radius_m' is 9000, at most 5000"),
        ({"location": "a", "radius_m": "5km"}, "param 'radius_m' must be a whole number"),
        ({"location": "a", "radius_m": True}, "param 'radius_m' must be a whole number"),
        ({"location": "a", "wind": "nan"}, "param 'wind' must be a number"),
        ({"location": "a", "indoors": "maybe"}, "param 'indoors' must be true or false"),
        ({"location": "a", "at": "25:00"}, "param 'at' must be a time HH:MM"),
        ({"location": "a", "until": "2026-11-23T18:00"}, "param 'until' needs a UTC offset"),
        ({"location": "a", "colour": "red"}, "unknown param 'colour'"),
    ],
)
def test_bad_params_are_named(given, message):
    with pytest.raises(ParamError) as caught:
        validate_params(playbook(), given)
    assert any(m.startswith(message) for m in caught.value.messages), caught.value.messages


def test_a_hidden_character_in_a_param_is_refused_with_its_name_and_position():
    given = {"location": "Acker\u202e21", "direction": "N\u2066O"}
    with pytest.raises(ParamError) as caught:
        validate_params(playbook(), given)
    hint = "remove it (invisible or control characters are not allowed in public text)"
    assert caught.value.messages == [
        f"param 'location' contains U+202E RIGHT-TO-LEFT OVERRIDE at position 6, {hint}",
        f"param 'direction' contains U+2066 LEFT-TO-RIGHT ISOLATE at position 2, {hint}",
    ]


def test_typographic_params_pass_unchanged():
    values = validate_params(playbook(), {"location": "„Weiß“ – 🔥", "direction": "Süd…"})
    assert values["location"] == "„Weiß“ – 🔥"
    assert values["direction"] == "Süd…"


def test_a_default_with_a_hidden_character_is_refused_when_the_playbook_loads():
    params = {"x": {"type": "string", "max_length": 9, "default": "Nord\u00ad"}}
    with pytest.raises(ValidationError, match="U\\+00AD SOFT HYPHEN at position 5"):
        playbook(params=params)


def test_every_bad_param_is_reported_at_once():
    with pytest.raises(ParamError) as caught:
        validate_params(playbook(), {"radius_m": 1, "colour": "red"})
    assert len(caught.value.messages) == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"params": {"stage": {"type": "string", "max_length": 5}}}, "hides the template variable"),
        ({"params": {"x": {"type": "string"}}}, "needs max_length"),
        ({"params": {"x": {"type": "integer", "max_length": 3}}}, "string params only"),
        ({"params": {"x": {"type": "integer", "min": 5, "max": 1}}}, "min is greater than max"),
        ({"params": {"x": {"type": "integer", "max": 5, "default": 9}}}, "at most 5"),
        ({"params": {"x": {"type": "text"}}}, "'string'"),
        ({"name": {"de": "Demo"}}, "no text for language 'en'"),
        ({"stages": {}}, "at least 1 item"),
        ({"colour": "red"}, "Extra inputs"),
    ],
)
def test_bad_playbooks_are_refused(change, message):
    with pytest.raises(ValidationError, match=message):
        playbook(**change)


def test_a_number_beyond_a_double_is_refused_not_crashing():
    with pytest.raises(ParamError, match="too large"):
        validate_params(playbook(), {"location": "a", "wind": 10**400})


LABELLED = {
    "params": {
        "location": {
            "type": "string",
            "max_length": 10,
            "label": {"de": "Einsatzort", "en": "Location"},
        },
        "direction": {"type": "string", "max_length": 5, "label": {"de": "Richtung"}},
        "radius_m": {"type": "integer"},
    },
    "stages": {
        "warning": {"msg_type": "Alert", "label": {"de": "Warnung", "en": "Warning"}},
        "all_clear": {"msg_type": "Update"},
    },
}


def test_params_and_stages_have_a_label_per_language_with_fallbacks():
    labelled = playbook(**LABELLED)
    assert labelled.param_label("location", "de") == "Einsatzort"
    assert labelled.param_label("location", "en") == "Location"
    assert labelled.param_label("direction", "en") == "Richtung"  # the primary language
    assert labelled.param_label("radius_m", "en") == "radius_m"  # no label: the id
    assert labelled.param_label("location", "fr") == "Einsatzort"
    assert labelled.stage_label("warning", "en") == "Warning"
    assert labelled.stage_label("all_clear", "de") == "all_clear"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"params": {"x": {"type": "integer", "label": {"fr": "Rayon"}}}},
            "params.x.label: language 'fr' is not one of the playbook's languages",
        ),
        (
            {"stages": {"warning": {"label": {"de": "Warnung", "es": "Aviso"}}}},
            "stages.warning.label: language 'es'",
        ),
        ({"stages": {"warning": {"label": {"de": " "}}}}, "stages.warning.label.de is empty"),
        ({"params": {"x": {"type": "integer", "lable": {"de": "X"}}}}, "Extra inputs"),
        ({"stages": {"warning": {"label": "Warnung"}}}, "valid dictionary"),
    ],
)
def test_bad_labels_are_refused(change, message):
    with pytest.raises(ValidationError, match=message):
        playbook(**change)


def test_the_sample_playbooks_label_every_param_and_stage_in_german_and_english():
    playbooks, problems = load_playbooks(REPO / "playbooks")
    assert problems == []
    assert len(playbooks) == 3
    for p in playbooks.values():
        labels = [s.label for s in p.params.values()] + [s.label for s in p.stages.values()]
        assert all(label is not None and set(label) == {"de", "en"} for label in labels), p.id
