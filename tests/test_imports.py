"""gptlib's modules import each other without circles, at module or function level.

The graph is read from the source with ``ast``: every ``import`` and ``from ... import``
statement anywhere in a module (inside functions too) is an edge from that module to the
gptlib module it names. A package's ``__init__`` counts as the package itself.
"""

import ast

import pytest

from .conftest import ROOT

PACKAGE = ROOT / "gptlib"


def module_name(path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def gptlib_modules() -> dict:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path, name: str, known: set) -> set:
    """The gptlib modules that the module at path imports, anywhere in its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from . import ch10` names a module; `from .model import GPT` names a module's attribute.
            targets = [target] + [f"{target}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def import_graph() -> dict:
    modules = gptlib_modules()
    return {name: imports_of(path, name, set(modules)) for name, path in modules.items()}


def find_cycle(graph: dict):
    """One cycle of the graph as a list of modules, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_is_read_correctly():
    graph = import_graph()
    assert "gptlib.model" in graph["gptlib.trace"]
    assert "gptlib.checkpoint" in graph["gptlib.train"]
    assert "gptlib.generate" in graph["gptlib.sampling"]
    assert "gptlib.exercises" in graph["gptlib.exercises.ch10"]  # `from . import check`
    assert "gptlib.pretrained" in graph["gptlib.exercises.ch10"]  # imported inside a function


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_module_of_gptlib_imports_one_that_imports_it_back():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize(
    "lower, higher",
    [
        ("gptlib.generate", "gptlib.sampling"),  # sampling text sits above generation
        ("gptlib.checkpoint", "gptlib.train"),
        ("gptlib.checkpoint", "gptlib.sampling"),
    ],
)
def test_layers(lower, higher):
    graph = import_graph()

    def reaches(a, b, seen=()):
        return b in graph[a] or any(reaches(n, b, (*seen, a)) for n in graph[a] if n not in seen)

    assert reaches(higher, lower) and not reaches(lower, higher)


def test_every_public_name_the_notebooks_use_still_imports():
    from gptlib.attention import KVCache, LayerCache  # noqa: F401
    from gptlib.generate import generate, next_token_probs  # noqa: F401
    from gptlib.model import GPT, check_token_ids  # noqa: F401
    from gptlib.train import (  # noqa: F401
        RECIPES,
        TrainConfig,
        Trainer,
        estimate_loss,
        load_checkpoint,
        make_optimizer,
        model_from_checkpoint,
    )

    assert callable(GPT.generate)
