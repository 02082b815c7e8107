"""Sphinx configuration (optional: the pages read as plain reST too)."""

project = "ctrader-twisted"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode"]
exclude_patterns = ["_build"]
autodoc_member_order = "bysource"
