"""The package's shape, checked: import arrows point one way, no module imports itself through a cycle, and
the training loop never names a family, a network or a loss (families own those)."""

from __future__ import annotations

import ast
from pathlib import Path

from ganforge.objectives import LOSSES
from ganforge.variants import VARIANTS

SRC = Path(__file__).resolve().parents[2] / "src" / "ganforge"
# Lower layers first: a module may import from its own layer and those before it, never from a later one.
LAYERS = ["errors", "plugins", "registry", "config", "data", "models", "objectives", "variants", "presets", "training",
          "metrics", "dataset_folder", "generate", "translate", "mask_to_image", "experiments", "reporting", "catalog",
          "cli"]
ENTRY = {"ganforge", "ganforge.__main__"}  # the package and ``python -m ganforge`` sit above everything


def module_imports() -> dict[str, set[str]]:
    """module -> the ganforge modules it imports (anywhere in the file, except under ``if TYPE_CHECKING``)."""
    modules = {}
    for path in SRC.rglob("*.py"):
        name = ".".join(("ganforge", *path.relative_to(SRC).with_suffix("").parts)).removesuffix(".__init__")
        modules[name] = path
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and getattr(node.test, "id", "") == "TYPE_CHECKING" for n in ast.walk(node)}
        found = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ganforge"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("ganforge")}
        if "import_submodules(__name__" in path.read_text():  # a plugin package imports all its modules
            found |= {m for m in modules if m.rsplit(".", 1)[0] == name}
        edges[name] = found & set(modules)
    return edges


def layer(module: str) -> int:
    return LAYERS.index(module.split(".")[1])


def test_import_arrows_point_one_way():
    backward = sorted(
        f"{src} -> {dst}" for src, dsts in module_imports().items() if src not in ENTRY
        for dst in dsts if dst not in ENTRY and layer(dst) > layer(src)
    )
    assert not backward, "imports from a later layer (move the shared piece down):\n" + "\n".join(backward)


def test_no_import_cycles():
    edges = module_imports()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def string_literals(path: Path) -> set[str]:
    return {n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)}


def test_the_training_loop_never_names_a_family_a_network_or_a_loss():
    names = set(VARIANTS.names()) | set(LOSSES.names()) | {"G", "D", "G_ema", "Dreg", "loss_D", "loss_G"}
    for file in ("loop.py", "step.py", "fast.py"):
        named = string_literals(SRC / "training" / file) & names
        assert not named, f"training/{file} names {sorted(named)}: that belongs to a family in ganforge.variants"
