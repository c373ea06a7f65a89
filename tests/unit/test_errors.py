"""One error root: every exception the package defines is a SupervisorError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import barman_supervisor
from barman_supervisor.errors import SupervisorError


def _exception_classes() -> list[type[BaseException]]:
    found = []
    for module_info in pkgutil.walk_packages(barman_supervisor.__path__, "barman_supervisor."):
        if module_info.name.endswith("__main__"):  # running it starts the daemon
            continue
        module = importlib.import_module(module_info.name)
        found += [
            value
            for value in vars(module).values()
            if inspect.isclass(value)
            and issubclass(value, BaseException)
            and value.__module__ == module.__name__
        ]
    return found


def test_every_exception_of_the_package_is_under_the_root() -> None:
    classes = _exception_classes()

    assert len(classes) > 1
    assert [c.__qualname__ for c in classes if not issubclass(c, SupervisorError)] == []
