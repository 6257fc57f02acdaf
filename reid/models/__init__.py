"""Models, one file per method. Importing this package registers every method in `reid.registry`."""

import importlib
import importlib.util

METHOD_MODULES = ("baseline", "adfta", "asanet", "posetap", "fcnta", "astpn")

for _name in METHOD_MODULES:
    if importlib.util.find_spec(f"reid.models.{_name}") is not None:
        importlib.import_module(f"reid.models.{_name}")
