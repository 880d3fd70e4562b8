"""The pure core imports without pulling in Ray or MLflow (STYLE.md, "Launch code stays out of the library").

It runs in a fresh interpreter, because this test session may already have imported Ray elsewhere.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

CORE_MODULES = (
    "colorization.color.lab",
    "colorization.color.hue_chroma",
    "colorization.color",
    "colorization.models",
    "colorization.losses",
    "colorization.metrics",
    "colorization.inference",
    "colorization.families",
    "colorization.errors",
    "colorization.io.safe_outputs",
    "colorization.stages.train",
    "colorization.cli.train",
    "colorization.devices",
    "colorization.tracking",
    "colorization.stages.preprocess",  # stages import Ray lazily, inside run(): `--help` and checks stay light
    "colorization.stages.prior",
    "colorization.cli.preprocess",
    "colorization.cli.prior",
)
CORE_PACKAGES = (
    "colorization.color",
    "colorization.models",
    "colorization.losses",
    "colorization.metrics",
    "colorization.training",
    "colorization.families",
    "colorization.evaluation",
)
FORBIDDEN = ("ray", "mlflow")


def test_core_imports_without_ray_or_mlflow() -> None:
    """Imports the core modules, and every module inside the core packages, then checks sys.modules."""
    script = textwrap.dedent(
        f"""
        import importlib, pkgutil, sys
        imported = []
        for name in {CORE_MODULES!r}:
            importlib.import_module(name)
            imported.append(name)
        for package_name in {CORE_PACKAGES!r}:
            package = importlib.import_module(package_name)
            for module in pkgutil.walk_packages(package.__path__, prefix=package_name + "."):
                importlib.import_module(module.name)
                imported.append(module.name)
        loaded = sorted(name for name in {FORBIDDEN!r} if name in sys.modules)
        print(len(imported), "modules imported")
        assert not loaded, f"importing the core loaded {{loaded}}"
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    imported_count = int(result.stdout.split()[0])
    assert imported_count >= len(CORE_MODULES) + 2  # the two colour modules at least, found by the walk too
