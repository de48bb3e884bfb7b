"""Doctest collection: skip the torch adapter's modules when the torch extra is not installed."""

from labelrefine._optional import has_module

collect_ignore_glob = [] if has_module("torch") else ["labelrefine/nn/*", "labelrefine/data/*", "labelrefine/recipes/*"]
