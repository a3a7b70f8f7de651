"""Imports go one way, down (issue 23): no circle among audiodit's modules, and the models know
nothing of training, data, pipelines or tools. Read from the source (ast), so nothing is imported."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "audiodit"
# What a model module may import from audiodit besides other models: the config machinery, the
# VAE's phase rebuilding, and (inside from_pretrained) the weights-digest check.
MODEL_MAY_IMPORT = {"audiodit.configuration", "audiodit.phase_reconstruction", "audiodit.integrity"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def audiodit_imports(path: Path, module_level_only: bool) -> set[str]:
    """audiodit modules `path` imports (`from audiodit.x import y` counts y when y is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in (tree.body if module_level_only else ast.walk(tree)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("audiodit"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("audiodit"))
    return found & set(MODULES)


def test_imports_have_no_circle():
    """Counting imports inside functions too; a module may reach up to its own package (the
    trainer looks the stage registry up in `audiodit.training` when it runs)."""
    graph = {name: {target for target in audiodit_imports(path, module_level_only=False)
                    if not name.startswith(target + ".")}
             for name, path in MODULES.items()}
    state = {}  # name -> "open" while on the path, "done" after

    def visit(name, path):
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                cycle = path[path.index(target):] + [target]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, path + [target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert len(graph) > 50  # the walk saw the package


def test_models_import_only_models_and_their_helpers():
    for name, path in MODULES.items():
        if not name.startswith("audiodit.models"):
            continue
        outside = {target for target in audiodit_imports(path, module_level_only=False)
                   if not target.startswith("audiodit.models") and target not in MODEL_MAY_IMPORT}
        assert not outside, f"{name} imports {sorted(outside)}"


def test_nothing_in_the_library_imports_a_corpus_builder():
    """Corpus builders (`audiodit.corpora`) are tools run once; the library's data loading,
    training and generation never need them (issue 23)."""
    for name, path in MODULES.items():
        if name.startswith("audiodit.corpora"):
            continue
        used = {target for target in audiodit_imports(path, module_level_only=False)
                if target.startswith("audiodit.corpora")}
        assert not used, f"{name} imports {sorted(used)}"
    assert any(name.startswith("audiodit.corpora.") for name in MODULES)  # the walk saw them


BENCHMARKS = PACKAGE.parent / "benchmarks"
PROBES = PACKAGE.parent / "experiments" / "probes"
SCRIPT_PACKAGES = {"benchmarks": BENCHMARKS, "experiments.probes": PROBES}


def test_benchmarks_are_modules_that_import_each_other_as_a_package():
    """`python -m benchmarks.<name>` (and `experiments.probes.<name>`) from the repository root, no
    `sys.path` edits (issue 23): a script imports a sibling through its package, never as a
    top-level module, and a benchmark never imports a probe (experiments sit above benchmarks)."""
    for package, folder in SCRIPT_PACKAGES.items():
        siblings = {path.stem for path in folder.glob("*.py")}
        assert (folder / "__init__.py").is_file()
        for path in sorted(folder.glob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", None) == "sys":
                    raise AssertionError(f"{path.name}:{node.lineno}: edits or reads sys.path")
                names = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                         [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
                for name in names:
                    assert name.split(".")[0] not in siblings, \
                        f"{path.name}:{node.lineno}: imports {name}; write {package}.{name}"
                    assert not (package == "benchmarks" and name.startswith("experiments")), \
                        f"{path.name}:{node.lineno}: a benchmark imports {name}"


def test_every_benchmark_script_answers_help_as_a_module():
    """Each script with a `__main__` block runs as `python -m benchmarks.<name> --help` (or
    `experiments.probes.<name>`; one interpreter for all of them: the imports are the slow part)."""
    import subprocess
    import sys

    scripts = sorted(f"{package}.{path.stem}" for package, folder in SCRIPT_PACKAGES.items()
                     for path in folder.glob("*.py") if 'if __name__ == "__main__"' in path.read_text(encoding="utf-8"))
    assert len(scripts) >= 20
    program = (
        "import runpy, sys\n"
        "failed = []\n"
        f"for name in {scripts!r}:\n"
        "    sys.argv = [name, '--help']\n"
        "    try:\n"
        "        runpy.run_module(name, run_name='__main__', alter_sys=True)\n"
        "        failed.append(name + ': no exit')\n"
        "    except SystemExit as stop:\n"
        "        if stop.code not in (0, None):\n"
        "            failed.append(f'{name}: exit {stop.code}')\n"
        "print('FAILED', failed) if failed else print('OK')\n"
    )
    result = subprocess.run([sys.executable, "-c", program], cwd=PACKAGE.parent, capture_output=True, text=True,
                            timeout=300)
    assert result.stdout.strip().splitlines()[-1:] == ["OK"], result.stdout[-2000:] + result.stderr[-2000:]
