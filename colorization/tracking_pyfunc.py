"""The MLflow pyfunc of a trained colorizer, logged as "models from code": code + a safetensors file, no pickle.

MLflow copies this file into the logged model and runs it when someone calls ``mlflow.pyfunc.load_model``; the
weights are the artifact ``checkpoint`` (the project's safetensors checkpoint, validated on load like any
untrusted file by ``colorization.models.checkpoint``). Nothing is unpickled, so loading a registered model runs only
this project's code (``models:/`` loading in ``colorization/model_source.py`` does not even run this file: it
downloads the safetensors artifact and rebuilds the network itself).

Input: a uint8 array (N, H, W, 3) of RGB images of one size (or (H, W, 3), one image); output: the colorized
images, uint8, same shape (each keeps its own lightness; see ``colorization/inference.py``). MLflow imports
this module only when it loads or logs the model; the package never imports it (MLflow stays optional).
"""

from __future__ import annotations

import mlflow
import numpy as np

CHECKPOINT_ARTIFACT = "checkpoint"  # the key of the safetensors file in the pyfunc's artifacts


class ColorizerPyfunc(mlflow.pyfunc.PythonModel):
    """A ``Colorizer`` over the logged checkpoint, with the family's default decoder."""

    def load_context(self, context) -> None:
        """Rebuilds the network from the ``checkpoint`` artifact (safetensors, validated) on the CPU."""
        from colorization.families import DecodeOptions
        from colorization.inference import Colorizer
        from colorization.model_source import load_model

        model, _ = load_model(context.artifacts[CHECKPOINT_ARTIFACT])
        self.colorizer = Colorizer(model, DecodeOptions())

    def predict(self, context, model_input, params=None) -> np.ndarray:
        """uint8 RGB (N, H, W, 3) or (H, W, 3) -> colorized uint8 RGB of the same shape."""
        import torch

        images = np.asarray(model_input)
        single = images.ndim == 3
        if single:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected RGB images (N, H, W, 3); got shape {images.shape}")
        tensors = [torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1) for image in images]
        outputs = self.colorizer.colorize_tensors(tensors)
        result = np.stack(
            [(output.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy() for output in outputs]
        )
        return result[0] if single else result


mlflow.models.set_model(ColorizerPyfunc())
