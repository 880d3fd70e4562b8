"""Colour science of both papers as pure tensor functions (no I/O, no Ray)."""
