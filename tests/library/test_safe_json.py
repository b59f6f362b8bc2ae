"""The defensive JSON reader shared by model files (strict) and image metadata (its depth check)."""

from __future__ import annotations

import pytest

from studio.library.safe_json import JSONRefused, loads, nesting_problem


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[" * 9 + "]" * 9, "nested more than 8"),
        ('{"a": "[[[[[[[[[[[[[[[["}', None),  # brackets inside strings do not count
        ('{"a": "\\"[[[[[[[[[[[[[[[["}', None),  # nor after an escaped quote
        ("[[]", "brackets do not match"),
        ("[}", "brackets do not match"),
        ("[" * 100_000, "nested more than 8"),
    ],
)
def test_nesting_is_measured_without_parsing(text, problem):
    found = nesting_problem(text.encode(), 8)
    assert (found is None) if problem is None else (problem in found)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": NaN}', "NaN"),
        ('{"a": Infinity}', "Infinity"),
        ('{"a": ' + "9" * 30 + "}", "30 digits"),
        ('{"a": 1, "a": 2}', "twice"),
        ("[" * 5000 + "]" * 5000, "nested"),
    ],
)
def test_strict_loads_refuses_what_json_allows_but_models_never_hold(text, message):
    with pytest.raises(JSONRefused, match=message):
        loads(text, max_depth=64, allow_constants=False, unique_keys=True)


def test_ordinary_json_reads_as_usual():
    assert loads('{"shape": [1, 2], "dtype": "F32", "x": 1.5}', max_depth=4) == {"shape": [1, 2], "dtype": "F32", "x": 1.5}
