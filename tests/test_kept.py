"""kept.Kept: a value made once per key, kept between scrapes up to a limit."""

import pytest

from rq_exporter_ng.kept import Kept


def test_a_value_is_made_once_and_then_looked_up():
    made = []

    def make(key: str) -> str:
        made.append(key)
        return key.upper()

    kept = Kept(make, 10)
    assert [kept["a"], kept["b"], kept["a"]] == ["A", "B", "A"]
    assert made == ["a", "b"] and dict(kept) == {"a": "A", "b": "B"}


def test_it_is_emptied_once_it_holds_the_limit():
    kept = Kept(str, 3)
    for i in range(10):
        assert kept[i] == str(i)
        assert 1 <= len(kept) <= 3
    assert kept[9] == "9"


def test_what_make_raises_is_raised_each_time_and_not_kept():
    kept = Kept(int, 5)
    for _ in range(2):
        with pytest.raises(ValueError):
            kept["x"]
    assert "x" not in kept and kept["7"] == 7
