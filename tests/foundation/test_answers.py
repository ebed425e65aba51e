"""Whether two answers are the same (foundation/answers.py), on values worked out by hand."""

from __future__ import annotations

import pytest

from shared.foundation.answers import normalise_field


@pytest.mark.parametrize("field,a,b,same", [
    ("total", "RM 9.00", "9.0", True),
    ("total", "1,234.50", "1234.5", True),
    ("total", "9.00", "9.01", False),
    ("date", "25/12/2018 8:13:39 PM", "25-12-2018", True),
    ("date", "2018-12-25", "25/12/2018", True),
    ("date", "25/12/2018", "26/12/2018", False),
    ("company", "BOOK  TA .K SDN BHD", "book ta .k sdn bhd", True),
    ("address", "NO.53, JALAN", "NO.53 JALAN", False),
])
def test_field_normalisation(field, a, b, same):
    assert (normalise_field(field, a) == normalise_field(field, b)) is same

