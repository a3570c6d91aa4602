"""The install is reproducible: every dependency of pyproject.toml is pinned, with
hashes, in the locks that ./ballast, .ci/run and production installs use."""

import re
import tomllib
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _pinned(lock: Path) -> dict[str, str]:
    pins = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", lock.read_text(), re.M))
    return {name.lower().replace("_", "-"): version for name, version in pins.items()}


def _project() -> dict:
    return tomllib.loads((BASE_DIR / "pyproject.toml").read_text())["project"]


def test_production_dependencies_are_locked_with_hashes():
    lock = BASE_DIR / "requirements" / "production.txt"
    pins = _pinned(lock)
    for requirement in _project()["dependencies"]:
        assert _name(requirement) in pins, f"{requirement} is not in {lock.name}: regenerate it (docs/operations.md)"
    text = lock.read_text()
    assert all(block.count("--hash=sha256:") for block in re.split(r"\n(?=[A-Za-z])", text) if "==" in block)
    # The production server and Celery's Redis transport are there; the demo's runner is not.
    assert {"gunicorn", "celery", "kombu", "redis"} <= set(pins) and "honcho" not in pins


def test_the_development_lock_has_production_test_and_demo_dependencies_at_the_same_versions():
    production = _pinned(BASE_DIR / "requirements" / "production.txt")
    development = _pinned(BASE_DIR / "requirements" / "dev.txt")
    project = _project()
    wanted = project["dependencies"] + [r for extra in ("test", "demo") for r in project["optional-dependencies"][extra]]
    for requirement in wanted:
        assert _name(requirement) in development, f"{requirement} is not in dev.txt: regenerate it (docs/operations.md)"
    assert {name: development[name] for name in production} == production


def test_ballast_and_ci_install_from_the_lock():
    script = (BASE_DIR / "ballast").read_text()
    assert "--require-hashes -r requirements/dev.txt" in script and "--no-deps -e ." in script
    assert "./ballast test" in (BASE_DIR / ".ci" / "run").read_text()
