"""Small fixes to how the book's pages load, so that they run without console errors.

- sphinx-thebe can register its inline configuration script twice; the second copy
  fails with "Identifier 'THEBE_JS_URL' has already been declared". Each page keeps
  one copy of every script.
- pydata-sphinx-theme reads the colour mode from ``html_context["default_mode"]``;
  Jupyter Book leaves it empty, and the theme then logs "Got invalid theme mode".
- A stylesheet keeps phone-width pages from scrolling sideways (long inline code,
  wide equations and tables scroll or wrap inside the text column).
- The widgets' HTML manager (which draws saved widget state without a kernel) is an AMD
  module: require.js must be told that it lives on the CDN, or its fonts are requested
  next to the page. It also typesets widget labels with MathJax 2's ``MathJax.Hub.Queue``,
  which MathJax 3 no longer has; a two-line adapter forwards it to ``typesetPromise``.
- The live explorers run the book's own model in the reader's browser, so that a reader can
  try any text without a kernel: at build time the bundled Shakespeare model is exported from
  the package's safetensors to ONNX, with the JSON the page needs (``gptlib.export``),
  into the site's ``_static/gpt-live/``; ``gpt-live.js`` mounts the explorers on the
  placeholders ``<div class="gpt-live" data-demo="attention|generate">`` with
  onnxruntime-web, loaded from the CDN URL ``gpt_live_ort`` (``_config.yml``). The export
  is kept in the doctree folder and redone only when the model, gptlib.export or torch change.
  Beside it goes the building Python's table of printable characters, so that the page's
  error messages print characters exactly as gptlib's (Python's ``repr``) do.
"""

import hashlib
import json
import sys
import unicodedata
from pathlib import Path

MATHJAX2_ADAPTER = """
document.addEventListener("DOMContentLoaded", function () {
  var mj = window.MathJax;
  if (mj && mj.startup && !mj.Hub) {
    mj.Hub = {Queue: function (job) {
      var el = job && job[2];
      return mj.startup.promise.then(function () { return mj.typesetPromise(el ? [el] : undefined); });
    }};
  }
});
"""


def keep_one_copy_of_each_script(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        attributes = getattr(script, "attributes", {})
        key = (getattr(script, "filename", None) or "", attributes.get("body"), attributes.get("src"))  # None and "" alike
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"][:] = unique  # in place: handlers after this one still add to the same list


def set_default_mode(app, config):
    config.html_context.setdefault("default_mode", "auto")


def configure_widget_scripts(app):
    """Point require.js at the CDN folder of the HTML manager named in nb_ipywidgets_js."""
    manager = next((url for url in app.config.nb_ipywidgets_js if "/html-manager@" in url), None)
    if manager is None:
        return
    folder = manager.rsplit("/", 1)[0]  # .../html-manager@VERSION/dist
    paths = {"@jupyter-widgets/html-manager/dist": folder}
    app.add_js_file(None, body=f"var require = {{paths: {json.dumps(paths)}}};", priority=100)
    app.add_js_file(None, body=MATHJAX2_ADAPTER, priority=100)


def add_stylesheet(app):
    app.config.html_static_path.append(str(Path(__file__).parent / "static"))
    app.add_css_file("gptbook.css")


LIVE_MODEL = "shakespeare-char"
PRINTABLE_FILE = "python-printable.json"


def write_printable_table(path: Path) -> None:
    """Write where this Python's ``str.isprintable()`` changes over all code points.

    repr() escapes exactly the characters that are not printable, and which those are depends
    on the Unicode version of the Python (3.11 has Unicode 14, Chromium a newer one), so the page
    takes them from the Python that builds the book rather than from the browser. The file holds
    the gaps between the code points where printability flips, starting from "printable"
    (about 700 runs, 3.5 kB).
    """
    bounds, printable = [], True
    for code in range(sys.maxunicode + 1):
        if chr(code).isprintable() != printable:
            bounds.append(code)
            printable = not printable
    gaps = [b - a for a, b in zip([0, *bounds], bounds)]
    table = {"format": "python-printable/1", "python": sys.version.split()[0],
             "unicode": unicodedata.unidata_version, "gaps": gaps}
    text = json.dumps(table, separators=(",", ":"))
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def export_live_model(app):
    """Export the bundled model for the live pages into a folder added to html_static_path."""
    if app.builder.format != "html":
        return
    import gptlib.export
    import torch
    from gptlib.pretrained import bundled_model_path, load_shakespeare_char
    from sphinx.errors import ExtensionError
    from sphinx.util import logging

    if not app.config.gpt_live_ort:
        raise ExtensionError("gptbook: set gpt_live_ort in _config.yml (sphinx.config) to onnxruntime-web's "
                             "ort.wasm.min.mjs URL on the CDN, with a pinned version")
    folder = Path(app.doctreedir) / "gpt-live-static"  # its content is copied into the site's _static
    target = folder / "gpt-live" / f"{LIVE_MODEL}.onnx"
    stamp_file = Path(app.doctreedir) / "gpt-live-exported-from.sha256"  # outside the copied folder
    stamp = hashlib.sha256()
    for part in (Path(bundled_model_path()).read_bytes(), Path(gptlib.export.__file__).read_bytes(), torch.__version__.encode()):
        stamp.update(hashlib.sha256(part).digest())
    fresh = target.is_file() and gptlib.export.meta_path(target).is_file() and stamp_file.is_file()
    if not (fresh and stamp_file.read_text() == stamp.hexdigest()):
        logging.getLogger(__name__).info(f"gpt-live: exporting {LIVE_MODEL} to ONNX for the live pages")
        model, tok, _ = load_shakespeare_char()
        gptlib.export.export_for_page(model, tok, target, name=LIVE_MODEL)
        stamp_file.write_text(stamp.hexdigest())
    write_printable_table(folder / "gpt-live" / PRINTABLE_FILE)
    app.config.html_static_path.append(str(folder))
    app.add_js_file("gpt-live.js", **{"data-ort": app.config.gpt_live_ort,
                                      "data-model": f"gpt-live/{LIVE_MODEL}.json",
                                      "data-printable": f"gpt-live/{PRINTABLE_FILE}"})
    app.add_css_file("gpt-live.css")


def setup(app):
    app.add_config_value("gpt_live_ort", "", "html")
    app.connect("builder-inited", add_stylesheet)
    app.connect("builder-inited", export_live_model)
    app.connect("config-inited", set_default_mode)
    app.connect("builder-inited", configure_widget_scripts)
    app.connect("html-page-context", keep_one_copy_of_each_script, priority=100)  # before any handler that ends the event
    return {"parallel_read_safe": True, "parallel_write_safe": True}
