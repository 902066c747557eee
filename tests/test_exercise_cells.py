"""The exercise cells of every chapter, read without running them: stubs and solutions
are tagged and named apart, and a chapter handed out without its solution cells still
has every name its other cells use (instructors delete the cells tagged "solution")."""

import ast
import json

import pytest

from .conftest import ROOT

CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))


def code_cells(path):
    """(source with IPython magics and shell lines made into pass, tags) of every code cell."""
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            lines = "".join(cell["source"]).splitlines()
            python = [
                ln[: len(ln) - len(ln.lstrip())] + "pass" if ln.lstrip().startswith(("%", "!")) else ln for ln in lines
            ]
            yield "\n".join(python), set(cell.get("metadata", {}).get("tags", []))


def defined_names(tree):
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def used_names(tree):
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_stubs_and_solutions_are_tagged_and_named_apart(path):
    for source, tags in code_cells(path):
        tree = ast.parse(source)
        functions = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
        if "exercise" in tags:
            assert any(name.startswith("my_") for name in functions), f"{path.name}: a stub without a my_ function"
            assert "NotImplementedError" in source, f"{path.name}: a stub that does not raise NotImplementedError"
        if "solution" in tags:
            assert "exercise" not in tags
            assert not any(name.startswith("my_") for name in functions), f"{path.name}: a solution named my_..."
        elif any(name.endswith("_solution") for name in functions):
            pytest.fail(f"{path.name}: {functions} defines a *_solution outside a cell tagged solution")


def used_only_in_solutions(path):
    """Names that a cell not tagged solution uses, but only cells tagged solution define."""
    only_in_solutions, defined_elsewhere, missing = set(), set(), set()
    for source, tags in code_cells(path):
        tree = ast.parse(source)
        if "solution" in tags:
            only_in_solutions |= defined_names(tree) - defined_elsewhere
            continue
        missing |= (used_names(tree) & only_in_solutions) - defined_elsewhere - defined_names(tree)
        defined_elsewhere |= defined_names(tree)
    return missing


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_a_chapter_without_its_solution_cells_still_has_every_name_it_uses(path):
    missing = used_only_in_solutions(path)
    assert not missing, f"{path.name} uses {sorted(missing)}, defined only in cells tagged solution"


def test_the_check_finds_a_name_that_only_a_solution_defines(tmp_path):
    cells = [
        ("def my_f(x):\n    raise NotImplementedError('hint')", ["exercise"]),
        ("def f_solution(x):\n    return 2 * x\n\n\ntable = f_solution(3)", ["solution"]),
        ("print(table, my_f)", []),
    ]
    notebook = {
        "cells": [{"cell_type": "code", "source": src, "metadata": {"tags": tags}} for src, tags in cells],
    }
    path = tmp_path / "chapter.ipynb"
    path.write_text(json.dumps(notebook))
    assert used_only_in_solutions(path) == {"table"}
