"""`broadcaster validate` on an Instagram channel: a caption over Instagram's limits, and
a public_url Meta cannot fetch the card from."""

from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from tests.unit.test_validate import validate

INSTAGRAM = {"type": "instagram", "ig_user_id": "17841400000000001", "access_token": "t0ken"}


def add_channel(config: Path, cid: str, channel: Mapping[str, object]) -> None:
    (config.parent / "channels" / f"{cid}.yaml").write_text(yaml.safe_dump(dict(channel)), "utf-8")


def test_a_local_public_url_is_a_warning_for_card_channels(deployment_copy: Path) -> None:
    code, output = validate(deployment_copy)
    assert "share-pic" not in output  # no card channel: nothing to say
    add_channel(deployment_copy, "insta", INSTAGRAM)
    add_channel(
        deployment_copy,
        "fb",
        {"type": "facebook", "page_id": "1", "page_access_token": "t", "media": "card"},
    )
    code, output = validate(deployment_copy)
    assert code == 0, output
    assert (
        "http.public_url: is http://127.0.0.1:8080: Meta cannot fetch the share-pic cards "
        "of fb, insta from there"
    ) in " ".join(output.split())


@pytest.mark.parametrize(
    ("public_url", "local"),
    [
        ("http://warn.localhost:8080", True),
        ("http://[::1]:8080", True),
        ("http://[0:0:0:0:0:0:0:1]:8080", True),
        ("http://[::ffff:127.0.0.1]:8080", True),
        ("http://127.0.0.2:8080", True),
        ("https://warn.example.org", False),
        ("https://localhost.example.org", False),
    ],
)
def test_every_form_of_a_loopback_public_url_is_named(
    deployment_copy: Path, public_url: str, local: bool
) -> None:
    settings = yaml.safe_load(deployment_copy.read_text("utf-8"))
    settings["http"]["public_url"] = public_url
    deployment_copy.write_text(yaml.safe_dump(settings), "utf-8")
    add_channel(deployment_copy, "insta", INSTAGRAM)
    code, output = validate(deployment_copy)
    assert code == 0, output
    flat = " ".join(output.split())
    said = f"http.public_url: is {public_url}: Meta cannot fetch the share-pic cards of insta"
    assert (said in flat) is local, output


def test_too_many_hashtags_in_a_caption_are_named(deployment_copy: Path) -> None:
    add_channel(deployment_copy, "insta", INSTAGRAM)
    template = deployment_copy.parent / "templates/major_fire/warning/long.de.j2"
    template.write_text(
        template.read_text("utf-8") + "\n#Feuer #Rauch #Warnung #Düsseldorf #NINA #Flingern\n",
        "utf-8",
    )
    _, output = validate(deployment_copy)
    flat = " ".join(output.split())
    assert "on instagram" in flat, output
    assert "6/5 hashtags" in flat, output
