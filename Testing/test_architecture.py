"""The package's shape, read from its source: no module imports one that imports it back,
directly or through others, and only the Slicer module folders import Slicer, Qt or CTK."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "EncapsulatedSTL" / "encapsulated_stl"
SLICER_NAMES = {"slicer", "qt", "ctk", "vtkSlicer", "DICOMLib", "SubjectHierarchyPlugins", "EncapsulatedSTL"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module of the package that ``path`` imports, at any depth of its code
    (imports inside functions count: they tie the modules together all the same)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = ".".join(base[: len(base) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if not target.startswith("encapsulated_stl"):
                continue
            found.add(target)
            for alias in node.names:  # "from . import dimse" names a module
                if (PACKAGE.parent / f"{target}.{alias.name}".replace(".", "/")).with_suffix(".py").exists():
                    found.add(f"{target}.{alias.name}")
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("encapsulated_stl")}
    return {target for target in found if target != name}


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {t for t in imports_of(path) if t in modules} for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle, each once, as the modules along it."""
    found, state = [], {}

    def visit(node, trail):
        state[node] = "open"
        for target in sorted(edges[node]):
            if state.get(target) == "open":
                found.append(trail[trail.index(target):] + [target])
            elif target not in state:
                visit(target, trail + [target])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_no_module_of_the_core_imports_one_that_imports_it_back():
    edges = graph()
    assert len(edges) > 30  # the whole package was read
    assert cycles(edges) == []


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]


def test_only_the_slicer_module_folders_import_slicer_qt_or_ctk():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in SLICER_NAMES]
    assert offenders == []


#: The layers, lowest first: a module may import its own layer and the ones below, never
#: one above.  The package's __init__ (the public API, lazily) and __main__ stand on top.
LAYERS = [
    ("base", {"encapsulated_stl.errors", "encapsulated_stl.files", "encapsulated_stl.progress",
              "encapsulated_stl.version"}),
    ("STL bytes", {"encapsulated_stl.stl"}),
    ("series geometry", {"encapsulated_stl.series"}),
    ("meshes", {"encapsulated_stl.mesh"}),
    # the STL IODs, and the OBJ and MTL IODs with their Wavefront bytes
    ("the DICOM object", {"encapsulated_stl.iod", "encapsulated_stl.obj"}),
    ("inputs", {"encapsulated_stl.inputs"}),
    ("PACS", {"encapsulated_stl.pacs"}),
    ("public API", {"encapsulated_stl.api"}),
    ("command line", {"encapsulated_stl.cli"}),
    ("package", {"encapsulated_stl", "encapsulated_stl.__main__"}),
]


def layer_of(module: str) -> int:
    for rank, (_name, prefixes) in enumerate(LAYERS):
        if module in prefixes or any(module.startswith(p + ".") for p in prefixes if p != "encapsulated_stl"):
            return rank
    raise AssertionError(f"{module} is in no layer")


def test_every_module_is_in_one_layer_folder_and_imports_only_downwards():
    edges = graph()
    upward = [f"{source} ({LAYERS[layer_of(source)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
              for source, targets in edges.items() for target in targets
              if layer_of(target) > layer_of(source)]
    assert upward == []
    flat = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert flat == ["__init__.py", "__main__.py", "api.py", "errors.py", "files.py", "progress.py", "version.py"]
