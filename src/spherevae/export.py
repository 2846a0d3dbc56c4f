"""``spherevae export RUN --format onnx|pt2``: a trained model's two maps, usable without spherevae.

Two graphs, each with a dynamic batch dimension:

- ``encoder``: ``x`` ``(B, *image_shape)`` to the posterior's mode ``(B, latent_dim)``
  (``model.encode(x).mode``: the mean direction on each sphere factor, the mean on each Euclidean
  one; an auto-encoder's latent point);
- ``decoder``: ``z`` ``(B, latent_dim)`` to the likelihood's parameters ``(B, *image_shape)``
  (``model.decode(z)``: Bernoulli logits, Gaussian means, ...).

A conditional model's graphs take the class labels ``y`` ``(B,)`` (int64) as a second input.

Formats: ``pt2`` (:func:`torch.export.save`, loaded with :func:`torch.export.load`; needs only torch)
and ``onnx`` (:func:`torch.onnx.export`, run with ONNX Runtime; needs the ``onnx`` extra:
``pip install 'spherevae[onnx]'``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from .io import atomic_path
from .models import VAE, AutoEncoder

__all__ = ["FORMATS", "export_model"]

FORMATS = ("onnx", "pt2")
Format = Literal["onnx", "pt2"]


class _PosteriorMode(nn.Module):
    def __init__(self, model: VAE | AutoEncoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        if isinstance(self.model, AutoEncoder):
            return self.model.encode(x)
        mode: Tensor = self.model.encode(x, y).mode
        return mode


class _Decoder(nn.Module):
    def __init__(self, model: VAE | AutoEncoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if isinstance(self.model, AutoEncoder):
            return self.model.decode(z)
        return self.model.decode(z, y)


def export_model(model: VAE | AutoEncoder, out: Path, fmt: Format) -> list[Path]:
    """Write ``encoder.FMT`` and ``decoder.FMT`` for ``model`` into ``out``; returns their paths.

    Raises:
        ValueError: for an unknown format.
        ImportError: for ``onnx`` without the ``onnx`` extra, naming it.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got format={fmt!r}")
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError as err:
            raise ImportError(
                "exporting to ONNX needs the onnx extra: pip install 'spherevae[onnx]'"
            ) from err
    model = model.eval()
    conditional = isinstance(model, VAE) and model.n_classes > 0
    batch = torch.export.Dim("batch", min=1)
    example_x = torch.zeros(2, *model.config.image_shape)
    example_z = torch.zeros(2, model.latent_dim)
    example_y = torch.zeros(2, dtype=torch.int64)
    graphs = {
        "encoder": (_PosteriorMode(model), "x", example_x, "mode"),
        "decoder": (_Decoder(model), "z", example_z, "params"),
    }
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (module, input_name, example, output_name) in graphs.items():
        inputs: tuple[Tensor, ...] = (example, example_y) if conditional else (example,)
        names = [input_name, "y"] if conditional else [input_name]
        dynamic = {input_name: {0: batch}, **({"y": {0: batch}} if conditional else {})}
        path = out / f"{name}.{fmt}"
        with atomic_path(path) as tmp, torch.no_grad():
            if fmt == "pt2":
                program = torch.export.export(module, inputs, dynamic_shapes=dynamic)
                torch.export.save(program, str(tmp))
            else:
                with warnings.catch_warnings():
                    # the exporter's notes on optional packages it does not need here
                    warnings.simplefilter("ignore")
                    torch.onnx.export(
                        module,
                        inputs,
                        str(tmp),
                        input_names=names,
                        output_names=[output_name],
                        dynamic_shapes=dynamic,
                        external_data=False,
                    )
        written.append(path)
    return written
