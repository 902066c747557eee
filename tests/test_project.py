"""The repository keeps its promises: one environment, a book that lists its chapters,
and notebooks that were run before they were committed."""

import json
import pathlib
import re
import tomllib

import pytest
import yaml

from gptlib import GPTConfig

from .conftest import ROOT

DISTRIBUTION = "gpt2-shape-by-shape"  # free on PyPI; "gptlib" there is an unrelated package
COLAB_INSTALL = f'%pip install -q "{DISTRIBUTION}[book] @ git+https://github.com/gptlib/gpt2-shape-by-shape"'


def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def pins() -> dict[str, str]:
    """constraints.txt as {normalised name: version}."""
    from packaging.utils import canonicalize_name

    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            found[canonicalize_name(name)] = version
    return found


def test_every_dependency_is_pinned_and_its_pin_meets_pyprojects_lower_bound():
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = pyproject()["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += [r for r in extra if not r.startswith(DISTRIBUTION)]
    pinned = pins()
    for text in reqs:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} is a dependency but constraints.txt does not pin it"
        assert req.specifier.contains(pinned[name], prereleases=True), (
            f"constraints.txt pins {req.name}=={pinned[name]}, outside pyproject.toml's {req.specifier}"
        )
    for name in ("torch", "jupyter-book", "sphinx", "nbval", "transformers", "ruff", "onnxruntime", "playwright"):
        assert name in pinned, name


def test_make_environment_yml_and_ci_install_the_pinned_versions():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^CONSTRAINTS \?= constraints.txt$", makefile, re.M)
    assert re.search(r"^PIP = \$\(PYTHON\) -m pip install -c \$\(CONSTRAINTS\)$", makefile, re.M)
    recipe_lines = re.findall(r"^\t.*$", makefile, re.M)
    assert not [line for line in recipe_lines if "pip install" in line], "a pip install in the Makefile skips the pins"
    assert sum("$(PIP)" in line for line in recipe_lines) == 3  # torch, the book extra, the test extra
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-c constraints.txt" in pip_section and "-e .[test]" in pip_section
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    floor = pyproject()["project"]["requires-python"].removeprefix(">=")
    assert python.removeprefix("python=") >= floor
    torch_pin = f"torch=={pins()['torch']}"
    for name, job in (("test.yml", "test"), ("pages.yml", "build")):
        runs = [step.get("run", "") for step in workflow(name)["jobs"][job]["steps"]]
        assert any(f'"{torch_pin}"' in r for r in runs), f"{name} does not install {torch_pin}"
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.rstrip().endswith("make test")


def test_jupyter_book_is_pinned_to_1x():
    book = pyproject()["project"]["optional-dependencies"]["book"]
    assert "jupyter-book>=1.0.4.post1,<2" in book


def toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    walk(toc.get("chapters"))
    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    return files


def test_every_toc_entry_exists_and_every_notebook_is_listed():
    files = toc_files()
    for f in files:
        assert (ROOT / f).with_suffix(".md").exists() or (ROOT / f).with_suffix(".ipynb").exists(), f
    listed = {f.removesuffix(".ipynb") for f in files}
    for nb in (ROOT / "book").rglob("*.ipynb"):
        if ".ipynb_checkpoints" not in nb.parts:
            assert str(nb.relative_to(ROOT).with_suffix("")) in listed, f"{nb} is not in _toc.yml"


def notebooks():
    return sorted(p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.name)
def test_notebook_was_run_and_stored_no_error(path):
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code" or not "".join(cell["source"]).strip():
            continue
        assert cell.get("execution_count") is not None, f"{path.name}: code cell {i} was never run"
        tags = cell.get("metadata", {}).get("tags", [])
        if "raises-exception" not in tags:
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            assert not errors, f"{path.name}: code cell {i} stored an error"


def test_intro_configuration_table_matches_the_presets():
    rows = re.findall(r"^\| `([\w-]+)`[^|]*\|(.*)\|\s*$", (ROOT / "book" / "intro.md").read_text(), re.M)
    assert len(rows) >= 6
    for name, rest in rows:
        c = GPTConfig.from_preset(name)
        cells = [int(x) for x in rest.split("|")]
        assert cells == [c.n_layer, c.n_head, c.n_embd, c.head_size, c.block_size, c.vocab_size], name


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.name)
def test_every_figure_has_alt_text(path):
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        if any("image/png" in out.get("data", {}) for out in cell.get("outputs", [])):
            mystnb = cell.get("metadata", {}).get("mystnb", {})
            alt = mystnb.get("image", {}).get("alt") or mystnb.get("figure", {}).get("caption")
            assert alt and len(alt) > 20, f"{path.name}: the figure of code cell {i} has no alt text (mystnb.image.alt)"


def test_the_distribution_name_is_ours_everywhere():
    project = pyproject()["project"]
    assert project["name"] == DISTRIBUTION and project["scripts"] == {"gptlib": "gptlib.cli:main"}
    assert f"{DISTRIBUTION}[book]" in project["optional-dependencies"]["test"]
    assert COLAB_INSTALL in (ROOT / "CONTRIBUTING.md").read_text()
    readme = (ROOT / "README.md").read_text()
    assert f"`{DISTRIBUTION}`" in readme and "pip install gptlib" not in readme


def workflow(name):
    return yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())


def test_ci_fetches_the_browser_assets_and_fails_on_a_skip():
    steps = workflow("test.yml")["jobs"]["test"]["steps"]
    runs = [step.get("run", "") for step in steps]
    assert any("bash tests/fetch_browser_assets.sh" in r for r in runs)
    assert not any(re.search(r"install torch(\s|$)", r) for r in runs)
    test_step = next(step for step in steps if "make test" in step.get("run", ""))
    assert test_step["env"]["CI"] == "true" and test_step["env"]["CHROMIUM"]


def test_make_test_lints_and_fetches_the_browser_assets():
    makefile = (ROOT / "Makefile").read_text()
    test_recipe = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "browser-assets lint" in test_recipe and test_recipe.rstrip().endswith("-m pytest -n auto --dist loadfile")
    assert "ruff check $(LINTED)" in makefile and "ruff format --check $(LINTED)" in makefile
    assert "LINTED = conftest.py gptlib tests benchmarks scripts" in makefile
    assert "command -v npm" in makefile and "bash tests/fetch_browser_assets.sh" in makefile


@pytest.mark.parametrize(
    "value, expected",
    [
        ("true", True),
        ("1", True),
        ("yes", True),
        ("True", True),
        ("", False),
        ("0", False),
        ("false", False),
        (None, False),
    ],
)
def test_any_truthy_ci_counts(monkeypatch, value, expected):
    from .conftest import in_ci

    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert in_ci() is expected


def sanitize_rules():
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "tests" / "nbval_sanitize.cfg")
    return [(parser[s]["regex"], parser[s]["replace"]) for s in parser.sections()]


def sanitized(text: str) -> str:
    for regex, replace in sanitize_rules():
        text = re.sub(regex, replace, text)
    return text


def test_the_sanitize_file_hides_decimals_and_keeps_exact_things():
    # What may differ from one CPU to another: the digits of decimal fractions.
    assert sanitized("val loss 1.84, gap -0.01") == sanitized("val loss 1.79, gap 0.02")
    assert sanitized("max difference 2.5e-07, eps 1e-05") == sanitized("max difference 3.1e-08, eps 1e-06")
    # What must not: shapes, ids, counts, booleans, text.
    for a, b in [
        ("torch.Size([2, 512, 768])", "torch.Size([2, 512, 769])"),
        ("new tokens: [4254, 36496]", "new tokens: [4254, 36497]"),
        ("1,811,712 parameters", "1,811,713 parameters"),
        ("equal: True", "equal: False"),
        ("ROMEO.\nBut soft", "ROMEO.\nBut hard"),
    ]:
        assert sanitized(a) != sanitized(b), (a, b)


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.name)
def test_every_cell_whose_output_is_not_compared_asserts_something(path):
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        source = "".join(cell["source"])
        assert "NBVAL_IGNORE_OUTPUT" not in source, f"{path.name} cell {i}: use the tag nbval-ignore-output"
        tags = cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] == "code" and "nbval-ignore-output" in tags and "widget-explorer" not in tags:
            assert re.search(r"^\s*assert\b", source, re.M), (
                f"{path.name} cell {i}: its output is not compared, so it must assert what holds on every machine"
            )


@pytest.mark.parametrize("ci, status, word", [("true", 1, "failed"), ("", 0, "skipped")])
def test_a_skip_fails_in_ci_and_is_reported_elsewhere(tmp_path, ci, status, word):
    import os
    import subprocess
    import sys

    probe = tmp_path / "test_probe.py"
    probe.write_text("import pytest\n\n\ndef test_needs_a_browser():\n    pytest.skip('no browser here')\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-q", str(probe)],
        cwd=ROOT,
        env={**os.environ, "CI": ci},
        capture_output=True,
        text=True,
    )
    assert result.returncode == status and f"1 {word}" in result.stdout, result.stdout[-2000:]


DECIMAL = re.compile(r"-?\d+(\.\d+([eE][+-]?\d+)?|[eE][+-]?\d+)")
ASSERTS = re.compile(r"^\s*assert\b|assert_close\(|\bcheck_\w+\(", re.M)


def stored_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append("".join(out["text"]))
        elif "text/plain" in out.get("data", {}) and "image/png" not in out["data"]:
            parts.append("".join(out["data"]["text/plain"]))
    return "".join(parts)


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.name)
def test_every_cell_that_prints_a_decimal_asserts_in_it_or_the_next(path):
    # nbval does not compare decimals (tests/nbval_sanitize.cfg), so an assertion must hold them.
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    for k, cell in enumerate(cells):
        if "widget-explorer" in cell.get("metadata", {}).get("tags", []) or not DECIMAL.search(stored_text(cell)):
            continue
        here_or_next = "".join(cell["source"]) + "".join(cells[k + 1]["source"] if k + 1 < len(cells) else "")
        assert ASSERTS.search(here_or_next), f"{path.name} code cell {k} prints a decimal that no assertion holds"


def tracked_text_files():
    import subprocess

    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    suffixes = {".py", ".md", ".ipynb", ".js", ".yml", ".toml", ".cfg", ".txt", ".css"}
    return [ROOT / f for f in listed if pathlib.Path(f).suffix in suffixes and (ROOT / f).is_file()]


def test_the_project_speaks_to_its_users_not_of_its_issue_tracker():
    pattern = re.compile(r"\b(the )?issue (#?\d+|asks|asked)\b|\bissue #\d+|\(issue \d+\)", re.I)
    found = [
        f"{path.relative_to(ROOT)}: {m.group(0)!r}"
        for path in tracked_text_files()
        for m in pattern.finditer(path.read_text(errors="replace"))
    ]
    assert not found, found


def test_the_library_is_a_house_of_small_rooms():
    # One module per concept; the exercise checkers (one module per chapter) are not counted.
    sizes = {p.name: len(p.read_text().splitlines()) for p in (ROOT / "gptlib").glob("*.py")}
    assert max(sizes.values()) <= 320, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]


def test_ci_run_names_what_a_bare_machine_lacks_when_it_cannot_install_it(tmp_path):
    import os
    import shutil
    import subprocess

    # A machine with bash and Python but no Chromium and no npm, where we are not root and
    # there is no sudo: .ci/run must stop at once with one line naming what is missing.
    for tool in ("bash", "dirname", "python3"):
        (tmp_path / tool).symlink_to(shutil.which(tool))
    (tmp_path / "id").write_text("#!/bin/sh\necho 1000\n")
    (tmp_path / "id").chmod(0o755)
    env = {"PATH": str(tmp_path), "HOME": os.environ.get("HOME", "/tmp")}
    result = subprocess.run(
        [str(tmp_path / "bash"), str(ROOT / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(".ci/run: missing chromium nodejs npm"), result.stderr
