"""Counts of what the security tests checked, printed at the end of the run.

A test adds to a count with the `security_count` fixture; the counts travel in the
reports' `user_properties`, so they add up across pytest-xdist workers too (when this
conftest is loaded by the controller, as with `pytest tests/security`).
"""

from collections import Counter

import pytest

PREFIX = "security:"
_totals: Counter = Counter()


@pytest.fixture
def security_count(request):
    """`security_count("api URL checks", n)` adds n to that line of the final summary."""
    counts: Counter = Counter()

    def add(what: str, n: int = 1) -> None:
        counts[what] += n

    yield add
    request.node.user_properties.extend((PREFIX + what, n) for what, n in counts.items())


def pytest_runtest_logreport(report):
    if report.when == "teardown":
        for name, value in report.user_properties:
            if isinstance(name, str) and name.startswith(PREFIX):
                _totals[name.removeprefix(PREFIX)] += value


def pytest_terminal_summary(terminalreporter):
    if _totals:
        terminalreporter.section("security checks")
        for what, n in sorted(_totals.items()):
            terminalreporter.write_line(f"{what}: {n}")
