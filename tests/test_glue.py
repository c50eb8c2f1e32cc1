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


@pytest.mark.parametrize("text", ["25,000", "0.50", "1.25x to 2.00x", "mixed_bfloat16"])
def test_glued_string_is_pasted_as_written(monkeypatch, text):
    myst_nb = pytest.importorskip("myst_nb")
    from myst_nb.core.variables import format_plain_text

    stored = []
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display: stored.append(value))
    glue("figure", text)
    # What {glue:text}`figure` shows: myst-nb formats the value's text/plain form.
    assert format_plain_text(repr(stored[0]), "s") == text


def test_glue_does_nothing_without_myst_nb(monkeypatch):
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # import myst_nb now raises ImportError
    assert glue("ratio", "1.25") is None


@pytest.mark.parametrize("name", ["", None, 3])
def test_glue_refuses_a_name_that_is_not_a_nonempty_string(name):
    with pytest.raises(TypeError, match="name must be a non-empty string"):
        glue(name, 1.0)
