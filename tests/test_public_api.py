"""The package's public surface is what its `__all__` says, no more and no less (as httpx does).

A name a package imports for its users must be listed; a name listed must exist and say what it
is for. Submodules are not names of the surface (they appear as attributes once imported).
"""

from __future__ import annotations

import importlib
import inspect
import types

import pytest

PACKAGES = ["comptoir", "comptoir.sites", "comptoir.state"]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_name_is_exported(name: str) -> None:
    module = importlib.import_module(name)
    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_")
        and not isinstance(v, types.ModuleType)
        # `from __future__ import annotations` leaves a name behind.
        and n != "annotations"
    }
    assert public - {"__version__"} <= set(module.__all__), "public but not in __all__"
    assert set(module.__all__) - {"__version__"} == public, "in __all__ but not public"


@pytest.mark.parametrize("name", PACKAGES)
def test_exported_names_exist_and_are_documented(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__ == sorted(module.__all__, key=lambda n: (not n.isupper(), n))
    for export in module.__all__:
        value = getattr(module, export)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{name}.{export} has no docstring"


def test_version() -> None:
    import comptoir

    assert comptoir.__version__.count(".") == 2
