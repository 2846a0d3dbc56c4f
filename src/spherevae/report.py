"""``spherevae report RUN_DIR``: one self-contained HTML page about a run, readable offline.

The page holds the configuration, a metrics table, the training curves, reconstructions and prior
samples (PNG images embedded as data URIs), and an interactive 3-D view of the test latent means on
the sphere drawn with plotly (its JavaScript bundle is embedded, so the page needs no network): drag
to rotate, scroll to zoom, and hovering a point shows its label and the image decoded from it. For a
latent other than ``S2`` the view shows the first three principal axes of the unit vectors,
renormalised onto ``S^2`` (:func:`spherevae.plots.projections.pca_sphere`), and says so.

The page sets ``data-plot-ready="1"`` on ``<body>`` once the 3-D view is drawn and records every
script error, rejected promise and ``console.error`` call in ``data-errors``, so that a headless
browser can check it (see ``tests/test_report.py``). Warnings (plotly logs a few performance hints
about canvas read-backs) are not errors.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from .data import evaluation_images
from .io import atomic_write_text
from .models import VAE, from_pretrained

__all__ = ["write_report"]

_MAX_POINTS = 1000  # latent points in the 3-D view (each carries a small decoded PNG)


def _png_data_uri(figure: Figure, dpi: int = 90) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _image_uri(image: Tensor) -> str:
    """A tiny greyscale PNG of one image ``(1, H, W)`` in ``[0, 1]`` (for hover), as a data URI."""
    from PIL import Image

    pixels = (255 * (1 - image[0].clamp(0, 1))).round().to(torch.uint8).cpu().numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").resize((56, 56), Image.Resampling.NEAREST).save(
        buffer, format="PNG"
    )
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _sphere_points(model: VAE, modes: Tensor) -> tuple[np.ndarray, str]:
    """Points to draw on ``S^2`` and a sentence saying what they are."""
    from .plots.projections import pca_sphere

    if str(model.latent) == "S2":
        return modes.double().numpy(), "latent means (posterior modes) on S^2"
    unit, share = pca_sphere(modes.double().numpy(), k=3)
    return unit, (
        f"latent means of a {model.latent} latent, projected: the first three principal axes of "
        f"the unit vectors (keeping {100 * float(share.sum()):.0f}% of their second moment), "
        f"renormalised onto S^2"
    )


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows
    )
    return f"<table>{cells}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def write_report(run_dir: Path, *, data_dir: str | None = None) -> Path:
    """Write ``RUN_DIR/report.html`` and return its path.

    Raises:
        ValueError: if the run directory has no exported VAE or no config.
    """
    import plotly.graph_objects as go  # type: ignore[import-untyped]
    import plotly.offline  # type: ignore[import-untyped]

    from .config import load_config
    from .plots import image_grid, training_curves
    from .training.run import prepare_data, read_metrics

    config = load_config(run_dir / "config.yaml", complete=True)
    if data_dir is not None:
        import dataclasses

        config = dataclasses.replace(
            config, data=dataclasses.replace(config.data, data_dir=data_dir)
        )
    model = from_pretrained(run_dir / "model")
    if not isinstance(model, VAE):
        raise ValueError(f"{run_dir} holds an auto-encoder; the report needs a VAE")
    model.eval()
    splits, dynamic = prepare_data(config)
    test = splits.test
    images = evaluation_images(test.images, dynamic)
    n = min(_MAX_POINTS, len(images))
    conditional = model.n_classes > 0
    labels = test.labels[:n]
    with torch.no_grad():
        torch.manual_seed(0)
        y = labels if conditional else None
        modes = model.encode(images[:n], y).mode
        decoded = model.reconstruct(images[:n], y)
        recon = model.reconstruct(images[:10], labels[:10] if conditional else None)
        samples = (
            model.generate(
                10 * model.n_classes, torch.arange(model.n_classes).repeat_interleave(10)
            )
            if conditional
            else model.generate(50)
        )
    points, caption = _sphere_points(model, modes)

    hover_images = [_image_uri(img) for img in decoded]
    label_text = [str(int(v)) if splits.info.labelled else "-" for v in labels]
    u, v = np.mgrid[0 : 2 * np.pi : 40j, 0 : np.pi : 20j]
    sphere = go.Surface(
        x=np.cos(u) * np.sin(v),
        y=np.sin(u) * np.sin(v),
        z=np.cos(v),
        opacity=0.15,
        showscale=False,
        hoverinfo="skip",
        colorscale=[[0, "#cccccc"], [1, "#cccccc"]],
    )
    scatter = go.Scatter3d(
        x=points[:, 0],
        y=points[:, 1],
        z=points[:, 2],
        mode="markers",
        marker={
            "size": 3,
            "color": labels.numpy() if splits.info.labelled else "#1f77b4",
            "colorscale": "Turbo",
        },
        customdata=np.stack([label_text, hover_images], axis=1),
        hovertemplate="label %{customdata[0]}<extra></extra>",
    )
    figure = go.Figure([sphere, scatter])
    figure.update_layout(
        margin={"l": 0, "r": 0, "t": 0, "b": 0},
        height=560,
        scene={"aspectmode": "cube", "xaxis": {"range": [-1.1, 1.1]}, "yaxis": {"range": [-1.1, 1.1]},
               "zaxis": {"range": [-1.1, 1.1]}},
    )  # fmt: skip
    spec = figure.to_plotly_json()

    history = read_metrics(run_dir)
    metric_rows: list[tuple[str, Any]] = []
    if history:
        last = history[-1]
        metric_rows += [(f"last epoch: {k}", v) for k, v in last.items()]
    eval_file = run_dir / "eval_test.json"
    if eval_file.exists():
        metric_rows += [(f"test: {k}", v) for k, v in json.loads(eval_file.read_text()).items()]
    curves = _png_data_uri(training_curves(history)) if history else ""
    recon_uri = _png_data_uri(image_grid(torch.cat([images[:10], recon]), ncols=10))
    samples_uri = _png_data_uri(image_grid(samples, ncols=10))
    config_text = (run_dir / "config.yaml").read_text(encoding="utf-8")
    title = f"spherevae run {run_dir.name}: {config.model.latent} {config.model.posterior}"

    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; max-width: 1100px; }}
table {{ border-collapse: collapse; }} th, td {{ border: 1px solid #ddd; padding: 2px 8px; text-align: left; }}
pre {{ background: #f6f6f6; padding: 8px; overflow-x: auto; }}
#view {{ display: flex; gap: 12px; align-items: flex-start; }}
#plot {{ flex: 1; min-width: 500px; }}
#hover {{ width: 140px; text-align: center; }} #hover img {{ width: 112px; image-rendering: pixelated; }}
</style>
<script>
window.__errors = [];
function __recordError(message) {{
  window.__errors.push(String(message));
  document.body && document.body.setAttribute("data-errors", window.__errors.join(" | "));
}}
window.addEventListener("error", function (e) {{ __recordError(e.message); }});
window.addEventListener("unhandledrejection", function (e) {{ __recordError(e.reason); }});
var __consoleError = console.error;
console.error = function () {{
  __recordError(Array.prototype.join.call(arguments, " "));
  __consoleError.apply(console, arguments);
}};
</script>
<script>{plotly.offline.get_plotlyjs()}</script>
</head><body data-plot-ready="0" data-errors="">
<h1>{html.escape(title)}</h1>
<h2>Latent space</h2>
<p>{html.escape(caption)}. Drag to rotate, scroll to zoom, hover a point to see its label and the
image decoded from it. {n} test images.</p>
<div id="view"><div id="plot"></div><div id="hover"><img id="hover-image" alt="">
<div id="hover-label">hover a point</div></div></div>
<h2>Metrics</h2>
{_table(metric_rows)}
<h2>Training curves</h2>
{f'<img alt="training curves" src="{curves}">' if curves else "<p>no metrics yet</p>"}
<h2>Reconstructions</h2><p>test images (top) and their reconstructions</p>
<img alt="reconstructions" src="{recon_uri}">
<h2>Samples from the prior</h2><img alt="prior samples" src="{samples_uri}">
<h2>Configuration</h2><pre>{html.escape(config_text)}</pre>
<script>
(function () {{
  var spec = {json.dumps(spec, cls=plotly.utils.PlotlyJSONEncoder)};
  Plotly.newPlot("plot", spec.data, spec.layout, {{responsive: true}}).then(function (div) {{
    div.on("plotly_hover", function (ev) {{
      var p = ev.points[0];
      if (!p.customdata) return;
      document.getElementById("hover-image").src = p.customdata[1];
      document.getElementById("hover-label").textContent = "label " + p.customdata[0];
    }});
    document.body.setAttribute("data-plot-ready", "1");
  }});
}})();
</script>
</body></html>
"""
    out = run_dir / "report.html"
    atomic_write_text(out, page)
    return out
