import pytest

# tests/helpers.py holds asserts (CliResult.assert_one_line_error, ...): rewritten by pytest like the tests' own, they
# still check under `python -O` (.ci/run runs part of the suite so).
pytest.register_assert_rewrite("tests.helpers")
