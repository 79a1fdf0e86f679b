"""Real Chromium (Debian's /usr/bin/chromium) driven by Playwright, and axe-core checks in it.

One browser per test session (per xdist worker), shared by every module that uses the
fixtures; a fresh browser context (no cookies, no storage) per test. Never
``playwright install``: Playwright drives the system Chromium.

Use in a test module::

    from tests.support.chromium import browser_context, chromium  # noqa: F401 (fixtures)

    def test_x(browser_context): page = browser_context.new_page() ...
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers import peer_missing
from tests.support.node import node_module_file

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
DEFAULT_TIMEOUT_MS = 15_000


class _SharedBrowser:
    """The worker's one Playwright + Chromium, started on first use, stopped by the last user."""

    def __init__(self) -> None:
        self.users = 0
        self.playwright: Any = None
        self.browser: Any = None

    def acquire(self) -> Any:
        if self.browser is None:
            from playwright.sync_api import sync_playwright

            self.playwright = sync_playwright().start()
            try:
                # Playwright refuses --user-data-dir in launch() args: it gives every launch
                # a fresh temporary profile directory of its own and deletes it on close.
                self.browser = self.playwright.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                )
            except Exception:
                self.playwright.stop()
                self.playwright = None
                raise
        self.users += 1
        return self.browser

    def release(self) -> None:
        self.users -= 1
        if self.users == 0 and self.browser is not None:
            self.browser.close()
            self.playwright.stop()
            self.browser = self.playwright = None


_SHARED = _SharedBrowser()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """The worker's Playwright Chromium Browser (skips, or fails under CI, if Chromium is missing)."""
    if not CHROMIUM.is_file():
        peer_missing("Chromium", "apt-get install chromium")
    browser = _SHARED.acquire()
    try:
        yield browser
    finally:
        _SHARED.release()


@pytest.fixture
def browser_context(chromium: Any) -> Iterator[Any]:
    """A fresh BrowserContext (empty cookie jar and storage) for one test."""
    context = chromium.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    try:
        yield context
    finally:
        context.close()


_AXE_SOURCE: str | None = None


def _axe_source() -> str:
    global _AXE_SOURCE
    if _AXE_SOURCE is None:
        _AXE_SOURCE = node_module_file("axe-core", "axe.min.js").read_text(encoding="utf-8")
    return _AXE_SOURCE


def axe_check(page: Any, *, tags: list[str] | None = None) -> list[dict[str, Any]]:
    """Run axe-core on ``page`` for the WCAG 2.0/2.1/2.2 A and AA rules; return its violations.

    The script is evaluated through the DevTools protocol, so the page's Content Security
    Policy (which rightly forbids inline scripts) stays in force for the page itself.
    """
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(_axe_source() + "\n;undefined")
    return page.evaluate(
        """async (tags) => {
            const results = await window.axe.run(document, {
                runOnly: { type: 'tag', values: tags },
                resultTypes: ['violations'],
            });
            return results.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl, tags: v.tags,
                nodes: v.nodes.map((n) => ({ target: n.target, html: n.html, summary: n.failureSummary })),
            }));
        }""",
        tags or WCAG_TAGS,
    )


def format_violations(violations: list[dict[str, Any]], where: str = "") -> str:
    """Return axe violations as readable text for an assertion message."""
    if not violations:
        return f"no accessibility violations{f' on {where}' if where else ''}"
    lines = [f"{len(violations)} accessibility violation(s){f' on {where}' if where else ''}:"]
    for violation in violations:
        lines.append(f"- [{violation['impact']}] {violation['id']}: {violation['help']} ({violation['helpUrl']})")
        for node in violation["nodes"][:5]:
            lines.append(f"    at {json.dumps(node['target'])}: {node['html'][:200]}")
            for detail in (node.get("summary") or "").splitlines():
                lines.append(f"      {detail}")
        if len(violation["nodes"]) > 5:
            lines.append(f"    ... and {len(violation['nodes']) - 5} more element(s)")
    return "\n".join(lines)


def assert_accessible(page: Any, where: str = "") -> None:
    """Fail with a readable list if axe-core finds WCAG 2.2 AA violations on ``page``."""
    violations = axe_check(page)
    assert not violations, format_violations(violations, where or page.url)
