"""pt.tables.table: one HTML table with padded cells, and its text form."""

import numpy as np
import pytest
import tensorflow as tf
from bs4 import BeautifulSoup

from prelu_tutorial import tables


def test_table_renders_every_cell_padded_in_html():
    shown = tables.table([["ReLU", 0.9251], ["PReLU", 0.96]], columns=["activation", "acc"])
    soup = BeautifulSoup(shown._repr_html_(), "html.parser")
    cells = soup.find_all(["th", "td"])
    assert [cell.get_text() for cell in cells] == [
        "activation", "acc", "ReLU", "0.925", "PReLU", "0.960",
    ]
    assert all("padding" in cell["style"] for cell in cells)
    assert "font-size" in soup.table["style"]


def test_table_escapes_html_in_cells():
    shown = tables.table([["<b>x</b>"]], columns=["a & b"])
    assert "<b>x</b>" not in shown._repr_html_()
    assert "&lt;b&gt;" in shown._repr_html_() and "a &amp; b" in shown._repr_html_()


def test_table_takes_dict_rows_with_their_keys_as_columns():
    shown = tables.table([{"n": 3, "ratio": 1.5}, {"n": 10, "ratio": 0.25}], digits=2)
    assert repr(shown).splitlines() == ["n   ratio", "3   1.50", "10  0.25"]


def test_table_refuses_a_row_of_the_wrong_length():
    with pytest.raises(ValueError, match="row 1 has 1 cells for 2 columns"):
        tables.table([[1, 2], [3]], columns=["a", "b"])


def test_table_needs_columns_for_sequence_rows():
    with pytest.raises(ValueError, match="columns must name"):
        tables.table([[1, 2]])


def test_table_formats_floats_with_a_format_spec_in_place_of_digits():
    shown = tables.table(
        [["x", 0.125, float("inf"), -7.5e37, 0.0]], columns="abcde", number_format=".4g"
    )
    assert repr(shown).splitlines()[1].split() == ["x", "0.125", "inf", "-7.5e+37", "0"]


def test_table_shows_a_scalar_tensor_or_0d_array_as_its_number():
    shown = tables.table(
        [[tf.constant(0.25), np.array(1.5), tf.constant(3), np.float32(2.0)]],
        columns="abcd",
        digits=2,
    )
    assert repr(shown).splitlines()[1].split() == ["0.25", "1.50", "3", "2.00"]
