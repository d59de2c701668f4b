"""Where loadstack finds its files: profiles, locustfiles, results, run state."""

from __future__ import annotations

from pathlib import Path

from loadstack.settings import current

PACKAGE_DIR = Path(__file__).resolve().parent
# The repository root when installed with ``pip install -e .`` (or run from a checkout).
SOURCE_ROOT = PACKAGE_DIR.parents[1]


def project_root() -> Path:
    """The loadstack checkout in use: ``$LOADSTACK_HOME``, else the nearest parent with ``profiles/``."""
    if home := current().home:
        return Path(home).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "profiles").is_dir() and (candidate / "load-testing").is_dir():
            return candidate
    return SOURCE_ROOT


def profile_dirs() -> list[Path]:
    dirs = []
    if env_dir := current().profiles_dir:
        dirs.append(Path(env_dir))
    dirs += [Path.cwd() / "profiles", project_root() / "profiles", SOURCE_ROOT / "profiles"]
    unique: list[Path] = []
    for d in dirs:
        if d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def results_root() -> Path:
    return current().results_dir or project_root() / "results"


def state_dir() -> Path:
    """Run state of background stacks (``loadstack ui``), so ``stop``/``status`` can find them."""
    return current().state_dir or project_root() / ".loadstack"


def hooks_locustfile() -> Path:
    """The locustfile that wires loadstack's listeners into any Locust process."""
    return PACKAGE_DIR / "_hooks" / "loadstack_hooks.py"
