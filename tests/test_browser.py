"""The built site, opened page by page in a real browser (headless Chromium), as a reader sees it.

Needs Debian's Chromium (or any Chromium/Chrome named by $CHROMIUM), the Python package
`playwright` (its own browser downloads are never used), and the CDN scripts the pages
load, fetched once by `bash tests/fetch_browser_assets.sh`: the local server serves them
from that folder in place of the CDN, so the test needs no network. Without these the
test is skipped with a message; on a CI machine (conftest.in_ci) it fails instead, so
that CI never passes without having run it.

The live explorers (book/_ext/static/gpt-live.js) run the book's model in the page with
onnxruntime-web; their tests compare what the page computes, samples, prints and draws
with gptlib.
"""

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest
import torch
import yaml

from .conftest import ROOT, skip_or_fail
from .test_book_build import toc_pages

ASSETS = ROOT / "tests" / ".browser-assets"
ORT_URL = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]["gpt_live_ort"]
CDN = {  # what the pages ask for -> where the local copy is
    "https://cdn.jsdelivr.net/npm/mathjax@3/": ASSETS / "mathjax",
    "https://cdn.jsdelivr.net/npm/@jupyter-widgets/html-manager@1.0.15/": ASSETS / "html-manager",
    "https://cdn.jsdelivr.net/npm/requirejs@2.3.4/require.js": ASSETS / "requirejs" / "require.js",
    ORT_URL.split("/dist/")[0] + "/": ASSETS / "onnxruntime-web",  # .../onnxruntime-web@VERSION/
}
LOCAL_CDN = "_cdn/"  # the local server's path for the CDN copies
REPO = "gptlib/gpt2-shape-by-shape"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium_path():
    for candidate in (
        os.environ.get("CHROMIUM"),
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        shutil.which("google-chrome"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return None


# FULL_PAGE_SHOTS=1 pytest tests/test_browser.py -k reader saves every page whole, at
# 1280 px and at 390 px, into _build/html/_screenshots/, to look at before a release.
FULL_PAGE = os.environ.get("FULL_PAGE_SHOTS", "").strip().lower() in {"1", "true", "yes"}


class SiteHandler(http.server.SimpleHTTPRequestHandler):
    """The built book, and under /_cdn/ the local copies of the CDN files. The pages ask the
    CDN for those (cross-origin, as modules and fetches), so every answer allows any origin."""

    def translate_path(self, path):
        if path.lstrip("/").startswith(LOCAL_CDN):
            target = (ASSETS / path.lstrip("/")[len(LOCAL_CDN) :].split("?")[0]).resolve()
            return str(target) if target.is_relative_to(ASSETS.resolve()) else str(ASSETS / "missing")
        return super().translate_path(path)

    def end_headers(self):
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()

    def log_message(self, *args):
        pass


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
    fetched = (ASSETS / "onnxruntime-web" / "package.json").read_text()
    assert f'"version": "{ORT_URL.split("@")[-1].split("/")[0]}"' in fetched, (
        "tests/.browser-assets has another onnxruntime-web than _config.yml names: delete it and fetch again"
    )

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(SiteHandler, directory=str(built_book))
    )
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
            if url.startswith(prefix):  # redirected to the local server's copy
                target = local / url[len(prefix) :].split("?")[0] if local.is_dir() else local
                if not target.is_file():
                    return request_route.abort()
                local_url = base + LOCAL_CDN + target.relative_to(ASSETS).as_posix()
                return request_route.fulfill(
                    status=302, headers={"Location": local_url, "Access-Control-Allow-Origin": "*"}
                )
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
    broken = page.evaluate(
        "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    )
    assert not broken, f"images that did not load: {broken}"
    # Figures need alt text; a live widget's own drawing is exempt (each has a static figure too).
    no_alt = page.evaluate(
        "Array.from(document.querySelectorAll('main img'))"
        ".filter(i => !i.closest('.jupyter-widgets') && (!i.alt || i.alt.endsWith('.png')))"
        ".map(i => i.src.slice(0, 80))"
    )
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
    # The header as sphinx-book-theme draws it: one search field (in the sidebar), and the book
    # from the top of the window, with no band of header navbar above it.
    searches = page.locator(".search-button-field, input[type=search]").filter(visible=True)
    assert searches.count() == 1, f"{page_name} shows {searches.count()} search fields at 1280px"
    top = page.evaluate("document.querySelector('.bd-container').getBoundingClientRect().top + window.scrollY")
    assert top <= 1, f"{page_name} has a {top}px band above the book at 1280px"
    page.screenshot(path=str(shots / f"{name}.png"), full_page=FULL_PAGE)

    # The same page on a phone: at 390 px nothing is wider than the screen (wide tables,
    # long outputs and equations scroll inside the text column).
    page.set_viewport_size({"width": 390, "height": 900})
    page.wait_for_function("window.innerWidth === 390")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{page_name} is {overflow}px wider than a 390px phone screen"
    assert not errors, f"console errors on {page_name} at 390px: {errors}"
    if FULL_PAGE or name == "05_many_heads":
        page.screenshot(path=str(shots / f"{name}-390px.png"), full_page=FULL_PAGE)
    page.close()


def test_next_and_previous_links_and_the_sidebar(site):
    browser, base, _ = site
    pages = toc_pages()
    page, errors, _ = open_page(browser, base, f"{pages[0]}.html")
    for current, following in zip(pages, pages[1:]):  # walk the whole book with "next"
        assert page.url.endswith(f"{current}.html")
        page.locator("a.right-next").first.click()
        page.wait_for_load_state("load")
        assert page.url.endswith(f"{following}.html"), f"next from {current} went to {page.url}"
    page.locator("a.left-prev").first.click()
    page.wait_for_load_state("load")
    assert page.url.endswith(f"{pages[-2]}.html")
    sidebar = page.locator("nav.bd-docs-nav a.reference.internal")
    assert sidebar.count() >= len(pages) - 1  # every chapter is in the sidebar
    sidebar.filter(has_text="The causal mask").first.click()
    page.wait_for_load_state("load")
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
    """The ipywidgets explorers render from their saved state; on a page with a live explorer,
    their sliders (which need a kernel) are hidden once the live one has loaded."""
    browser, base, shots = site
    page, errors, _ = open_page(browser, base, f"book/{page_name}.html")
    page.wait_for_selector(".widget-hslider", state="attached", timeout=15000)
    assert page.locator(".widget-hslider").count() >= sliders
    page.wait_for_load_state("load")
    if page.locator(".gpt-live").count():
        wait_for_live(page)
        dead = page.locator(".tag_widget-explorer .cell_output")
        assert dead.count() >= 1, "the ipywidgets explorer cell has no tag widget-explorer"
        assert all(not dead.nth(i).is_visible() for i in range(dead.count()))
        assert page.locator(".widget-hslider:visible").count() == 0
        assert page.locator(".gpt-live-note").first.is_visible()
        page.locator(".gpt-live").first.scroll_into_view_if_needed()
    else:
        page.locator(".widget-hslider").first.scroll_into_view_if_needed()
    assert not errors
    page.screenshot(path=str(shots / f"{page_name}-widgets.png"))
    page.close()


# ---------------------------------------------------------------------------------------------
# The live explorers: the book's model in the page (onnxruntime-web), compared with gptlib.

LIVE_PAGES = {"attention": "book/05_many_heads", "generate": "book/10_generation"}
ATTENTION_PAGES = ["book/05_many_heads", "book/13_inside"]  # every page with an attention explorer
PROMPT = "Romeo.\nBut soft"
LINE = "But soft, what light through yonder window breaks? It is the east."
DARK = (8, 48, 107)  # gpt-live.js draws weight w as 255 - (255 - DARK) * w in each channel
MASKED = (221, 221, 221)


@pytest.fixture(scope="module")
def shakespeare():
    from gptlib.pretrained import load_shakespeare_char

    model, tok, _ = load_shakespeare_char()
    return model, tok


def wait_for_live(page):
    """Wait until the live explorers on the page have loaded (an error in loading fails here)."""
    page.wait_for_function("window.__gptLive && window.__gptLive.ready", timeout=15000)
    page.evaluate("() => window.__gptLive.ready")
    assert page.evaluate("__gptLive.demos.length") == page.locator(".gpt-live[data-demo]").count()


def open_live(browser, base, demo, width=1280, page_name=None):
    page_name = page_name or LIVE_PAGES[demo]
    page, errors, outside = open_page(browser, base, f"{page_name}.html", width=width)
    page.wait_for_load_state("load")  # the whole page is parsed
    assert page.locator(f".gpt-live[data-demo={demo}]").count() >= 1, f"{page_name} has no {demo} explorer"
    wait_for_live(page)
    index = page.evaluate(f"__gptLive.demos.findIndex(d => d.kind === '{demo}')")
    return page, errors, outside, f"__gptLive.demos[{index}]", page.locator(f".gpt-live[data-demo={demo}]").first


def type_line(page, demo, box, text):
    """Put text in the attention explorer and wait until the page has run the model on it (or refused it)."""
    done = page.evaluate(f"{demo}.updates")
    box.locator("input[type=text]").evaluate(
        "(el, text) => { el.value = text; el.dispatchEvent(new Event('input')); }", text
    )
    page.wait_for_function(f"{demo}.updates > {done}", timeout=30000)
    assert page.evaluate(f"{demo}.error") or page.evaluate(f"{demo}.drawn.text") == text


def drawn_colours(page, demo):
    """Read the canvas back: the colour at the centre of each square, [T][T][3]."""
    return page.evaluate(f"""() => {{
        const d = {demo}.drawn, canvas = {demo}.element.querySelector("canvas");
        const px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        const centre = (k) => Math.floor((d.margin + (k + 0.5) * d.cell) * d.dpr);
        return Array.from({{length: d.T}}, (_, i) => Array.from({{length: d.T}}, (_, j) => {{
            const at = 4 * (centre(i) * canvas.width + centre(j));
            return [px[at], px[at + 1], px[at + 2]];
        }}));
    }}""")


def test_live_attention_equals_gptlib(site, shakespeare):
    from gptlib.interpret import attention_patterns

    browser, base, shots = site
    model, tok = shakespeare
    config = model.config
    page, errors, outside, demo, box = open_live(browser, base, "attention")
    line = LINE[: config.block_size]
    type_line(page, demo, box, line)
    assert page.evaluate(f"{demo}.error") is None
    idx = torch.tensor([tok.encode(line)])
    T = idx.size(1)
    with torch.no_grad():
        expected_logits, _ = model(idx)
    logits = torch.tensor(page.evaluate(f"Array.from({demo}.output.logits)")).view(T, config.vocab_size)
    torch.testing.assert_close(logits, expected_logits[0], atol=1e-4, rtol=0)

    expected = attention_patterns(model, idx[0])  # [L, H, T, T]
    meta = page.evaluate("__gptLive.model.meta")
    heads = [(0, 0), (config.n_layer - 1, config.n_head - 1)]
    heads += [(h["layer"], h["head"]) for h in meta["heads"] if h["role"] != "other"][:2]
    before = None
    for layer, head in heads:
        box.locator("select.gpt-live-layer").select_option(str(layer))
        box.locator("select.gpt-live-head").select_option(str(head))
        drawn = page.evaluate(f"{demo}.drawn")
        assert (drawn["layer"], drawn["head"], drawn["T"]) == (layer, head, T)
        torch.testing.assert_close(torch.tensor(drawn["weights"]).view(T, T), expected[layer, head], atol=1e-4, rtol=0)
        pixels = torch.tensor(drawn_colours(page, demo), dtype=torch.float64)  # [T, T, 3]
        below = torch.ones(T, T, dtype=torch.bool).tril()
        assert (pixels[~below] == torch.tensor(MASKED, dtype=torch.float64)).all(), (
            "later positions are not drawn as masked"
        )
        from_red = (255 - pixels[..., 0]) / (255 - DARK[0])  # the weight each square's colour stands for
        assert (from_red[below] - expected[layer, head][below].double()).abs().max() < 0.01
        image = box.locator("canvas").evaluate("c => c.toDataURL()")
        assert image != before, f"the drawing did not change for layer {layer}, head {head}"
        before = image
        role = meta["heads"][layer * config.n_head + head]["role"]
        hint = box.locator(".gpt-live-hint").inner_text()
        assert f"Layer {layer}, head {head}" in hint
        assert (f"{role} head" in hint) if role != "other" else "no simple pattern" in hint
    box.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "live-attention.png"))

    # Bad input gets gptlib's errors, word for word.
    unknown = next(c for c in "~#%$@é" if c not in tok.stoi)
    type_line(page, demo, box, f"ROMEO{unknown}")
    with pytest.raises(ValueError) as gptlib_error:
        tok.encode(f"ROMEO{unknown}")
    assert page.evaluate(f"{demo}.error") == str(gptlib_error.value) == box.locator(".gpt-live-error").inner_text()
    too_long = tok.chars[-1] * (config.block_size + 1)
    type_line(page, demo, box, too_long)
    with pytest.raises(ValueError) as gptlib_error:
        model(torch.tensor([tok.encode(too_long)]))
    assert page.evaluate(f"{demo}.error") == str(gptlib_error.value)
    assert not errors, errors
    assert not outside, outside
    page.close()


@pytest.mark.parametrize("page_name", ATTENTION_PAGES)
def test_live_attention_explorer_draws_on_every_page(site, shakespeare, page_name):
    """Each page's explorer loads the model and draws its default line as gptlib computes it."""
    from gptlib.interpret import attention_patterns

    browser, base, shots = site
    model, tok = shakespeare
    page, errors, outside, demo, box = open_live(browser, base, "attention", page_name=page_name)
    drawn = page.evaluate(f"{demo}.drawn")
    assert drawn is not None and page.evaluate(f"{demo}.error") is None
    idx = torch.tensor(tok.encode(drawn["text"]))
    expected = attention_patterns(model, idx)[drawn["layer"], drawn["head"]]  # [T, T]
    T = idx.numel()
    torch.testing.assert_close(torch.tensor(drawn["weights"]).view(T, T), expected, atol=1e-4, rtol=0)
    assert not errors, errors
    assert not outside, outside
    page.close()


def generate_in_page(page, demo, box, prompt, temperature, characters, top_k=None, top_p=None):
    settings = {"textarea": prompt, ".gpt-live-temperature": temperature, ".gpt-live-count": characters}
    if top_k is not None:
        settings[".gpt-live-top-k"] = top_k
    if top_p is not None:
        settings[".gpt-live-top-p"] = top_p
    for selector, value in settings.items():
        box.locator(selector).evaluate("(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", str(value))
    box.locator("button.gpt-live-go").click()
    page.wait_for_function(f"{demo}.state === 'done' || {demo}.error", timeout=120000)
    assert not page.evaluate(f"{demo}.error"), page.evaluate(f"{demo}.error")
    return box.locator(".gpt-live-generated").inner_text()


def test_live_greedy_generation_equals_gptlib(site, shakespeare):
    from gptlib.generate import generate

    browser, base, shots = site
    model, tok = shakespeare
    page, errors, outside, demo, box = open_live(browser, base, "generate")
    default = box.locator("textarea").input_value()
    assert default == "Romeo.\n", "the default prompt names a speaker as the corpus does"
    tok.encode(default)  # every character is in the vocabulary
    n = model.config.block_size + 8  # past the context: the window slides, as in gptlib
    text = generate_in_page(page, demo, box, PROMPT, 0, n)
    idx = torch.tensor([tok.encode(PROMPT)])
    expected = tok.decode(generate(model, idx, n, temperature=0)[0, idx.size(1) :].tolist())
    assert text == expected
    with torch.no_grad():
        logits, _ = model(idx)
    torch.testing.assert_close(torch.tensor(page.evaluate(f"{demo}.firstLogits")), logits[0, -1], atol=1e-4, rtol=0)
    bars = box.locator(".gpt-live-bar")
    assert bars.count() == 1 and box.locator(".gpt-live-chosen .gpt-live-bar-value").inner_text() == "1.000"
    assert box.locator(".gpt-live-chosen .gpt-live-bar-char").inner_text() == {" ": "\u2423", "\n": "\u21b5"}.get(
        expected[-1], expected[-1]
    )
    assert box.locator(".gpt-live-prompt").inner_text() == PROMPT

    # Sampling: a full run, with the distribution drawn at each step.
    sampled = generate_in_page(page, demo, box, "Juliet.", 0.8, 60, top_k=20, top_p=0.9)
    assert len(sampled) == 60 and set(sampled) <= set(tok.chars)
    assert 1 <= bars.count() <= 10 and box.locator(".gpt-live-chosen").count() == 1
    box.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "live-generate.png"))

    with pytest.raises(ValueError) as gptlib_error:
        tok.encode("ROMEO~é")
    box.locator("textarea").fill("ROMEO~é")
    box.locator("button.gpt-live-go").click()
    page.wait_for_function(f"{demo}.error", timeout=10000)
    assert page.evaluate(f"{demo}.error") == str(gptlib_error.value)
    assert not errors, errors
    assert not outside, outside
    page.close()


def test_live_sampling_equals_next_token_probs(site):
    """The page's one piece of maths: temperature, then top-k, then top-p, as gptlib does it."""
    from gptlib.generate import next_token_probs

    browser, base, _ = site
    page, errors, _, _, _ = open_live(browser, base, "generate")
    generator = torch.Generator().manual_seed(0)
    for temperature, top_k, top_p in [
        (1.0, None, None),
        (0.7, 5, None),
        (1.3, None, 0.9),
        (0.8, 10, 0.5),
        (0.0, None, None),
        (2.0, 1, 0.3),
        (0.5, 83, 1.0),
    ]:
        logits = 3 * torch.randn(83, generator=generator, dtype=torch.float64)
        logits[7] = logits[3]  # a tie: top-k keeps both or neither
        probs = page.evaluate(
            "([l, t, k, p]) => __gptLive.nextTokenProbs(l, t, k, p)", [logits.tolist(), temperature, top_k, top_p]
        )
        expected = next_token_probs(logits[None], temperature, top_k, top_p)[0]
        torch.testing.assert_close(
            torch.tensor(probs, dtype=torch.float64),
            expected,
            atol=1e-9,
            rtol=0,
            msg=f"temperature {temperature}, top_k {top_k}, top_p {top_p}",
        )
    assert not errors
    page.close()


# Distributions at the edges of the sampling rule: (what, probabilities, top_k, top_p, the tokens
# gptlib keeps). The logits are the probabilities' logs, so the softmax gives them back up to
# rounding, and rounding is what most of these are about: a running sum that is p on paper can
# come out a hair below p, and gptlib still counts such a set as reaching p (TOP_P_TOLERANCE).
# No tie here straddles the top-p boundary: which of two tied tokens gptlib keeps there depends
# on the order torch.sort happens to give them.
SAMPLING_BOUNDARIES = [
    ("top_p is the mass of the top two", [0.5, 0.3, 0.15, 0.05], None, 0.8, [0, 1]),
    ("top_p is within the tolerance above the top two", [0.5, 0.3, 0.15, 0.05], None, 0.8 + 5e-7, [0, 1]),
    ("top_p is past the tolerance above the top two", [0.5, 0.3, 0.15, 0.05], None, 0.8 + 5e-6, [0, 1, 2]),
    ("top_p is at a running sum: ties on both sides", [0.3, 0.3, 0.2, 0.2], None, 0.6, [0, 1]),
    ("top-k keeps both tokens tied with the k-th", [0.5, 0.3, 0.1, 0.1, 0.01], 3, None, [0, 1, 2, 3]),
    ("top-k keeps the tied pair, top-p then drops both", [0.5, 0.3, 0.1, 0.1, 0.01], 3, 0.8, [0, 1]),
]


def test_live_sampling_at_the_boundaries_equals_next_token_probs(site):
    from gptlib.generate import TOP_P_TOLERANCE, next_token_probs

    browser, base, _ = site
    page, errors, _, _, _ = open_live(browser, base, "generate")
    assert page.evaluate("__gptLive.TOP_P_TOLERANCE") == TOP_P_TOLERANCE
    for what, probs, top_k, top_p, kept in SAMPLING_BOUNDARIES:
        logits = torch.tensor(probs, dtype=torch.float64).log()
        expected = next_token_probs(logits[None], 1.0, top_k, top_p)[0]
        assert expected.nonzero().flatten().tolist() == kept, f"gptlib's rule has changed: {what}"
        got = page.evaluate("([l, k, p]) => __gptLive.nextTokenProbs(l, 1, k, p)", [logits.tolist(), top_k, top_p])
        torch.testing.assert_close(torch.tensor(got, dtype=torch.float64), expected, atol=1e-12, rtol=0, msg=what)
    assert not errors
    page.close()


# Characters that Python's repr() escapes, or prints, where an imitation easily differs: a no-break
# space, NEL (a C1 control), a zero-width space and a byte-order mark (format characters), a line
# separator, a private-use character, a combining accent (printed), an emoji outside the BMP
# (printed), a tag character outside the BMP (escaped), a code point that this Python's Unicode
# leaves unassigned but a newer one (the browser's) assigns, quotes and backslashes.
REPR_STRINGS = [
    "\xa0",
    "\x85",
    "\u200b",
    "\ufeff",
    "\u2028",
    "\ue000",
    "cafe\u0301",
    "\U0001f642",
    "\U000e0001",
    "\U0001fae9",
    "'",
    '"',
    "\\",
    "it's",
    'say "hi"',
    "both ' and \"",
    "C:\\new\\table",
    "tab\tcr\rlf\n\x00\x1f\x7f\x80\x9f\xad",
]
# Texts with characters the Shakespeare vocabulary lacks, for gptlib's error, which lists them
# sorted (by code point) and repr()'d: the last one has 12, of which the error shows the first 10,
# some of them outside the BMP and some from U+E000 to U+FFFF (UTF-16 order differs there).
UNKNOWN_TEXTS = [
    "Romeo\xa0and\x85Juliet\u200b",
    "cafe\u0301\u200b",
    "\U0001f642 \uff01",
    "back\\slash \ufeff",
    "\U0001f600\U0001f642\U000e0001\U0001f680\U00010000\U0001d173\ue000\ufeff\uff01\uff1f\uffe5\ufb01",
]


def test_live_page_prints_and_sorts_characters_as_python(site, shakespeare):
    _, tok = shakespeare
    browser, base, _ = site
    page, errors, _, _, _ = open_live(browser, base, "attention")
    for text in REPR_STRINGS:
        assert page.evaluate("t => __gptLive.pyRepr(t)", text) == repr(text)
    # Every code point: the page escapes exactly those that this Python's repr() escapes ...
    escaped_from = page.evaluate("""() => {
        const flips = [];
        for (let code = 0, escaped = false; code <= 0x10ffff; code++) {
            if (__gptLive.pyRepr(String.fromCodePoint(code)).includes("\\\\") !== escaped) {
                flips.push(code);
                escaped = !escaped;
            }
        }
        return flips;
    }""")
    expected_flips, escaped = [], False
    for code in range(0x110000):
        if ("\\" in repr(chr(code))) != escaped:
            expected_flips.append(code)
            escaped = not escaped
    assert escaped_from == expected_flips
    # ... and writes them as it does, checked on each side of every flip.
    codes = sorted({c for flip in expected_flips for c in (flip - 1, flip) if 0 <= c <= 0x10FFFF})
    got = page.evaluate("codes => codes.map((c) => __gptLive.pyRepr(String.fromCodePoint(c)))", codes)
    assert got == [repr(chr(c)) for c in codes]

    for text in UNKNOWN_TEXTS:
        with pytest.raises(ValueError) as gptlib_error:
            tok.encode(text)
        message = page.evaluate("t => { try { __gptLive.model.encode(t); } catch (e) { return e.message; } }", text)
        assert message == str(gptlib_error.value), text
    assert not errors
    page.close()


@pytest.mark.parametrize("demo", ["attention", "generate"])
def test_live_explorers_fit_a_phone(site, demo):
    browser, base, shots = site
    page, errors, _, _, box = open_live(browser, base, demo, width=390)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the {demo} explorer makes the page {overflow}px wider than a 390px phone"
    right = box.evaluate(
        "el => Math.max(...[...el.querySelectorAll('*')].filter(c => !c.closest('.gpt-live-canvas-box'))"
        ".map(c => c.getBoundingClientRect().right))"
    )
    assert right <= 390, f"a control of the {demo} explorer reaches {right}px"
    box.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / f"live-{demo}-390px.png"))
    assert not errors, errors
    page.close()
