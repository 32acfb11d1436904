"""`broadcaster validate` on the repository and on copies broken in one way each."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from broadcaster.cli import app
from tests.servers import REPO

runner = CliRunner()


def validate(config: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["validate", "--config", str(config)])
    return result.exit_code, result.output


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def test_the_repository_validates():
    code, output = validate(REPO / "broadcaster.yaml")
    assert code == 0, output
    assert error_lines(output) == []


def test_the_copy_validates_before_it_is_broken(deployment_copy):
    assert validate(deployment_copy)[0] == 0


def test_one_changed_byte_of_an_approved_template(deployment_copy):
    path = deployment_copy.parent / "templates/major_fire/warning/short.de.j2"
    data = path.read_bytes()
    path.write_bytes(data[:-2] + (b"!" if data[-2:-1] != b"!" else b"?") + data[-1:])
    code, output = validate(deployment_copy)
    assert code == 1
    [line] = error_lines(output)
    assert "templates/major_fire/warning/short.de.j2" in line
    assert "changed after its approval" in line
    assert "broadcaster approve major_fire/warning/short.de.j2 --by NAME" in line


def test_a_missing_template_for_one_language(deployment_copy):
    (deployment_copy.parent / "templates/severe_storm/update/long.en.j2").unlink()
    code, output = validate(deployment_copy)
    assert code == 1
    [line] = error_lines(output)
    assert "templates/severe_storm/update/long.en.j2" in line
    assert "is missing (long of stage update in language en)" in line


def test_a_template_too_long_for_its_channel_with_worst_case_params(deployment_copy):
    # A text well inside the limit with short params, over it when `location` is 60 long.
    path = deployment_copy.parent / "templates/major_fire/update/short.de.j2"
    path.write_text("Großbrand {{ location }} " + "x" * 260 + "\n", encoding="utf-8")
    code, output = validate(deployment_copy)
    assert code == 1
    too_long = [line for line in error_lines(output) if "worst case" in line]
    assert too_long, output
    assert all("templates/major_fire/update/short.de.j2" in line for line in too_long)
    assert any("on x" in line and "/280 weighted characters" in line for line in too_long)


def test_a_channel_with_a_smaller_limit_is_measured(deployment_copy):
    channel = deployment_copy.parent / "channels/tiny_sms.yaml"
    channel.write_text(
        "type: sms\naccount_sid: AC1\nauth_token: t\nfrom: '+4915100000000'\n"
        "to: ['+4915100000001']\nmax_segments: 1\n",
        encoding="utf-8",
    )
    code, output = validate(deployment_copy)
    assert code == 1
    assert any(
        "channel tiny_sms" in line and "SMS segments" in line for line in error_lines(output)
    )


def test_an_unknown_param_referenced_in_a_template(deployment_copy):
    path = deployment_copy.parent / "templates/bomb_defusal/evacuation/long.de.j2"
    path.write_text(path.read_text(encoding="utf-8") + "{{ strasse }}\n", encoding="utf-8")
    code, output = validate(deployment_copy)
    assert code == 1
    lines = [line for line in error_lines(output) if "unknown param 'strasse'" in line]
    assert len(lines) == 1
    assert "templates/bomb_defusal/evacuation/long.de.j2" in lines[0]


def test_an_unset_variable(deployment_copy, monkeypatch):
    monkeypatch.delenv("BROADCASTER_TEST_TOKEN", raising=False)
    config = deployment_copy
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "public_url: http://127.0.0.1:8080",
            "public_url: http://127.0.0.1:8080\n  api_token: ${BROADCASTER_TEST_TOKEN}",
        ),
        encoding="utf-8",
    )
    code, output = validate(config)
    assert code == 1
    [line] = error_lines(output)
    assert (
        "broadcaster.yaml: http.api_token: environment variable BROADCASTER_TEST_TOKEN is not set"
        in line
    )
    monkeypatch.setenv("BROADCASTER_TEST_TOKEN", "t0k3n-long-enough-for-use")
    assert validate(config)[0] == 0


def test_an_unset_variable_in_a_channel_file(deployment_copy, monkeypatch):
    monkeypatch.delenv("MASTODON_TOKEN", raising=False)
    (deployment_copy.parent / "channels/mastodon_city.yaml").write_text(
        "type: mastodon\nbase_url: https://social.example.org\naccess_token: ${MASTODON_TOKEN}\n",
        encoding="utf-8",
    )
    code, output = validate(deployment_copy)
    assert code == 1
    [line] = error_lines(output)
    assert "channels/mastodon_city.yaml: access_token: environment variable MASTODON_TOKEN" in line


@pytest.mark.parametrize(
    ("file", "text", "expected"),
    [
        ("channels/bad.yaml", "type: pigeon\n", "channels/bad.yaml: type: is 'pigeon'"),
        ("channels/bad.yaml", "type: log\ncolour: red\n", "channels/bad.yaml: colour: unknown key"),
        (
            "channels/bad.yaml",
            "type: sms\naccount_sid: a\nauth_token: b\nfrom: x\nto: ['0211']\n",
            "channels/bad.yaml: to[0]",
        ),
        ("playbooks/broken.yaml", "id: other\n", "playbooks/broken.yaml: name: required key"),
        ("playbooks/broken.yaml", "id: [unclosed\n", "playbooks/broken.yaml: line 2: invalid YAML"),
        (
            "templates/major_fire/warning/long.de.j2",
            "{% if %}\n",
            "long.de.j2: line 1: template syntax",
        ),
    ],
)
def test_broken_files_are_named(deployment_copy, file, text, expected):
    (deployment_copy.parent / file).write_text(text, encoding="utf-8")
    code, output = validate(deployment_copy)
    assert code == 1
    assert any(expected in line for line in error_lines(output)), output


def test_a_drill_only_channel_mix_and_internal_channel_in_playbook(deployment_copy):
    playbook = deployment_copy.parent / "playbooks/severe_storm.yaml"
    text = playbook.read_text(encoding="utf-8").replace(
        "channels: all", "channels: [officer_log, nope]"
    )
    playbook.write_text(text, encoding="utf-8")
    code, output = validate(deployment_copy)
    assert code == 1
    lines = error_lines(output)
    assert any("channels[0]: channel 'officer_log' is internal" in line for line in lines)
    assert any("channels[1]: names channel 'nope', which does not exist" in line for line in lines)


def test_an_officer_channel_that_reaches_no_phone(deployment_copy):
    code, output = validate(deployment_copy)
    assert code == 0
    assert "duty_officers[0].notify[0]: channel 'officer_log' is a log channel" in output
    (deployment_copy.parent / "channels/officer_log.yaml").write_text(
        "type: cap_feed\naudience: internal\n", encoding="utf-8"
    )
    code, output = validate(deployment_copy)
    assert code == 1
    assert any("is a cap_feed channel" in line for line in error_lines(output))


def add_playbook(config: Path, short: str, *, max_length: int = 200) -> Path:
    """A one-language playbook of its own, so its problems are the only ones of its kind."""
    base = config.parent
    (base / "playbooks/roadworks.yaml").write_text(
        "id: roadworks\nname: {de: Baustelle}\nlanguages: [de]\n"
        f"params:\n  street: {{type: string, required: true, max_length: {max_length}}}\n"
        "cap: {category: Transport, urgency: Expected, severity: Minor, certainty: Likely}\n"
        "confirmation: {mode: none}\nstages:\n  notice: {msg_type: Alert}\n",
        encoding="utf-8",
    )
    folder = base / "templates/roadworks/notice"
    folder.mkdir(parents=True)
    (folder / "title.de.j2").write_text("Baustelle\n", encoding="utf-8")
    (folder / "short.de.j2").write_text(short, encoding="utf-8")
    (folder / "long.de.j2").write_text("Baustelle: {{ street }}\n", encoding="utf-8")
    return folder / "short.de.j2"


def test_the_worst_case_for_sms_fills_params_with_two_septet_characters(deployment_copy):
    # 200 x W + 71 = 271 septets: 2 SMS. 200 x € (a GSM-7 extension, 2 septets each) + 71
    # = 471 septets: 4 SMS. Filled with W only, validate found nothing.
    add_playbook(deployment_copy, "{{ street }} " + "x" * 70 + "\n")
    code, output = validate(deployment_copy)
    assert code == 1
    too_long = [line for line in error_lines(output) if "worst case" in line]
    assert len(too_long) == 2, output  # live and drill
    for line in too_long:
        assert "templates/roadworks/notice/short.de.j2" in line
        assert "filled with € U+20AC" in line
        assert "4/3 SMS segments (GSM-7, 47" in line
        assert "on sms (any sms channel)" in line


def test_the_worst_case_for_x_fills_params_with_cjk_as_a_warning(deployment_copy):
    # W: 150 + 100 = 250 weighted on X. CJK weighs 2: 300 + 100 = 400, over 280.
    add_playbook(deployment_copy, "{{ street }} " + "x" * 99 + "\n", max_length=150)
    _, output = validate(deployment_copy)  # exit 1: the new templates are not approved
    assert not [line for line in error_lines(output) if "worst case" in line], output
    [warning] = [line for line in output.splitlines() if "playbooks/roadworks.yaml" in line]
    assert warning.startswith("warning:")
    assert "on x up to 407/280 weighted characters with 漢 U+6F22" in warning  # drill: +7
    assert "templates/roadworks/notice/short.de.j2" in warning
    assert "X refuses a longer post" in warning


def test_a_typographic_quote_is_named_where_it_costs_sms_segments(deployment_copy):
    # 219 characters: 2 SMS in GSM-7, 4 in UCS-2 because of the quotes.
    path = deployment_copy.parent / "templates/major_fire/update/short.de.j2"
    path.write_text("Großbrand: „Rauch“ " + "x" * 200 + "\n", encoding="utf-8")
    code, output = validate(deployment_copy)
    assert code == 1
    [line] = [line for line in error_lines(output) if "SMS segments" in line and "(live," in line]
    assert "4/3 SMS segments (UCS-2, 219 UTF-16 units" in line
    assert "templates/major_fire/update/short.de.j2" in line
    assert "outside GSM-7: „ U+201E DOUBLE LOW-9 QUOTATION MARK at 12" in line
    assert "“ U+201C LEFT DOUBLE QUOTATION MARK at 18" in line
