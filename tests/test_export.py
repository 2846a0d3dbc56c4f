"""``spherevae export``: the encoder's posterior mode and the decoder as graphs that reproduce the model.

pt2 graphs are loaded back with ``torch.export.load``; ONNX graphs run in ONNX Runtime (the ``onnx``
extra). Both are compared with the PyTorch model on a batch of another size than the one exported
(the batch dimension is dynamic), to float32 rounding.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spherevae.cli import main
from spherevae.export import export_model
from spherevae.models import VAE, AutoEncoder, ModelConfig

SHAPE = (1, 8, 8)
CASES = [
    ("S3", "vmf", 0, "vae"),
    ("S2xS2", "powerspherical", 0, "vae"),
    ("R2", "normal", 0, "vae"),
    ("S3xR2", "vmf", 3, "vae"),
    ("S2", "vmf", 0, "autoencoder"),
]


def _model(latent: str, posterior: str, n_classes: int, kind: str) -> VAE | AutoEncoder:
    torch.manual_seed(0)
    config = ModelConfig(
        image_shape=SHAPE,
        hidden_sizes=(16,),
        latent=latent,
        posterior=posterior,
        n_classes=n_classes,
        kind=kind,
    )
    return (AutoEncoder if kind == "autoencoder" else VAE)(config).eval()


def _expected(model: VAE | AutoEncoder, x: torch.Tensor, z: torch.Tensor, y: torch.Tensor | None):  # type: ignore[no-untyped-def]
    with torch.no_grad():
        if isinstance(model, AutoEncoder):
            return model.encode(x), model.decode(z)
        return model.encode(x, y).mode, model.decode(z, y)


def _inputs(model: VAE | AutoEncoder) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(5, *SHAPE, generator=gen).round()
    z = torch.randn(5, model.latent_dim, generator=gen)
    conditional = isinstance(model, VAE) and model.n_classes > 0
    y = torch.tensor([0, 2, 1, 1, 0]) if conditional else None
    return x, z, y


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
def test_pt2_graphs_reproduce_the_model(case: tuple[str, str, int, str], tmp_path: Path) -> None:
    model = _model(*case)
    paths = export_model(model, tmp_path, "pt2")
    assert [p.name for p in paths] == ["encoder.pt2", "decoder.pt2"]
    x, z, y = _inputs(model)
    extra = () if y is None else (y,)
    encoder = torch.export.load(str(paths[0])).module()
    decoder = torch.export.load(str(paths[1])).module()
    want_mode, want_params = _expected(model, x, z, y)
    torch.testing.assert_close(encoder(x, *extra), want_mode, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(decoder(z, *extra), want_params, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", CASES[:4], ids=lambda c: "-".join(map(str, c)))
def test_onnx_graphs_reproduce_the_model(case: tuple[str, str, int, str], tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime", reason="the onnx extra: pip install 'spherevae[onnx]'")
    model = _model(*case)
    paths = export_model(model, tmp_path, "onnx")
    x, z, y = _inputs(model)
    want_mode, want_params = _expected(model, x, z, y)
    for path, (name, value), want in [
        (paths[0], ("x", x), want_mode),
        (paths[1], ("z", z), want_params),
    ]:
        session = ort.InferenceSession(str(path))
        feed = {name: value.numpy()} | ({} if y is None else {"y": y.numpy()})
        got = torch.from_numpy(session.run(None, feed)[0])
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_the_export_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "r"
    argv = ["train", "--dataset", "digits", "-hd", "8", "--latent", "S2", "--epochs", "1"]
    assert main([*argv, "--no-compiled-sampling", "--out", str(run_dir)]) == 0
    capsys.readouterr()
    assert main(["export", str(run_dir), "--format", "pt2"]) == 0
    assert capsys.readouterr().out.split() == [
        str(run_dir / "export" / "encoder.pt2"),
        str(run_dir / "export" / "decoder.pt2"),
    ]
    (tmp_path / "file").write_text("x")
    assert main(["export", str(run_dir), "--format", "pt2", "--out", str(tmp_path / "file")]) == 2
    assert "--out must be a folder" in capsys.readouterr().err
