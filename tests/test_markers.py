"""`scripts/test --fast` leaves out the tests marked `slow`; it stays fast only if every test that
needs a browser, a served process or generated inputs carries that marker. The project's
conftest stops any run that collects such a test unmarked: shown here on a small project that
uses it, in its own pytest process."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ("pytester",)

TESTS = Path(__file__).resolve().parent

# A conftest that is the project's own (loaded by path: the name `conftest` is the small
# project's), so the small project's tests get its hooks and fixtures.
USES_THE_PROJECTS_CONFTEST = f"""
import importlib.util
import sys

sys.path.insert(0, {str(TESTS)!r})
_spec = importlib.util.spec_from_file_location("linli_conftest", {str(TESTS / "conftest.py")!r})
_project = importlib.util.module_from_spec(_spec)
sys.modules["linli_conftest"] = _project
_spec.loader.exec_module(_project)
pytest_collection_modifyitems = _project.pytest_collection_modifyitems
browser = _project.browser
"""

EXAMPLES = {
    "test_browser_unmarked": """
async def test_opens_a_page(browser):
    pass
""",
    "test_browser_marked": """
import pytest

@pytest.mark.slow
async def test_opens_a_page(browser):
    pass
""",
    "test_generated_unmarked": """
from hypothesis import given, strategies as st

@given(st.integers())
def test_any_number(n):
    pass
""",
}


def test_a_slow_test_without_the_marker_stops_the_run(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(USES_THE_PROJECTS_CONFTEST)
    pytester.makepyfile(**EXAMPLES)
    result = pytester.runpytest_subprocess("--collect-only", "-q", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.outlines + result.errlines
    stopped = "\n".join(result.errlines)
    assert "not marked @pytest.mark.slow" in stopped
    assert "test_browser_unmarked.py::test_opens_a_page" in stopped
    assert "test_generated_unmarked.py::test_any_number" in stopped
    assert "test_browser_marked.py" not in stopped  # marked: collected as usual


ORDERED = {
    "test_a_fast": "def test_one():\n    pass\n\ndef test_two():\n    pass\n",
    "test_b_mixed": ("import pytest\n\ndef test_first():\n    pass\n\n"
                     "@pytest.mark.slow\ndef test_second():\n    pass\n"),
    "test_c_fast": "def test_three():\n    pass\n",
}


def test_slow_modules_are_collected_first_each_in_its_own_order(
        pytester: pytest.Pytester) -> None:
    """xdist hands modules out in collection order (scripts/test): a module with a slow test
    comes first, whole and in its own order; the others follow in theirs."""
    pytester.makeconftest(USES_THE_PROJECTS_CONFTEST)
    pytester.makepyfile(**ORDERED)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = session\n")
    result = pytester.runpytest_inprocess("--collect-only", "-q", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK, result.outlines + result.errlines
    assert [line for line in result.outlines if "::" in line] == [
        "test_b_mixed.py::test_first", "test_b_mixed.py::test_second",
        "test_a_fast.py::test_one", "test_a_fast.py::test_two", "test_c_fast.py::test_three"]


CITY = "import pytest\n\n@pytest.fixture\ndef demo():\n    return 1\n\n"


def test_one_module_on_the_demo_city_comes_first_the_others_after_the_slow_ones(
        pytester: pytest.Pytester) -> None:
    """The first worker makes the demo city's template with the first module on it, while the
    other runs the slow modules without it, instead of waiting for the template."""
    pytester.makeconftest(USES_THE_PROJECTS_CONFTEST)
    pytester.makepyfile(**ORDERED, test_d_city=CITY + "@pytest.mark.slow\ndef test_four(demo):"
                        "\n    pass\n", test_e_city=CITY + "def test_five(demo):\n    pass\n"
                        "\n@pytest.mark.slow\ndef test_six():\n    pass\n")
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = session\n")
    result = pytester.runpytest_inprocess("--collect-only", "-q", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK, result.outlines + result.errlines
    assert [line for line in result.outlines if "::" in line] == [
        "test_d_city.py::test_four", "test_b_mixed.py::test_first", "test_b_mixed.py::test_second",
        "test_e_city.py::test_five", "test_e_city.py::test_six",
        "test_a_fast.py::test_one", "test_a_fast.py::test_two", "test_c_fast.py::test_three"]
