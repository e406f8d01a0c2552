"""The package's layers import downward only: data -> nn -> engine -> train -> run ->
api/cli. A module that imports a higher layer (even inside a function) fails here."""

import ast
from pathlib import Path

import partrain

PACKAGE = Path(partrain.__file__).parent

# Lower number, lower layer. Foundation modules any layer may use sit at 0.
LAYERS = {
    "errors": 0, "log": 0, "signals": 0, "machine": 0,
    "__version__": 0,   # a constant in partrain/__init__.py, not the package's exports
    "data": 1,
    "nn": 2, "presets": 2, "names": 2,
    "engine": 3,
    "train": 4,
    "run": 5,
    "api": 6, "sweeps": 6, "cli": 6, "bench": 6, "__main__": 6, "__init__": 6, "testing": 6,
}


def layer_of(parts):
    return LAYERS[parts[0]]


def imported_modules(path):
    """partrain-relative module paths ("engine.base", "data") a file imports."""
    own = path.relative_to(PACKAGE).with_suffix("").parts
    package = own[:-1] if own[-1] != "__init__" else own[:-1]
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = (*base, *(node.module.split(".") if node.module else ()))
                if not target:   # from . import x (at the top of the package)
                    target = (node.names[0].name,)
            elif node.module and node.module.startswith("partrain."):
                target = tuple(node.module.split(".")[1:])
            else:
                continue
            yield target or ("__init__",)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("partrain."):
                    yield tuple(alias.name.split(".")[1:])


def test_every_module_imports_only_its_own_layer_or_lower():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = path.relative_to(PACKAGE).with_suffix("").parts
        for target in imported_modules(path):
            if layer_of(target) > layer_of(own):
                upward.append(f"{'/'.join(own)} imports {'.'.join(target)}")
    assert upward == []


def test_every_top_level_module_has_a_layer():
    names = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py") or (p.is_dir() and (p / "__init__.py").exists())}
    assert names - LAYERS.keys() == set()


def test_an_upward_import_would_be_caught(tmp_path):
    fake = PACKAGE / "nn" / "_layering_probe.py"
    fake.write_text("from ..train.trainer import Trainer\n")
    try:
        found = list(imported_modules(fake))
    finally:
        fake.unlink()
    assert found == [("train", "trainer")] and layer_of(found[0]) > LAYERS["nn"]
