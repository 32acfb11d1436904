"""approvals.yaml keeps the approved text: older files without it, the text recorded on
approving, a kept text that is not the approved bytes, and the last fully approved text
kept while a change waits for its second approval."""

from datetime import date
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.templating import Approvals, TemplateFolder, TemplateSource, record_approvals
from broadcaster.web.console.approvals import compare
from broadcaster.web.console.template_diff import diff_lines

KEY = "fire/warning/short.de.j2"
DAY = date(2026, 12, 2)


def folder_with(tmp_path: Path, text: str) -> TemplateFolder:
    (tmp_path / "fire" / "warning").mkdir(parents=True, exist_ok=True)
    (tmp_path / KEY).write_text(text, encoding="utf-8", newline="")
    return TemplateFolder(tmp_path)


def loaded(tmp_path: Path) -> tuple[Approvals, list[str]]:
    book, problems = Approvals.load(tmp_path / "approvals.yaml")
    return book, [f"{p.severity}: {p.where}: {p.what}" for p in problems]


def test_an_older_file_without_text_loads_and_the_next_approval_records_it(tmp_path):
    folder = folder_with(tmp_path, "Feuer in {{ location }}\n")
    sha = folder.load(KEY).sha256
    old = {KEY: {"sha256": sha, "approved_by": ["A", "B"], "approved_at": "2026-11-20"}}
    (tmp_path / "approvals.yaml").write_text(yaml.safe_dump(old), encoding="utf-8")
    book, problems = loaded(tmp_path)
    assert problems == []
    assert book.refusal(folder.load(KEY)) is None  # still approved for live alerts
    assert book.entries[KEY].text is None
    folder_with(tmp_path, "Feuer!\n")
    assert compare(book.entries[KEY], folder.load(KEY))[0] == "missing"

    folder_with(tmp_path, "Feuer in {{ location }}\n")
    [again] = record_approvals(folder, [KEY], "A", DAY)  # nobody new: names and date stay
    assert (again.approval.approved_by, again.approval.approved_at) == (("A", "B"), "2026-11-20")
    book, problems = loaded(tmp_path)
    assert book.entries[KEY].approved_text == "Feuer in {{ location }}\n"
    assert "text: |" in (tmp_path / "approvals.yaml").read_text("utf-8")  # a literal block


def test_a_kept_text_that_is_not_the_approved_bytes_is_a_problem_and_not_shown(tmp_path):
    folder = folder_with(tmp_path, "Feuer\n")
    record_approvals(folder, [KEY], "A", DAY)
    record_approvals(folder, [KEY], "B", DAY)
    data = yaml.safe_load((tmp_path / "approvals.yaml").read_text("utf-8"))
    data[KEY]["text"] = "Alles gut\n"
    (tmp_path / "approvals.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    book, problems = loaded(tmp_path)
    assert problems == [
        f"warning: {KEY}: the kept text is not the approved bytes (its sha256 differs)"
    ]
    assert book.refusal(folder.load(KEY)) is None  # the hash rules decide, as before
    assert book.entries[KEY].approved_text is None
    folder_with(tmp_path, "Feuer!\n")
    assert compare(book.entries[KEY], folder.load(KEY)) == ("mismatch", ())


def test_the_last_fully_approved_text_is_kept_while_a_change_awaits_its_second(tmp_path):
    folder = folder_with(tmp_path, "Feuer\nFenster schließen\n")
    record_approvals(folder, [KEY], "A", DAY)
    record_approvals(folder, [KEY], "B", DAY)
    folder_with(tmp_path, "Großfeuer\nFenster schließen\n")
    [first] = record_approvals(folder, [KEY], "C", date(2026, 12, 3))
    assert first.refusal is not None  # one new name: awaiting
    book, problems = loaded(tmp_path)
    assert problems == []
    entry = book.entries[KEY]
    assert entry.approved_text == "Großfeuer\nFenster schließen\n"
    assert entry.previous is not None
    assert entry.previous.approved_by == ("A", "B")
    assert entry.last_full == entry.previous
    kept, diff = compare(entry.last_full, folder.load(KEY))
    assert kept == "diff"
    assert [(d.kind, d.text) for d in diff if d.kind != "hunk"] == [
        ("removed", "Feuer"),
        ("added", "Großfeuer"),
        ("same", "Fenster schließen"),
    ]
    # Another change before the second approval: still diffed against A and B's text.
    folder_with(tmp_path, "Brand\nFenster schließen\n")
    record_approvals(folder, [KEY], "D", date(2026, 12, 4))
    book, _ = loaded(tmp_path)
    last = book.entries[KEY].last_full
    assert last is not None
    assert (last.approved_by, last.approved_text) == (("A", "B"), "Feuer\nFenster schließen\n")
    # The second approval: this version is now the last full one, the earlier goes.
    [second] = record_approvals(folder, [KEY], "E", date(2026, 12, 5))
    assert second.refusal is None
    book, _ = loaded(tmp_path)
    assert book.entries[KEY].previous is None
    assert compare(book.entries[KEY], folder.load(KEY)) == ("same", ())


@settings(max_examples=200)
@given(st.text())
def test_any_text_is_kept_exactly(tmp_path_factory, text):
    tmp = tmp_path_factory.mktemp("t")
    folder = folder_with(tmp, text)
    record_approvals(folder, [KEY], "A", DAY)
    book, problems = loaded(tmp)
    assert problems == []
    assert book.entries[KEY].approved_text == text
    assert book.entries[KEY].sha256 == TemplateSource(KEY, text.encode()).sha256


def test_a_change_of_only_the_last_line_break_shows_in_the_diff():
    lines = diff_lines("Feuer\n", "Feuer")
    assert [(d.kind, d.ending) for d in lines if d.kind != "hunk"] == [
        ("removed", ""),
        ("added", "none"),
    ]
