"""Thin Ray wrappers around the pure core; the only place in the package that imports Ray."""
