"""How long a page with a live explorer takes to be ready, from a local server, cold.

    make book && python benchmarks/live_page_load.py [--loads 5]

Serves the built book (``_build/html``) and the local copies of its CDN scripts exactly as
the browser test does (``bash tests/fetch_browser_assets.sh`` fetches them), opens each
page with a live explorer in headless Chromium, each time in a new browser context (an
empty cache), and reports the time from the start of navigation until gpt-live.js has
loaded the model and drawn every explorer on the page (``__gptLive.loadMs``). Then, on
chapter 10, the time per generated character: 200 characters greedy and 200 sampled at
temperature 0.8 (each step runs the model on the whole window, as the page has no cache).
"""

import argparse
import functools
import http.server
import statistics
import sys
import threading
from pathlib import Path

from common import machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for the browser test's pieces
from tests.conftest import ROOT  # noqa: E402
from tests.test_browser import (  # noqa: E402
    CHROMIUM_ARGS,
    SiteHandler,
    chromium_path,
    generate_in_page,
    open_live,
    open_page,
    wait_for_live,
)

PAGES = ["book/05_many_heads", "book/10_generation", "book/13_inside"]


def main():
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser()
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    html = ROOT / "_build" / "html"
    if not (html / "book" / "05_many_heads.html").exists():
        raise SystemExit(f"no built book in {html}: run make book first")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(SiteHandler, directory=str(html)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/"
    print(machine())
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        for name in PAGES:
            times = []
            for _ in range(args.loads):
                page, errors, outside = open_page(browser, base, f"{name}.html")  # a new context: cold cache
                wait_for_live(page)
                times.append(page.evaluate("__gptLive.loadMs") / 1000)
                assert not errors and not outside, (errors, outside)
                page.close()
            print(
                f"{name}: ready {statistics.median(times):.2f} s (median of {args.loads} cold loads), "
                f"slowest {max(times):.2f} s"
            )
        page, _, _, demo, box = open_live(browser, base, "generate")
        for temperature in (0, 0.8):
            generate_in_page(page, demo, box, "Romeo.\n", temperature, 200)
            ms = page.evaluate(f"{demo}.msPerChar")
            print(f"book/10_generation: {ms:.1f} ms per generated character at temperature {temperature}")
        page.close()
        browser.close()
    server.shutdown()


if __name__ == "__main__":
    main()
