"""Browser tests: Playwright driving Debian's chromium (/usr/bin/chromium), never a downloaded browser.

The flags keep chromium from reaching out to Google's services, which this machine's closed network
refuses; `make test` and `.ci/run` install the package when it is missing. Screenshots of the main
pages go to `artefacts/screenshots/` (or $SEAJUST_ARTEFACTS), kept after the run for people to look at.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")  # not the session: Playwright's sync API keeps an event loop running while open
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    folder = (
        Path(os.environ.get("SEAJUST_ARTEFACTS", Path(__file__).resolve().parents[2] / "artefacts")) / "screenshots"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder
