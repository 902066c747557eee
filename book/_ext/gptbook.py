"""Small fixes to how the book's pages load, so that they run without console errors.

- sphinx-thebe can register its inline configuration script twice; the second copy
  fails with "Identifier 'THEBE_JS_URL' has already been declared". Each page keeps
  one copy of every script.
- pydata-sphinx-theme reads the colour mode from ``html_context["default_mode"]``;
  Jupyter Book leaves it empty, and the theme then logs "Got invalid theme mode".
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


def setup(app):
    app.connect("config-inited", set_default_mode)
    app.connect("html-page-context", keep_one_copy_of_each_script, priority=100)  # before any handler that ends the event
    return {"parallel_read_safe": True, "parallel_write_safe": True}
