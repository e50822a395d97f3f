"""What a person sees, in a real browser: the live viewer, the HTML report and the docs site.

Playwright drives Debian's chromium (``apt-get install chromium``; ``.ci/run`` installs it when it
is missing). Playwright's own browser download is never used. Every page runs with the network
blocked: a request to anything but 127.0.0.1 is aborted and counted, and each test asserts that
there were none, and no console error either. One browser serves the whole module.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import broken_agents as b
from agent_events import reference_agent
from agent_events.conformance import check
from agent_events.conformance.reporters import render

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
#: Material draws each diagram into a closed shadow root; opened here so the test can see the SVG.
OPEN_SHADOW_ROOTS = ("const attach = Element.prototype.attachShadow;"
                     "Element.prototype.attachShadow = function (o) { return attach.call(this, Object.assign({}, o, {mode: 'open'})); };")

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None

pytestmark = pytest.mark.skipif(
    sync_playwright is None or CHROMIUM is None,
    reason="browser tests need the playwright package (pip install -e '.[test]') and Debian's chromium "
           "(apt-get install chromium); missing: "
           + ", ".join(n for n, ok in (("playwright", sync_playwright is not None), ("chromium", CHROMIUM)) if not ok))


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield chromium
        chromium.close()


class Watched:
    """A page whose console errors and outside requests are counted (and the requests aborted)."""

    def __init__(self, browser, **context_options) -> None:
        self.context = browser.new_context(**{"viewport": {"width": 1200, "height": 900}, **context_options})
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _route(self, route) -> None:
        url = urlsplit(route.request.url)
        if url.scheme in ("data", "blob") or url.hostname == "127.0.0.1":
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def assert_clean(self) -> None:
        assert self.outside == [], f"requests outside 127.0.0.1: {self.outside}"
        assert self.errors == [], f"console errors: {self.errors}"


@pytest.fixture
def watched(browser):
    made = []

    def make(**options) -> Watched:
        made.append(Watched(browser, **options))
        return made[-1]

    yield make
    for w in made:
        w.context.close()


class StaticServer:
    """``http.server`` on 127.0.0.1, port 0, serving one folder from a thread."""

    def __init__(self, root: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "StaticServer":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


# -- the live viewer ---------------------------------------------------------------------


def _ask(page, text: str, *, fail: bool) -> None:
    page.fill("#input", text)
    page.set_checked("#fail", fail)
    page.click("#run")


def test_viewer_runs_a_primary_and_a_fallback_run_side_by_side(watched):
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0) as server:
        w = watched()
        page = w.page
        page.goto(server.url.replace("ws://", "http://"))
        expect(page.locator("#status")).to_have_attribute("data-state", "open")
        _ask(page, "Reduce cloud costs", fail=False)
        _ask(page, "Cut checkout latency", fail=True)
        _ask(page, "Reduce cloud costs again", fail=False)
        runs = page.locator(".run")
        expect(page.locator(".run[data-state=completed]")).to_have_count(3)
        expect(page.locator("#clock")).to_contain_text("clock offset")

        # Newest first: the fallback run sits between the two primary runs.
        primary, fallback = runs.nth(2), runs.nth(1)
        for card in (primary, runs.nth(0)):
            tools = card.locator("li.tool")
            expect(tools).to_have_count(3)
            assert [tools.nth(i).get_attribute("data-tool") for i in range(3)] == [
                "prompt_builder", "llm_processor", "action_plan_processor"]
            assert all(tools.nth(i).get_attribute("data-status") == "done" for i in range(3))
            expect(card.locator("li.tool .tms").first).to_contain_text(" ms")
            expect(card.locator(".feed li.thinking")).to_have_count(2)
            expect(card.locator(".progress .pct")).to_contain_text("100%")
            expect(card.locator(".answer .summary")).to_contain_text("Action plan ready")
            assert card.locator(".plan li").count() >= 3
            expect(card.locator(".attempts .chip")).to_have_text(["primary"])
        expect(fallback.locator("li.tool[data-tool=llm_processor]")).to_have_attribute("data-status", "error")
        expect(fallback.locator("li.tool[data-tool=action_plan_processor]")).to_have_count(0)
        expect(fallback.locator(".attempts .chip")).to_have_text(["primary", "fallback"])
        expect(fallback.locator(".answer .meta")).to_contain_text("fallback used")
        assert fallback.locator(".plan li").count() >= 3

        # Each run's raw events are its own: seq 0, 1, 2, ... with a measured delivery latency each.
        for card in (primary, fallback, runs.nth(0)):
            rows = card.locator(".raw tbody tr")
            seqs = [int(s) for s in rows.locator("td:nth-child(1)").all_inner_texts()]
            assert seqs == list(range(len(seqs))) and len(seqs) >= 10
            latencies = rows.locator("td:nth-child(3)").all_inner_texts()
            assert all(re.fullmatch(r"-?\d+\.\d+", x) for x in latencies), latencies
            assert rows.last.get_attribute("data-type") == "agent_completed"
        run_ids = runs.locator(".run-id").all_inner_texts()
        assert len(set(run_ids)) == 3
        w.assert_clean()


def test_viewer_page_needs_no_token_but_its_websocket_does(watched):
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0, token="s3cret") as server:
        http_url = server.url.replace("ws://", "http://")
        w = watched()
        w.page.goto(http_url + "?token=s3cret")
        expect(w.page.locator("#status")).to_have_attribute("data-state", "open")
        _ask(w.page, "Reduce cloud costs", fail=False)
        expect(w.page.locator(".run")).to_have_attribute("data-state", "completed")
        w.assert_clean()

        refused = watched()
        refused.page.goto(http_url)
        expect(refused.page.locator("#status")).to_have_attribute("data-state", "closed")
        expect(refused.page.locator("#run")).to_be_disabled()
        # the refused handshake is the only error the browser may log
        assert all("WebSocket" in e for e in refused.errors) and refused.outside == []


def test_viewer_cancels_a_run_and_the_run_still_completes(watched):
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=5000) as server:
        w = watched()
        w.page.goto(server.url.replace("ws://", "http://"))
        expect(w.page.locator("#status")).to_have_attribute("data-state", "open")
        _ask(w.page, "Reduce cloud costs", fail=False)
        card = w.page.locator(".run")
        expect(card.locator("li.tool[data-tool=llm_processor]")).to_have_attribute("data-status", "running")
        card.locator("button.cancel").click()
        expect(card).to_have_attribute("data-state", "cancelled")
        expect(card.locator(".raw tbody tr").last).to_have_attribute("data-type", "agent_completed")
        expect(card.locator("li.tool[data-tool=llm_processor]")).not_to_have_attribute("data-status", "running")
        w.assert_clean()


# -- the HTML report ------------------------------------------------------------------------


def test_report_of_a_failing_check_shows_the_rule_in_the_matrix_and_the_violation_in_the_timeline(watched, tmp_path):
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0,
                                       bridge_factory=b.bridge(b.SwapsThinking)) as server:
        report = check(server.url, scenarios=["primary", "fallback"])
    assert not report.conformant
    (tmp_path / "report.html").write_text(render(report, "html"))
    with StaticServer(tmp_path) as static:
        w = watched()
        page = w.page
        page.goto(static.url + "report.html")
        cell = page.locator("table.matrix a.FAIL[href='#s0-r-seq.contiguous']")
        expect(cell).to_be_visible()
        cell.click()
        expect(page.locator("tr[id='s0-r-seq.contiguous']")).to_be_visible()
        # a passing rule's row is folded away, and opens when its cell is followed
        expect(page.locator("tr[id='s0-r-frame.text']")).to_be_hidden()
        page.locator("table.matrix a[href='#s0-r-frame.text']").click()
        expect(page.locator("tr[id='s0-r-frame.text']")).to_be_visible()
        # rule row -> its first violation card -> the mark in the timeline -> back to the card
        page.locator("tr[id='s0-r-seq.contiguous'] a").click()
        card = page.locator(".v:target")
        expect(card).to_contain_text("seq.contiguous")
        card.get_by_role("link", name="in the timeline").click()
        mark = page.locator("svg a:target")
        expect(mark).to_be_visible()
        mark_id = mark.get_attribute("id")
        assert mark_id and mark.locator("path.vm").count() == 1
        frame = page.locator(".tl svg").first.locator(".bad")
        assert frame.count() >= 1  # the offending frame itself is outlined
        mark.click()
        expect(page.locator(".v:target")).to_contain_text("seq.contiguous")

        # Same-millisecond events stay apart: every mark of a run has its own x.
        svg = page.locator(".tl svg").nth(1)
        xs = svg.locator("circle").evaluate_all("cs => cs.map(c => c.getAttribute('cx'))")
        assert len(xs) >= 6 and len(set(xs)) == len(xs)
        expect(svg.locator("rect.fb")).to_have_count(1)  # the fallback attempt is shaded
        w.assert_clean()


# -- the docs site ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "-q", "-d", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.slow
def test_every_docs_page_renders_its_diagrams_offline(watched, site):
    pages = sorted(p.relative_to(site).parent.as_posix() for p in site.rglob("index.html"))
    assert len(pages) >= 10
    diagrams = 0
    with StaticServer(site) as static:
        w = watched()
        w.context.add_init_script(OPEN_SHADOW_ROOTS)
        page = w.page
        for rel in pages:
            html = (site / rel / "index.html").read_text()
            expected = html.count('class="mermaid"')
            assert ("mermaid.min.js" in html) == bool(expected), rel  # the 3.5 MB renderer only where needed
            page.goto(static.url + ("" if rel == "." else rel + "/"))
            svgs = page.locator("div.mermaid svg")
            if expected:
                expect(svgs).to_have_count(expected, timeout=20000)
                for i in range(expected):  # drawn, and inside its column
                    box, column = svgs.nth(i).bounding_box(), page.locator("article").bounding_box()
                    assert box["height"] > 40 and box["x"] + box["width"] <= column["x"] + column["width"] + 1, rel
            expect(page.locator("pre.mermaid")).to_have_count(0)  # no diagram left as source text
            diagrams += expected
            assert w.outside == [] and w.errors == [], (rel, w.outside, w.errors)
    assert diagrams >= 5


def test_docs_tables_keep_identifiers_whole(watched, site):
    with StaticServer(site) as static:
        w = watched(viewport={"width": 820, "height": 900})
        w.page.goto(static.url + "events/")
        codes = w.page.locator("article table td:first-child code")
        assert codes.count() > 20
        lines = codes.evaluate_all("cs => cs.map(c => [c.textContent, c.getClientRects().length])")
        broken = [text for text, n in lines if n != 1]
        assert broken == [], f"identifiers wrapped over lines: {broken}"
        w.assert_clean()
