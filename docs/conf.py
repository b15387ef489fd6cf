"""Sphinx configuration of wsio's documentation: ``make docs`` builds it, warnings as
errors. Pages are Markdown (MyST); the API reference comes from the docstrings (autodoc)."""

from __future__ import annotations

import wsio

project = "wsio"
author = "wsio maintainers"
copyright = "wsio maintainers"
release = version = wsio.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Links to the Python documentation: only with network access, which the build never
# assumes; unresolved references to it stay plain text.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}

html_theme = "alabaster"
html_title = f"wsio {release}"
# asyncio.Protocol methods that wsio implements keep their own (empty) docstrings rather
# than asyncio's, which refer to labels of the Python documentation.
autodoc_inherit_docstrings = False
