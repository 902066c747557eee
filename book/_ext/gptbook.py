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
"""

import json
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


def setup(app):
    app.connect("builder-inited", add_stylesheet)
    app.connect("config-inited", set_default_mode)
    app.connect("builder-inited", configure_widget_scripts)
    app.connect("html-page-context", keep_one_copy_of_each_script, priority=100)  # before any handler that ends the event
    return {"parallel_read_safe": True, "parallel_write_safe": True}
