"""The rehearsal's bookkeeping can fail: what wrk recorded is parsed and checked as claimed."""
from __future__ import annotations

import pytest

from rehearsal import Outcome

RECORD = """errors connect=0 read=2 write=0 timeout=0
200 moscow-time-0 1
200 moscow-time-0 2
200 moscow-time-1 1
503 - -
"""


def test_a_record_is_parsed_into_answers_errors_and_visit_numbers():
    outcome = Outcome.parse(RECORD)
    assert outcome.requests == 6 and outcome.failures == 3
    assert outcome.non_2xx == 1 and outcome.connection_errors == 2
    assert outcome.page_views == 3
    assert dict(outcome.visit_numbers) == {"moscow-time-0": [1, 2], "moscow-time-1": [1]}


def test_answers_that_agree_with_the_visits_files_pass():
    assert Outcome.parse(RECORD).disagreements({"moscow-time-0": 2, "moscow-time-1": 1}) == []


@pytest.mark.parametrize("record, on_disk, complaint", [
    ("200 moscow-time-0 1\n200 moscow-time-0 1\n", {"moscow-time-0": 2}, "moscow-time-0 handed out 1 visit numbers twice"),
    ("200 moscow-time-0 1\n", {"moscow-time-0": 2}, "(sum 2) != 1 page views"),
    ("200 moscow-time-0 1\n200 moscow-time-0 3\n", {"moscow-time-0": 2}, "carried 2 numbers from [1] to [3]"),
    ("200 moscow-time-9 1\n", {"moscow-time-0": 1}, "unknown instances: ['moscow-time-9']"),
])
def test_a_repeated_missing_or_unknown_visit_is_caught(record, on_disk, complaint):
    outcome = Outcome.parse("errors connect=0 read=0 write=0 timeout=0\n" + record)
    assert any(complaint in problem for problem in outcome.disagreements(on_disk)), outcome.disagreements(on_disk)
