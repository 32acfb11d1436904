"""The `render` and `approve` commands as a person uses them."""

import os
import subprocess
import sys

import yaml
from typer.testing import CliRunner

from broadcaster.cli import app
from tests.servers import REPO

runner = CliRunner()
FIRE = ["-p", "location=Ackerstraße 12", "-p", "district=Flingern-Nord"]


def run(*args: str):
    return runner.invoke(app, list(args), terminal_width=200)


def test_render_shows_every_channel_with_length_and_limit():
    result = run("render", "major_fire", *FIRE, "--config", str(REPO / "broadcaster.yaml"))
    assert result.exit_code == 0, result.output
    for channel in (
        "website_log (log, de, long)",
        "social_log (log, de, short)",
        "english_log (log, en, short)",
    ):
        assert channel in result.output
    assert "weighted characters" in result.output
    assert "SMS segments" in result.output
    assert "ÜBUNG" not in result.output


def test_render_drill_prefixes_every_text():
    result = run(
        "render", "major_fire", *FIRE, "--mode", "drill", "--config", str(REPO / "broadcaster.yaml")
    )
    assert result.exit_code == 0, result.output
    assert "ÜBUNG: Großbrand in Flingern-Nord" in result.output
    assert "EXERCISE: Major fire in Flingern-Nord" in result.output


def test_render_names_bad_params_scenario_and_stage():
    config = ["--config", str(REPO / "broadcaster.yaml")]
    result = run("render", "major_fire", "-p", "district=" + "x" * 41, "-p", "colour=red", *config)
    assert result.exit_code == 2
    assert "param 'location' is required" in result.output
    assert "param 'district' is 41 characters long, at most 40" in result.output
    assert "unknown param 'colour'" in result.output
    result = run("render", "flood", *config)
    assert result.exit_code == 2
    assert "unknown scenario 'flood'" in result.output
    assert "bomb_defusal, major_fire, severe_storm" in result.output
    result = run("render", "major_fire", "--stage", "evacuation", *FIRE, *config)
    assert result.exit_code == 2
    assert "unknown stage 'evacuation'" in result.output
    result = run("render", "major_fire", "-p", "location", *config)
    assert result.exit_code == 2
    assert "write it as name=value" in result.output


def test_render_refuses_a_changed_template_live_but_previews_it_in_a_drill(deployment_copy):
    path = deployment_copy.parent / "templates/major_fire/warning/short.de.j2"
    path.write_text("Neuer Text {{ location }}\n", encoding="utf-8")
    result = run("render", "major_fire", *FIRE, "--config", str(deployment_copy))
    assert result.exit_code == 1
    assert "template_not_approved" in result.output
    assert "major_fire/warning/short.de.j2 was changed after its approval" in result.output
    result = run("render", "major_fire", *FIRE, "--mode", "drill", "--config", str(deployment_copy))
    assert result.exit_code == 0
    assert "not approved (drill only): major_fire/warning/short.de.j2" in result.output
    assert "ÜBUNG: Neuer Text Ackerstraße 12" in result.output


def test_approve_twice_by_different_people_makes_a_changed_template_usable(deployment_copy):
    path = deployment_copy.parent / "templates/major_fire/warning/short.de.j2"
    path.write_text("Neuer Text {{ location }}\n", encoding="utf-8")
    config = ["--config", str(deployment_copy)]
    key = "major_fire/warning/short.de.j2"
    first = run("approve", key, "--by", "A. Schmidt", *config)
    assert first.exit_code == 0
    assert "not yet usable live" in first.output
    same = run("approve", str(path), "--by", "a. schmidt", *config)  # a path works too
    assert "four eyes need 2 different names" in same.output
    second = run("approve", key, "--by", "B. Yilmaz", *config)
    assert "approved for live alerts" in second.output
    assert run("render", "major_fire", *FIRE, *config).exit_code == 0
    assert run("approve", "nope.de.j2", "--by", "X", *config).exit_code == 2


def test_approve_counts_a_name_with_hidden_characters_once_and_stores_it_clean(deployment_copy):
    path = deployment_copy.parent / "templates/major_fire/warning/short.de.j2"
    path.write_text("Neuer Text {{ location }}\n", encoding="utf-8")
    config = ["--config", str(deployment_copy)]
    key = "major_fire/warning/short.de.j2"
    assert run("approve", key, "--by", "  A.  Schmidt\u200b", *config).exit_code == 0
    same = run("approve", key, "--by", "a. schmidt\u2060", *config)
    assert same.exit_code == 0
    assert "by A. Schmidt - not yet usable live" in same.output
    assert "four eyes need 2 different names" in same.output
    approvals = yaml.safe_load((path.parents[2] / "approvals.yaml").read_text(encoding="utf-8"))
    assert approvals[key]["approved_by"] == ["A. Schmidt"]
    assert run("render", "major_fire", *FIRE, *config).exit_code == 1  # still one person


def test_approve_refuses_a_name_that_is_empty_once_normalised(deployment_copy):
    config = ["--config", str(deployment_copy)]
    before = (deployment_copy.parent / "templates/approvals.yaml").read_bytes()
    result = run("approve", "major_fire/warning/short.de.j2", "--by", " \u200b\ufeff ", *config)
    assert result.exit_code == 2
    assert "the approver's name is empty after removing invisible characters" in result.output
    assert "--by 'A. Schmidt'" in result.output
    assert (deployment_copy.parent / "templates/approvals.yaml").read_bytes() == before


def test_render_prints_a_long_text_whole_in_a_narrow_terminal(deployment_copy):
    # A panel at 80 columns used to cut every line at the terminal's width.
    sentence = "Bitte meiden Sie den Bereich weiträumig und folgen Sie den Anweisungen. "
    line = (sentence * 8)[:500]
    path = deployment_copy.parent / "templates/major_fire/warning/long.de.j2"
    path.write_text("{{ location }}: " + line + "\n", encoding="utf-8")
    command = ["render", "major_fire", *FIRE, "--mode", "drill", "--config", str(deployment_copy)]
    result = subprocess.run(
        [sys.executable, "-m", "broadcaster", *command],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    whole = f"ÜBUNG: Ackerstraße 12: {line.strip()}"
    assert len(whole) > 500
    assert whole in result.stdout.splitlines(), result.stdout


def test_render_a_misspelt_variable_names_the_file_and_the_name(deployment_copy):
    path = deployment_copy.parent / "templates/major_fire/warning/short.de.j2"
    path.write_text(path.read_text(encoding="utf-8").replace("location", "locaton"), "utf-8")
    result = run("render", "major_fire", *FIRE, "--mode", "drill", "--config", str(deployment_copy))
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert (
        "template cannot be rendered: templates/major_fire/warning/short.de.j2: "
        "'locaton' is undefined" in result.output
    )


def test_render_names_the_stage_and_params_by_their_labels():
    result = run(
        "render",
        "major_fire",
        *FIRE,
        "-p",
        "radius_m=800",
        "--config",
        str(REPO / "broadcaster.yaml"),
    )
    assert result.exit_code == 0, result.output
    assert "Großbrand (major_fire), stage warning (Warnung / Warning), LIVE" in result.output
    assert "location (Einsatzort / Location): Ackerstraße 12" in result.output
    assert "radius_m (Radius (m)): 800" in result.output
