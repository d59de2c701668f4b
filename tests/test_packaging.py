"""The wheel (used by the container image) must contain every subpackage."""

from __future__ import annotations

import tomllib

from tests.helpers import ROOT


def test_every_subpackage_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for top, directory in config["package-dir"].items():
        base = ROOT / directory
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            found.add(".".join([top, *rel.parts]) if rel.parts else top)
    assert found == listed, f"missing: {sorted(found - listed)}, stale: {sorted(listed - found)}"
