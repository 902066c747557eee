"""The repository keeps its promises: one environment, a book that lists its chapters,
and notebooks that were run before they were committed."""

import json
import re

import pytest
import tomllib
import yaml

from gptlib import GPTConfig

from .conftest import ROOT

DISTRIBUTION = "gpt2-shape-by-shape"  # free on PyPI; "gptlib" there is an unrelated package
COLAB_INSTALL = f'%pip install -q "{DISTRIBUTION}[book] @ git+https://github.com/gptlib/gpt2-shape-by-shape"'


def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_names_the_same_packages_as_pyproject():
    project = pyproject()["project"]
    wanted = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted |= {req for req in extra if not req.startswith(DISTRIBUTION)}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {req for req in pip_section if not req.startswith("-e")}
    assert listed == wanted
    assert "-e ." in pip_section


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


def test_ci_fetches_the_browser_assets_and_pins_the_makefiles_torch():
    torch_pin = re.search(r"^TORCH \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert torch_pin == "torch==2.13.0"
    steps = workflow("test.yml")["jobs"]["test"]["steps"]
    runs = [step.get("run", "") for step in steps]
    assert any("bash tests/fetch_browser_assets.sh" in r for r in runs)
    assert any(f'"{torch_pin}"' in r for r in runs) and not any(re.search(r"install torch(\s|$)", r) for r in runs)
    test_step = next(step for step in steps if "make test" in step.get("run", ""))
    assert test_step["env"]["CI"] == "true" and test_step["env"]["CHROMIUM"]
    pages_runs = [step.get("run", "") for step in workflow("pages.yml")["jobs"]["build"]["steps"]]
    assert any(f'"{torch_pin}"' in r for r in pages_runs)


def test_make_test_lints_and_fetches_the_browser_assets():
    makefile = (ROOT / "Makefile").read_text()
    test_recipe = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "browser-assets lint" in test_recipe and test_recipe.rstrip().endswith("-m pytest")
    assert "ruff check $(LINTED)" in makefile and "ruff format --check $(LINTED)" in makefile
    assert "LINTED = gptlib tests benchmarks scripts" in makefile
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
