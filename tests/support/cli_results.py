"""Reading a click ``CliRunner`` result the way the CLI tests assert on it."""

from __future__ import annotations

from click.testing import Result


def ok(result: Result) -> str:
    """Return the output of a command that succeeded (fails the test, showing the output, otherwise)."""
    assert result.exit_code == 0, result.output
    return result.output


def refused(result: Result) -> str:
    """Return the output of a command that was refused: a non-zero exit and a message, never a traceback."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    return result.output
