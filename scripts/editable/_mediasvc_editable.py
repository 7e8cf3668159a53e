"""Editable installs of the core: import ``mediasvc`` straight from this checkout's folders.

The built wheel maps the repository's folders onto one package (``server/`` → ``mediasvc``, ``jobs/`` →
``mediasvc.jobs``, ``web/`` → ``mediasvc.web``, ``migrations/`` → ``mediasvc.migrations``; see pyproject.toml).
hatchling cannot express that mapping in an editable install (pfmoore/editables#20), so ``hatch_build.py`` installs
this finder instead: it answers for exactly those four names and leaves every other import alone.
"""

from __future__ import annotations

import importlib.util
import sys
from importlib.abc import MetaPathFinder
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"mediasvc": "server", "mediasvc.jobs": "jobs", "mediasvc.web": "web", "mediasvc.migrations": "migrations"}


class CheckoutFinder(MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001, ANN201
        folder = FOLDERS.get(fullname)
        if folder is None:
            return None
        location = ROOT / folder
        return importlib.util.spec_from_file_location(fullname, location / "__init__.py",
                                                      submodule_search_locations=[str(location)])


if (ROOT / "server" / "__init__.py").exists() and not any(isinstance(f, CheckoutFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, CheckoutFinder())
