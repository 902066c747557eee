"""The built site, opened page by page in a real browser (headless Chromium), as a reader sees it.

Needs Debian's Chromium (or any Chromium/Chrome named by $CHROMIUM), the Python package
`playwright` (its own browser downloads are never used), and the three CDN scripts the
pages load, fetched once by `bash tests/fetch_browser_assets.sh`: they are served from
that folder in place of the CDN, so the test needs no network. Without these the test
is skipped with a message; with CI=true a skip is a failure.
"""

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

from .conftest import ROOT
from .test_book_build import toc_pages

ASSETS = ROOT / "tests" / ".browser-assets"
CDN = {  # what the pages ask for -> where the local copy is
    "https://cdn.jsdelivr.net/npm/mathjax@3/": ASSETS / "mathjax",
    "https://cdn.jsdelivr.net/npm/@jupyter-widgets/html-manager@1.0.15/": ASSETS / "html-manager",
    "https://cdn.jsdelivr.net/npm/requirejs@2.3.4/require.js": ASSETS / "requirejs" / "require.js",
}
REPO = "gptlib/gpt2-shape-by-shape"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def chromium_path():
    for candidate in (os.environ.get("CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser"),
                      shutil.which("google-chrome")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def skip_or_fail(reason):
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser test cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def site(built_book):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("pip install playwright (the Python package only; no browser download is needed)")
    browser_path = chromium_path()
    if browser_path is None:
        skip_or_fail("no Chromium: apt-get install chromium (Debian), or set CHROMIUM=/path/to/chrome")
    if not all(path.exists() for path in CDN.values()):
        skip_or_fail("the pages' CDN scripts are missing: run bash tests/fetch_browser_assets.sh (needs npm)")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(built_book)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/"
    shots = built_book / "_screenshots"
    shots.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=CHROMIUM_ARGS)
        yield browser, base, shots
        browser.close()
    server.shutdown()


def open_page(browser, base, path, width=1280):
    """A page with the CDN served locally; returns (page, console errors, requests that left the machine)."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors, outside = [], []

    def route(request_route):
        url = request_route.request.url
        for prefix, local in CDN.items():
            if url.startswith(prefix):
                target = local / url[len(prefix):].split("?")[0] if local.is_dir() else local
                return request_route.fulfill(path=str(target)) if target.is_file() else request_route.abort()
        if url.startswith(base) or url.startswith("data:"):
            return request_route.continue_()
        outside.append(url)
        return request_route.abort()

    page.route("**/*", route)
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(base + path, wait_until="networkidle")
    return page, errors, outside


def wait_for_math(page):
    page.wait_for_function("!window.MathJax || (MathJax.startup && MathJax.startup.promise)", timeout=15000)
    page.evaluate("() => window.MathJax && MathJax.startup.promise")


@pytest.mark.parametrize("page_name", toc_pages())
def test_page_renders_for_a_reader(site, page_name):
    browser, base, shots = site
    page, errors, outside = open_page(browser, base, f"{page_name}.html")
    wait_for_math(page)
    name = Path(page_name).name

    assert not errors, f"console errors on {page_name}: {errors}"
    assert not outside, f"{page_name} asked for {outside}"
    broken = page.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
    assert not broken, f"images that did not load: {broken}"
    # Figures need alt text; a live widget's own drawing is exempt (each has a static figure too).
    no_alt = page.evaluate("Array.from(document.querySelectorAll('main img'))"
                           ".filter(i => !i.closest('.jupyter-widgets') && (!i.alt || i.alt.endsWith('.png')))"
                           ".map(i => i.src.slice(0, 80))")
    assert not no_alt, f"images without alt text: {no_alt}"
    text = page.inner_text("main")
    assert "\\frac" not in text and "\\sqrt" not in text, "raw LaTeX left on the page"
    has_math = page.evaluate("document.querySelectorAll('.math, span.math').length")
    if has_math:
        assert page.evaluate("document.querySelectorAll('mjx-container').length") >= has_math
    if name != "intro":
        assert page.locator("div.cell").count() > 0 and page.locator("div.cell_output").count() > 0
        colab = page.locator("a[href*='colab.research.google.com']").first.get_attribute("href")
        assert colab == f"https://colab.research.google.com/github/{REPO}/blob/main/{page_name}.ipynb"
        binder = page.locator("a[href*='mybinder.org']").first.get_attribute("href")
        assert binder.endswith(f"urlpath=lab/tree/{page_name}.ipynb")
    page.screenshot(path=str(shots / f"{name}.png"), full_page=False)
    page.close()


def test_next_and_previous_links_and_the_sidebar(site):
    browser, base, _ = site
    pages = toc_pages()
    page, errors, _ = open_page(browser, base, f"{pages[0]}.html")
    for current, following in zip(pages, pages[1:]):  # walk the whole book with "next"
        assert page.url.endswith(f"{current}.html")
        page.locator("a.right-next").first.click()
        page.wait_for_load_state("networkidle")
        assert page.url.endswith(f"{following}.html"), f"next from {current} went to {page.url}"
    page.locator("a.left-prev").first.click()
    page.wait_for_load_state("networkidle")
    assert page.url.endswith(f"{pages[-2]}.html")
    sidebar = page.locator("nav.bd-docs-nav a.reference.internal")
    assert sidebar.count() >= len(pages) - 1  # every chapter is in the sidebar
    sidebar.filter(has_text="The causal mask").first.click()
    page.wait_for_load_state("networkidle")
    assert page.url.endswith("book/04_causal_mask.html")
    assert not errors
    page.close()


def test_search_finds_attention(site):
    browser, base, _ = site
    page, errors, _ = open_page(browser, base, "search.html?q=attention")
    page.wait_for_selector("ul.search li", timeout=15000)
    assert page.locator("ul.search li").count() >= 3
    assert not errors
    page.close()


@pytest.mark.parametrize("page_name, sliders", [("05_many_heads", 2), ("10_generation", 3)])
def test_widgets_render_without_a_kernel(site, page_name, sliders):
    browser, base, shots = site
    page, errors, _ = open_page(browser, base, f"book/{page_name}.html")
    page.wait_for_selector(".widget-hslider", timeout=15000)
    assert page.locator(".widget-hslider").count() >= sliders
    assert not errors
    page.locator(".widget-hslider").first.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / f"{page_name}-widgets.png"))
    page.close()


def test_readable_on_a_phone(site):
    """At 390 px no page is wider than the screen: wide tables and long outputs scroll inside."""
    browser, base, shots = site
    for page_name in toc_pages():
        page, errors, _ = open_page(browser, base, f"{page_name}.html", width=390)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{page_name} is {overflow}px wider than a 390px phone screen"
        assert not errors, f"console errors on {page_name} at 390px: {errors}"
        if page_name.endswith("05_many_heads"):
            page.screenshot(path=str(shots / "05_many_heads-390px.png"))
        page.close()
