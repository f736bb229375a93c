"""A person's week in a real browser: headless Chromium (Debian's ``chromium``, driven by Playwright, no browser
download) against ``pv serve`` on loopback. Sign in, filter the queue, open a signal, read its cases, refute it
with a reason and find the refutation, with the user's name, in the audit trail.

The screenshot of the signal page goes to ``PV_SCREENSHOTS`` when set (``docs/images`` holds the one in the
docs), else to the test's temporary folder. Without Chromium the test is skipped, except in CI (``CI`` set),
where ``.ci/services`` installs it and its absence is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.web.conftest import PASSWORD, Person, Registry, stop_server
from tests.web.test_serve import _free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def server(pg_url: str, tmp_path: Path) -> Iterator[str]:
    """``pv serve`` on a free loopback port, on the test database; its base URL."""
    port = _free_port()
    env = {**os.environ, "PV_DATABASE_URL": pg_url, "PV_VAR_DIR": str(tmp_path / "var"),
           "PV_CONFIG_DIR": str(REPO / "config"), "PV_BASE_URL": f"http://127.0.0.1:{port}"}
    proc = subprocess.Popen([sys.executable, "-m", "pv", "serve", "--port", str(port), "--log-level", "warning"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/login", timeout=5).close()
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline, "pv serve did not answer within 60 s"
                time.sleep(0.3)
        yield base
    finally:
        stop_server(proc)


def test_refute_a_signal_in_a_browser(server: str, people: dict[str, Person], registry: Registry,
                                      tmp_path: Path) -> None:
    if CHROMIUM is None:  # a failure, never a skip: the browser test is part of the suite (.ci/services installs it)
        pytest.fail("chromium is not installed: run .ci/services (it installs Debian's chromium) or "
                    "apt-get install chromium")
    from playwright.sync_api import expect, sync_playwright

    shots = Path(os.environ.get("PV_SCREENSHOTS") or tmp_path)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(f"{server}/signals")
            expect(page).to_have_url(f"{server}/login?next=%2Fsignals")
            page.get_by_label("Name").fill("assessor")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            expect(page).to_have_url(f"{server}/signals")
            expect(page.locator("#count")).to_have_text("3")

            page.get_by_label("Product").fill("Kymriah")
            page.get_by_label("Event (PT or group)").fill("T-cell lymphoma")
            page.get_by_role("button", name="Filter").click()
            expect(page.locator("#count")).to_have_text("1")
            page.locator("#queue").get_by_role("link", name="t-cell lymphoma").click()
            expect(page).to_have_url(f"{server}/signals/{registry.tcl}")
            expect(page.locator("#status")).to_have_text("new")

            cases = page.locator("#case-listing tbody tr")
            expect(cases).to_have_count(12)
            expect(cases.first.locator("td").nth(8)).to_have_text("tisagenlecleucel")

            page.locator("#transition select[name=to]").select_option("refuted")
            page.locator("#transition textarea[name=reason]").fill("Confounded by prior lines of therapy")
            page.get_by_role("button", name="Record the decision").click()
            expect(page.locator("#status")).to_have_text("refuted")
            expect(page.get_by_role("status")).to_have_text(f"signal {registry.tcl} is now refuted")
            last = page.locator("#audit tbody tr").last
            expect(last.locator("td")).to_have_text(
                [last.locator("td").first.inner_text(), "assessor", "transition", "new", "refuted",
                 "Confounded by prior lines of therapy"])
            shots.mkdir(parents=True, exist_ok=True)
            shot = shots / "review-signal-page.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        finally:
            browser.close()
