"""The reference agent's live viewer, opened through ``agent-events proxy``, shows the faults a browser client meets.

The viewer's page is relayed by the proxy (a plain GET), so its WebSocket goes back to the
proxy and every run it starts crosses the faults: this is the "point your UI through the
proxy" workflow of the Testing your client page, run in a real browser (Debian's chromium,
driven by Playwright, network blocked, as in tests/test_browser.py).
"""

from __future__ import annotations

from agent_events import proxy, reference_agent
from test_browser import _ask, browser, expect, pytestmark, watched  # noqa: F401 - the module's fixtures and skip


def test_the_viewer_through_the_proxy_flags_the_dropped_event(watched):  # noqa: F811 - a fixture
    with reference_agent.run_in_thread(host="127.0.0.1", port=0, llm_delay_ms=0) as server, \
            proxy.run_in_thread(server.url, ["drop:3"]) as p:
        w = watched()
        page = w.page
        page.goto(p.url.replace("ws://", "http://"))
        expect(page.locator("#status")).to_have_attribute("data-state", "open")
        _ask(page, "Reduce cloud costs", fail=False)
        card = page.locator(".run")
        expect(card).to_have_attribute("data-state", "completed")
        warnings = card.locator(".feed li.warn")
        expect(warnings).to_have_count(2)
        # seq 3 was the first tool_executing: the gap, then the orphan completion it leaves
        first, second = warnings.all_inner_texts()
        assert first == "seq 4 where 3 was expected"
        assert second.startswith("tool_completed for a call that never started")
        seqs = [int(s) for s in card.locator(".raw tbody tr td:nth-child(1)").all_inner_texts()]
        assert seqs == [0, 1, 2, 4, 5, 6, 7, 8, 9, 10]
        assert [(f["seq"], f["fault"]) for f in p.applied] == [(3, "drop:3")]
        w.assert_clean()
