"""`broadcaster validate` on a whatsapp channel: Meta sends only approved templates, so
every stage the channel carries and its correction need one."""

from pathlib import Path

import yaml

from tests.unit.test_validate import error_lines, validate

STAGES = ["warning", "update", "all_clear", "announcement", "evacuation", "defusal"]


def write_whatsapp(config: Path, templates: dict[str, dict[str, str]], **extra: object) -> None:
    data = {
        "type": "whatsapp",
        "phone_number_id": "106540352242922",
        "access_token": "token",
        "app_secret": "secret",
        "templates": templates,
        "to": ["+4915100000001"],
        **extra,
    }
    path = config.parent / "channels" / "wa.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")


def every_stage() -> dict[str, dict[str, str]]:
    return {stage: {"name": f"warnung_{stage}"} for stage in [*STAGES, "_retraction"]}


def test_a_whatsapp_channel_with_a_template_for_everything_validates(deployment_copy):
    write_whatsapp(deployment_copy, every_stage())
    code, output = validate(deployment_copy)
    assert code == 0, output


def test_a_stage_without_a_template_is_an_error_naming_it(deployment_copy):
    templates = every_stage()
    del templates["evacuation"]
    write_whatsapp(deployment_copy, templates)
    code, output = validate(deployment_copy)
    assert code == 1
    [line] = error_lines(output)
    assert "channels/wa.yaml" in line
    assert "templates.evacuation" in line
    assert "stage 'evacuation' of playbook bomb_defusal would reach no subscriber" in line


def test_a_template_for_one_playbook_fills_its_stage(deployment_copy):
    templates = every_stage()
    del templates["evacuation"]
    templates["bomb_defusal/evacuation"] = {"name": "raeumung"}
    write_whatsapp(deployment_copy, templates)
    assert validate(deployment_copy)[0] == 0


def test_no_correction_template_is_an_error(deployment_copy):
    templates = every_stage()
    del templates["_retraction"]
    write_whatsapp(deployment_copy, templates)
    code, output = validate(deployment_copy)
    assert code == 1
    [line] = error_lines(output)
    assert "templates._retraction" in line


def test_an_unknown_special_key_is_refused(deployment_copy):
    write_whatsapp(deployment_copy, {**every_stage(), "_retraktion": {"name": "x"}})
    code, output = validate(deployment_copy)
    assert code == 1
    assert any("unknown template key '_retraktion'" in line for line in error_lines(output))
