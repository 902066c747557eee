"""The book builds with warnings as errors, as readers get it: into _build/html."""

import hashlib
import html
import json
import re

import yaml

from .conftest import ROOT


def toc_pages():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part["chapters"]]
    return pages


def expected_titles() -> dict:
    """page -> the <title> Jupyter Book gives it: the source's first heading, with the chapter
    number in numbered parts (counted on across them), then the book's title."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    book = yaml.safe_load((ROOT / "_config.yml").read_text())["title"]
    titles, number = {toc["root"]: f"{first_heading(toc['root'])} \u2014 {book}"}, 0
    for part in toc.get("parts", []):
        for chapter in part["chapters"]:
            page = chapter["file"]
            if part.get("numbered"):
                number += 1
                titles[page] = f"{number}. {first_heading(page)} \u2014 {book}"
            else:
                titles[page] = f"{first_heading(page)} \u2014 {book}"
    return titles


def source_of(page: str):
    return next(path for path in (ROOT / f"{page}.ipynb", ROOT / f"{page}.md") if path.exists())


def markdown_of(page: str) -> list[str]:
    source = source_of(page)
    if source.suffix == ".md":
        return [source.read_text()]
    cells = json.loads(source.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]


def first_heading(page: str) -> str:
    return next(line[2:].strip() for text in markdown_of(page) for line in text.splitlines() if line.startswith("# "))


def first_printed_line(page: str):
    """The first line a code cell of the notebook printed (its stored output), or None."""
    source = source_of(page)
    if source.suffix != ".ipynb":
        return None
    for cell in json.loads(source.read_text())["cells"]:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                lines = [line for line in "".join(output["text"]).splitlines() if line.strip()]
                if lines:
                    return lines[0]
    return None


def text_of(page_html: str) -> str:
    """What a reader sees: the tags removed, the entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page_html))


def test_every_page_has_its_own_title_and_its_stored_outputs(built_book):
    """Each page is its own source, built: the title comes from the source's first heading and
    the chapter's place in the table of contents, and the notebook's stored outputs (the build
    runs no code) are on the page."""
    titles = expected_titles()
    assert list(titles) == toc_pages()
    for page, title in titles.items():
        page_html = (built_book / f"{page}.html").read_text()
        assert html.unescape(re.search(r"<title>(.*?)</title>", page_html, re.S).group(1)) == title, page
        printed = first_printed_line(page)
        if printed is not None:
            assert printed in text_of(page_html), f"{page} lacks its output {printed!r}"
    notebooks = [page for page in titles if source_of(page).suffix == ".ipynb"]
    assert notebooks and all(first_printed_line(page) is not None for page in notebooks)  # so none goes unchecked
    assert (built_book / "search.html").is_file() and (built_book / "searchindex.js").is_file()


def test_the_live_pages_model_is_in_the_site(built_book):
    """The build exports the bundled model for the live explorers: the ONNX file and the JSON
    that names it, with the file's checksum."""
    folder = built_book / "_static" / "gpt-live"
    meta = json.loads((folder / "shakespeare-char.json").read_text(encoding="utf-8"))
    onnx = folder / meta["onnx"]
    assert meta["onnx"] == "shakespeare-char.onnx" and meta["name"] == "shakespeare-char"
    assert meta["onnx_sha256"] == hashlib.sha256(onnx.read_bytes()).hexdigest()


def test_chapters_are_numbered(built_book):
    html = (built_book / "book" / "05_many_heads.html").read_text()
    assert re.search(r"<h1>\s*5\.\s*Many heads", html) or re.search(
        r"<span class=\"section-number\">5\. </span>Many heads", html
    )


def test_internal_links_resolve(built_book):
    """Every relative href and src in every page points at a file that exists."""
    broken = []
    for page in built_book.rglob("*.html"):
        if "_static" in page.parts:  # theme template fragments, not pages
            continue
        for target in re.findall(r'(?:href|src)="([^"#?]+)[^"]*"', page.read_text()):
            if re.match(r"^[a-z]+:|^//", target) or target.startswith("mailto:"):
                continue
            if not (page.parent / target).resolve().exists():
                broken.append(f"{page.relative_to(built_book)} -> {target}")
    assert not broken, "\n".join(broken[:20])
