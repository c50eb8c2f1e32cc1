"""prelu_tutorial.glue: myst-nb's glue when the book is built, nothing elsewhere."""

import sys

import pytest

from prelu_tutorial.glue import glue


def test_glue_stores_the_value_without_displaying_it(monkeypatch):
    myst_nb = pytest.importorskip("myst_nb")
    calls = []
    monkeypatch.setattr(myst_nb, "glue", lambda *args, **kwargs: calls.append((args, kwargs)))
    glue("ratio", "1.25")
    glue("count", 3)
    assert calls == [(("ratio", "1.25"), {"display": False}), (("count", 3), {"display": False})]
    # A string is shown as it is: its text/plain form carries no quotes.
    assert repr(calls[0][0][1]) == "1.25"


def test_glue_does_nothing_without_myst_nb(monkeypatch):
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # import myst_nb now raises ImportError
    assert glue("ratio", "1.25") is None


@pytest.mark.parametrize("name", ["", None, 3])
def test_glue_refuses_a_name_that_is_not_a_nonempty_string(name):
    with pytest.raises(TypeError, match="name must be a non-empty string"):
        glue(name, 1.0)
