"""pyproject.toml's metadata agrees with requirements.txt, the pinned install the README and .ci/run use."""

from __future__ import annotations

import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.paths import REPO_ROOT


def _pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _pins() -> list[Requirement]:
    lines = (REPO_ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [Requirement(line) for line in (line.split("#")[0].strip() for line in lines) if line]


def _key(requirement: Requirement) -> tuple[str, frozenset[str]]:
    return canonicalize_name(requirement.name), frozenset(requirement.extras)


def test_every_pinned_package_is_declared_and_its_pin_satisfies_the_declaration():
    project = _pyproject()["project"]
    declared = [Requirement(d) for d in project["dependencies"] + project["optional-dependencies"]["test"]]
    pins = _pins()
    only_pinned = set(map(_key, pins)) - set(map(_key, declared))
    only_declared = set(map(_key, declared)) - set(map(_key, pins))
    assert not only_pinned and not only_declared, \
        f"only in requirements.txt: {sorted(only_pinned)}; only in pyproject.toml: {sorted(only_declared)}"
    bounds = {_key(d): d.specifier for d in declared}
    for pin in pins:
        assert len(pin.specifier) == 1 and next(iter(pin.specifier)).operator == "==", f"{pin} is not pinned"
        version = next(iter(pin.specifier)).version
        assert bounds[_key(pin)].contains(version, prereleases=True), f"{pin} is outside pyproject's {bounds[_key(pin)]}"

