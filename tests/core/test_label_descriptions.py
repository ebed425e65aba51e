"""`label_description_chars`: how much of each label's description a classification prompt carries."""

from __future__ import annotations

import pytest

from shared.core.prompts import classification_messages, shorten
from shared.errors import TaskError
from shared.foundation.tasks import load_task_file


def system_prompt(task, text: str = "Where is my card?") -> str:
    return classification_messages(task, text, json_answer=True)[0]["content"]


def label_lines(prompt: str) -> dict[str, str]:
    """label name -> the description the prompt gives it ('' for a bare name)."""
    lines = prompt.split("Labels:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return dict((line[2:].split(": ", 1) + [""])[:2] for line in lines)


@pytest.mark.parametrize("description, limit, expected", [
    ('card arrival, e.g. "Where is my card?"', None, 'card arrival, e.g. "Where is my card?"'),
    ('card arrival, e.g. "Where is my card?"', 100, 'card arrival, e.g. "Where is my card?"'),
    ('card arrival, e.g. "Where is my card?"', 14, "card arrival"),  # the comma goes with the cut
    ('card arrival, e.g. "Where is my card?"', 16, "card arrival"),  # "e.g." would not fit whole
    ('card arrival, e.g. "Where is my card?"', 18, "card arrival, e.g."),
    ("card arrival", 4, "card"),  # a space right after the limit: the word is whole
    ("cardarrival", 4, ""),  # no whole word fits
    ("card arrival", 0, ""),
])
def test_shorten_cuts_at_a_word_boundary(description, limit, expected):
    assert shorten(description, limit) == expected


def test_prompt_shrinks_with_the_limit_and_keeps_every_label(catalog):
    banking = catalog.get("banking77")
    full, forty, names = (banking.model_copy(update={"label_description_chars": n}) for n in (None, 40, 0))
    prompts = [system_prompt(task) for task in (full, forty, names)]
    assert len(prompts[0]) > len(prompts[1]) > len(prompts[2])
    full_lines, forty_lines, name_lines = map(label_lines, prompts)
    assert list(full_lines) == list(forty_lines) == list(name_lines) == [label.name for label in banking.labels]
    for name, description in forty_lines.items():
        assert len(description) <= 40 and full_lines[name].startswith(description)
        cut_after = full_lines[name][len(description):len(description) + 1]
        assert cut_after in ("", " ", ",", ";", ":")  # ends where a word ends
    assert set(name_lines.values()) == {""}


def test_shortened_prompts_are_identical_across_items_but_the_item(catalog):
    task = catalog.get("banking77").model_copy(update={"label_description_chars": 40})
    first = classification_messages(task, "Where is my card?", json_answer=True)
    second = classification_messages(task, "I was charged twice", json_answer=True)
    assert first[:-1] == second[:-1]
    assert (first[-1]["content"], second[-1]["content"]) == ("Where is my card?", "I was charged twice")


def test_negative_limit_is_a_task_error(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("kind: classification\ninstruction: x\nlabel_description_chars: -1\nlabels: [{name: a}, {name: b}]\n")
    with pytest.raises(TaskError, match="label_description_chars"):
        load_task_file(path)
