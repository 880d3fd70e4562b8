"""The two networks (pure PyTorch), their configs, the registry of named variants and checkpoints.

Importing the package imports every model file, whose ``register_family`` / ``@register_model`` calls fill the
registry; the registry itself imports no model (timm's layout), so there is no import cycle.
"""

from colorization.models import larsson_hypercolumn, zhang_eccv16  # noqa: F401  (registers the families)
