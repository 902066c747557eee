"""The book builds with warnings as errors, as readers get it: into _build/html."""

import re

import yaml

from .conftest import ROOT


def toc_pages():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part["chapters"]]
    return pages


def test_every_page_is_built_with_its_title(built_book):
    for page in toc_pages():
        html = (built_book / f"{page}.html").read_text()
        assert "<title>" in html, page
    assert "GPT-2, shape by shape" in (built_book / "book" / "intro.html").read_text()
    assert (built_book / "search.html").is_file() and (built_book / "searchindex.js").is_file()


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
