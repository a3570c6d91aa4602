"""The engine is pure Python: no Django, DRF or Celery, machine-checked."""

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import rebalancing.engine

FORBIDDEN = ("django", "rest_framework", "celery")
ENGINE_DIR = Path(rebalancing.engine.__file__).parent
REPO_ROOT = ENGINE_DIR.parent.parent

BLOCKER = """
import importlib.abc, pkgutil, sys
FORBIDDEN = {forbidden!r}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            raise ImportError(f"the engine imported {{name}}")
        return None

for name in list(sys.modules):
    if name.split(".")[0] in FORBIDDEN:
        del sys.modules[name]
sys.meta_path.insert(0, Block())
sys.path.insert(0, {root!r})
import rebalancing.engine
for info in pkgutil.walk_packages(rebalancing.engine.__path__, "rebalancing.engine."):
    __import__(info.name)
loaded = sorted(n for n in sys.modules if n.split(".")[0] in FORBIDDEN)
assert not loaded, loaded
print("ok", len([n for n in sys.modules if n.startswith("rebalancing.engine")]))
"""


def engine_modules() -> list[str]:
    return [info.name for info in pkgutil.walk_packages(rebalancing.engine.__path__, "rebalancing.engine.")]


def test_engine_imports_with_django_rest_framework_and_celery_blocked():
    code = BLOCKER.format(forbidden=FORBIDDEN, root=str(REPO_ROOT))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok"), done.stdout
    # the package and every module in it were imported
    assert int(done.stdout.split()[1]) >= len(engine_modules()) + 1


def test_engine_source_names_no_framework_import():
    files = sorted(ENGINE_DIR.rglob("*.py"))
    assert len(files) >= 6
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else []
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
                names = [a.value for a in node.args[:1] if isinstance(a, ast.Constant)]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"


def test_engine_modules_are_listed():
    modules = engine_modules()
    for name in ("types", "valuation", "weights", "schedule", "rebalance", "rounding", "precision"):
        assert f"rebalancing.engine.{name}" in modules
