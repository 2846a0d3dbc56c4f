"""``RUN_DIR/model/README.md``: the model card of a trained model, written at the end of training
and again by ``spherevae eval`` (with the test scores). It is made from the run directory's files
(``config.yaml``, ``run.json``, ``metrics.csv``, ``eval_test.json``, ``model/model.safetensors``).

It says in words what the model is (the configuration), what it was trained on (the data record of
``run.json``), how well it did (the best validation objective and, once ``spherevae eval`` has run,
the test scores), the layout of its weights (every tensor of ``model.safetensors`` with its shape),
and how to load it, with spherevae and without it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from safetensors import safe_open

from ..io import atomic_write_text
from ..rundir import MODEL_DIR, eval_file, read_metrics, read_run_config, read_run_info

__all__ = ["MODEL_CARD", "write_model_card"]

MODEL_CARD = "README.md"

_POSTERIORS = {
    "vmf": "von Mises-Fisher",
    "powerspherical": "Power Spherical",
    "normal": "Gaussian",
}


def _latent_in_words(latent: str) -> str:
    parts = []
    for factor in latent.split("x"):
        kind, dim = factor[0], int(factor[1:])
        parts.append(f"S^{dim} (the unit sphere in R^{dim + 1})" if kind == "S" else f"R^{dim}")
    return " x ".join(parts)


def _weights_table(weights: Path) -> list[str]:
    rows = ["| tensor | shape | dtype |", "|---|---|---|"]
    with safe_open(str(weights), framework="pt") as f:
        for name in f.keys():  # noqa: SIM118 (safe_open has keys(), not iteration)
            piece = f.get_slice(name)
            rows.append(f"| `{name}` | {tuple(piece.get_shape())} | {piece.get_dtype()} |")
    return rows


def _best_epoch(run_dir: Path, burn_in: int) -> tuple[int, float]:
    """``(epoch, validation negative ELBO)`` of the exported model: the best after burn-in, as the
    trainer chose it (``(-1, nan)`` before any validation)."""
    rows = [
        r
        for r in read_metrics(run_dir)
        if r["epoch"] > burn_in and not math.isnan(r["val_negative_elbo"])
    ]
    if not rows:
        return -1, math.nan
    best = min(
        rows, key=lambda r: r["val_negative_elbo"]
    )  # the first of equals, as the trainer keeps it
    return int(best["epoch"]), best["val_negative_elbo"]


def write_model_card(run_dir: Path) -> Path:
    """Write ``RUN_DIR/model/README.md`` for the model in ``RUN_DIR/model``, from the run's files."""
    config = read_run_config(run_dir)
    info: dict[str, Any] = read_run_info(run_dir) or {}
    test_file = run_dir / eval_file("test")
    test = json.loads(test_file.read_text(encoding="utf-8")) if test_file.exists() else None
    epoch, val = _best_epoch(run_dir, config.train.burn_in)
    model = config.model
    folder = run_dir / MODEL_DIR
    family = _POSTERIORS.get(model.posterior, model.posterior)
    conditional = f", conditional on {model.n_classes} classes" if model.n_classes else ""
    lines = [
        f"# spherevae model: {model.latent} {model.posterior} on {info.get('dataset', '?')}",
        "",
        "## What it is",
        "",
        f"- A {'VAE' if model.kind == 'vae' else 'plain auto-encoder'}{conditional} with a latent "
        f"space {_latent_in_words(model.latent)} ({model.latent}); posterior on the spheres: "
        f"{family}"
        + (f" (sampler {model.sampler})" if model.posterior == "vmf" else "")
        + "; prior: uniform on each sphere, standard normal on each R^k.",
        f"- Networks: {model.network}, hidden sizes {list(model.hidden_sizes)} (the decoder "
        f"mirrors them); inputs of shape {list(model.image_shape)}; likelihood {model.likelihood}.",
        f"- Training: Adam at lr {config.train.lr}, batch {config.data.batch_size}, at most "
        f"{config.train.epochs} epochs, KL weight {config.train.beta}, seed {config.train.seed}.",
        "",
        "## Data",
        "",
        f"- Data set: {info.get('dataset', '?')} ({info.get('dataset_source', '?')}).",
        *([f"- **{info['dataset_substitute']}.**"] if info.get("dataset_substitute") else []),
        f"- Splits: {info.get('splits', {})}; dynamic binarisation: "
        f"{info.get('dynamic_binarization', '?')}.",
        f"- Trained by spherevae {info.get('spherevae', '?')} with torch {info.get('torch', '?')}"
        + (f", source commits {', '.join(info['commits'])}" if info.get("commits") else "")
        + ".",
        "",
        "## Scores",
        "",
        (
            f"- Best validation negative ELBO {val:.3f} nats at epoch {epoch} (this model)."
            if epoch >= 0
            else "- No validation score (no epoch was trained)."
        ),
    ]
    if test:
        lines.append(
            f"- Test set ({test.get('n_images', '?')} images, {test.get('binarization', '')}): "
            f"negative ELBO {test['negative_elbo']:.3f}, log p(x) {test['log_likelihood']:.3f} "
            f"(K = {test['ll_samples']} importance samples), KL {test['kl']:.3f}."
        )
    else:
        lines.append("- Test scores: run `spherevae eval RUN_DIR` (written to eval_test.json).")
    lines += [
        "",
        "## Load it",
        "",
        "With spherevae:",
        "",
        "```python",
        "from spherevae.models import from_pretrained",
        "model = from_pretrained('PATH/TO/model')   # this folder",
        "q = model.encode(x)                        # the posterior, a torch distribution",
        "params = model.decode(q.mode)              # the likelihood's parameters",
        "```",
        "",
        "Without spherevae: `model.safetensors` is a plain state dict "
        "(`safetensors.torch.load_file`), and `config.json` holds the settings above. The encoder "
        "(`encoder.*`) maps the flattened input to features; the posterior head (`head.*`) maps "
        "them, on each sphere factor, to the mean direction `W h / |W h|` (`direction`) and the "
        "concentration `softplus(w . h + b) + 1` (`concentration`), and on each Euclidean factor "
        "to a mean and a scale; the decoder (`decoder.*`) maps a latent point to the likelihood's "
        "parameters. `spherevae export RUN_DIR --format onnx|pt2` writes both maps as graphs.",
        "",
        "## Weights",
        "",
        *_weights_table(folder / "model.safetensors"),
        "",
    ]
    path = folder / MODEL_CARD
    atomic_write_text(path, "\n".join(lines))
    return path
