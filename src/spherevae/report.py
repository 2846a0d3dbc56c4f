"""``spherevae report RUN_DIR``: one HTML page about a run, readable offline.

The page holds:

* an interactive view of the test latent means drawn with plotly, one panel per factor of the latent
  space: ``S^1`` on the unit circle; ``S^2`` on a 3-D sphere; ``S^d``, ``d > 2``, through the first
  three principal axes of the unit vectors renormalised onto ``S^2``
  (:func:`spherevae.plots.projections.pca_sphere`); ``R^2`` on the plane as it is, over the grey
  density of the prior ``N(0, I)``; ``R^d``, ``d > 2``, through PCA to the plane of its first two
  principal components, over the prior's marginal there (a Euclidean factor is never put on a
  sphere); ``R^1`` along a line. Points are coloured by label in the colours of the PNG figures,
  with a legend (click an entry to hide that label); hovering a point shows its label and the image
  decoded from it; a sentence per panel says what is drawn and, for a projection, how;
* the metrics of the last epoch and of ``eval_test.json``, numbers formatted as numbers;
* every PNG and GIF in ``RUN_DIR/plots`` (training curves, reconstructions, prior samples first,
  drawn here when the run has none), embedded as data URIs;
* the configuration.

plotly.js is embedded in the page (``plotlyjs="inline"``: one file, no network) or written as
``plotly.min.js`` beside it and referenced (``plotlyjs="directory"``: a small page, two files).

The page sets ``data-plot-ready="1"`` on ``<body>`` once the latent view is drawn and records every
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .extras import missing_extra

try:
    from matplotlib.figure import Figure
except ModuleNotFoundError as err:  # an optional package: name the extra
    raise missing_extra(err) from None
from numpy.typing import NDArray
from torch import Tensor

from .data import evaluation_images
from .io import atomic_write_text
from .models import VAE, LatentFactor, LatentSpec, from_pretrained

__all__ = ["PlotlyJS", "write_report"]

PlotlyJS = Literal["inline", "directory"]
"""Where the page finds plotly.js: embedded in it, or in ``plotly.min.js`` beside it."""

FloatArray = NDArray[np.float64]

_MAX_POINTS = 1000  # latent points in the view (each carries a small decoded PNG for hover)
_PANEL_HEIGHT = 520  # pixels per row of panels
# the report's own sections, in page order, and the file in RUN_DIR/plots each shows when present
_SECTIONS = {
    "curves": "Training curves",
    "reconstructions": "Reconstructions",
    "prior_samples": "Samples from the prior",
}


def _png_data_uri(figure: Figure, dpi: int = 90) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


_MIME = {".png": "image/png", ".gif": "image/gif", ".mp4": "video/mp4"}


def _file_data_uri(path: Path) -> str:
    mime = _MIME[path.suffix.lower()]
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _image_uri(image: Tensor) -> str:
    """A tiny PNG of one image ``(C, H, W)`` in ``[0, 1]`` (for hover), as a data URI: grey levels
    as the PNG figures draw them (ink dark on white), colour images in their colours."""
    from PIL import Image

    from .plots import display_pixels

    pixels = display_pixels(image.unsqueeze(0))[0]
    if pixels.ndim == 2:
        pixels = 1 - pixels  # as gray_r draws them
    buffer = io.BytesIO()
    Image.fromarray(np.round(255 * pixels).astype(np.uint8)).resize(
        (56, 56), Image.Resampling.NEAREST
    ).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# -- latent view --------------------------------------------------------------------------------------
@dataclass
class _Panel:
    """One factor's panel: coordinates to draw, what lies behind them, and what they are."""

    title: str
    sentence: str
    xy: FloatArray  # (N, 2) on a flat panel, (N, 3) on a 3-D one
    backdrop: list[Any] = field(default_factory=list)  # plotly traces drawn under the points
    axis_titles: tuple[str, str] = ("", "")

    @property
    def three_d(self) -> bool:
        return bool(self.xy.shape[1] == 3)


def _sphere_surface() -> Any:
    import plotly.graph_objects as go  # type: ignore[import-untyped]

    u, v = np.mgrid[0 : 2 * np.pi : 40j, 0 : np.pi : 20j]
    return go.Surface(
        x=np.cos(u) * np.sin(v),
        y=np.sin(u) * np.sin(v),
        z=np.cos(v),
        opacity=0.15,
        showscale=False,
        hoverinfo="skip",
        colorscale=[[0, "#cccccc"], [1, "#cccccc"]],
    )


def _prior_density(xy: FloatArray) -> Any:
    """Filled contours of the standard normal prior's density on a square around ``xy`` ``(N, 2)``."""
    import plotly.graph_objects as go

    from .models.priors import factor_prior

    half = max(3.0, 1.05 * float(np.abs(xy).max(initial=0.0)))
    grid = np.linspace(-half, half, 121)
    gx, gy = np.meshgrid(grid, grid)
    prior = factor_prior(LatentFactor("euclidean", 2), dtype=torch.float64)
    flat = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], axis=1))
    density = prior.log_prob(flat).exp().numpy().reshape(gx.shape)
    return go.Contour(
        x=grid,
        y=grid,
        z=density,
        colorscale=[[0, "#ffffff"], [1, "#a0a0a0"]],
        contours={"coloring": "fill"},
        ncontours=12,
        line={"width": 0},
        showscale=False,
        hoverinfo="skip",
    )


def _factor_panel(factor: LatentFactor, coords: FloatArray) -> _Panel:
    """The panel of one factor's coordinates ``(N, factor.ambient)``."""
    import plotly.graph_objects as go

    from .plots.projections import pca_sphere

    name = f"S^{factor.dim}" if factor.is_sphere else f"R^{factor.dim}"
    if factor.is_sphere and factor.dim == 1:
        t = np.linspace(0, 2 * np.pi, 361)
        circle = go.Scatter(
            x=np.cos(t),
            y=np.sin(t),
            mode="lines",
            line={"color": "#bbbbbb", "width": 1},
            hoverinfo="skip",
            showlegend=False,
        )
        return _Panel(
            f"{name}: unit circle",
            f"{name}: the latent means on the unit circle.",
            coords,
            [circle],
            ("z1", "z2"),
        )
    if factor.is_sphere and factor.dim == 2:
        return _Panel(
            f"{name}", f"{name}: the latent means on the sphere.", coords, [_sphere_surface()]
        )
    if factor.is_sphere:
        unit, share = pca_sphere(coords, k=3)
        return _Panel(
            f"{name}: principal axes, onto S^2",
            f"{name}, projected: the first three principal axes of the unit vectors (keeping "
            f"{100 * float(share.sum()):.0f}% of their second moment), renormalised onto S^2.",
            unit,
            [_sphere_surface()],
        )
    if factor.dim == 1:
        # spread the points vertically so that they do not hide one another; the height means nothing
        jitter = np.random.default_rng(0).uniform(-1, 1, len(coords))
        return _Panel(
            name,
            f"{name}: the latent means along the horizontal axis; their heights are random, "
            "only to keep them apart.",
            np.c_[coords[:, 0], jitter],
            axis_titles=("z", "random height"),
        )
    if factor.dim == 2:
        return _Panel(
            f"{name} and the prior",
            f"{name}: the latent means on the plane as they are; grey: the density of the prior "
            "N(0, I).",
            coords,
            [_prior_density(coords)],
            ("z1", "z2"),
        )
    # Axes from the centred PCA, but the points are projected without the shift: the prior N(0, I)
    # then has the same density on the plane as in R^2, whatever the axes, so it can be drawn there.
    _, s, vh = np.linalg.svd(coords - coords.mean(0), full_matrices=False)
    variance = float((s[:2] ** 2).sum() / max(float((s**2).sum()), 1e-300))
    xy = coords @ vh[:2].T
    return _Panel(
        f"{name}: PCA to 2-D",
        f"{name}, PCA to 2-D: the latent means projected onto the plane of their first two "
        f"principal components ({100 * variance:.0f}% of their variance); grey: the prior "
        "N(0, I) on that plane, also a standard normal.",
        xy,
        [_prior_density(xy)],
        ("PC 1", "PC 2"),
    )


def _latent_view(
    latent: LatentSpec,
    modes: FloatArray,
    labels: NDArray[np.int64] | None,
    label_name: Callable[[int], str],
) -> tuple[Any, list[str]]:
    """The plotly figure of the latent means ``(N, d)``, and one sentence per panel.

    Points are grouped by label into one trace per label and panel (same legend group, so a click on
    the legend hides a label in every panel); each point's ``customdata`` is its index in ``modes``.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots  # type: ignore[import-untyped]

    from .plots._common import label_colours, split_factors

    panels = [
        _factor_panel(f, c)
        for f, c in zip(latent.factors, split_factors(modes, latent), strict=True)
    ]
    if len(panels) > 1:
        for i, panel in enumerate(panels):
            panel.title = f"factor {i + 1}: {panel.title}"
            panel.sentence = f"Factor {i + 1}, {panel.sentence}"
    cols = min(len(panels), 2)
    rows = math.ceil(len(panels) / cols)
    specs = [[{"type": "xy"} for _ in range(cols)] for _ in range(rows)]
    for i, panel in enumerate(panels):
        specs[i // cols][i % cols] = {"type": "scene" if panel.three_d else "xy"}
    figure = make_subplots(
        rows=rows,
        cols=cols,
        specs=specs,
        subplot_titles=[p.title for p in panels],
        horizontal_spacing=0.08,
        vertical_spacing=0.12 / rows,
    )
    index = np.arange(len(modes))
    if labels is None:
        groups = [("", "test images", index)]
        colours = label_colours(None, 1)
    else:
        values = np.unique(labels)
        groups = [(str(v), label_name(int(v)), index[labels == v]) for v in values]
        colours = label_colours(values, len(values))  # the PNG figures' colour of each label
    for i, panel in enumerate(panels):
        row, col = i // cols + 1, i % cols + 1
        for trace in panel.backdrop:
            figure.add_trace(trace, row=row, col=col)
        for (group, name, members), colour in zip(groups, colours, strict=True):
            common = {
                "mode": "markers",
                "name": name,
                "legendgroup": group,
                "showlegend": i == 0 and labels is not None,
                "customdata": members,
                "hovertemplate": "%{fullData.name}<extra></extra>",
            }
            points = panel.xy[members]
            if panel.three_d:
                marker = {"size": 3, "color": colour}
                trace = go.Scatter3d(
                    x=points[:, 0], y=points[:, 1], z=points[:, 2], marker=marker, **common
                )
            else:
                trace = go.Scatter(
                    x=points[:, 0], y=points[:, 1], marker={"size": 5, "color": colour}, **common
                )
            figure.add_trace(trace, row=row, col=col)
        if panel.three_d:
            axis = {"range": [-1.1, 1.1], "title": {"text": ""}}
            figure.update_scenes(
                aspectmode="cube", xaxis=axis, yaxis=axis, zaxis=axis, row=row, col=col
            )
        else:
            subplot = figure.get_subplot(row, col)
            figure.update_xaxes(title_text=panel.axis_titles[0], row=row, col=col)
            # equal scales: a circle stays round and the prior's contours stay circles
            figure.update_yaxes(
                title_text=panel.axis_titles[1],
                scaleanchor=subplot.yaxis.anchor,
                scaleratio=1,
                row=row,
                col=col,
            )
    figure.update_layout(
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        height=_PANEL_HEIGHT * rows,
        plot_bgcolor="#ffffff",
        legend={"title": {"text": "label"}, "itemsizing": "constant"},
    )
    figure.update_annotations(font_size=13)
    return figure, [p.sentence for p in panels]


# -- numbers and tables -------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    """A table cell: integers as integers, other numbers to three decimals (tiny ones to three
    significant digits), nothing for a missing value."""
    if value is None or isinstance(value, bool | str):
        return "" if value is None else str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        x = float(value)
        if math.isnan(x):
            return ""
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        if x.is_integer() and abs(x) < 1e15:
            return str(int(x))
        # three decimals as in the training log; below 0.01 (a learning rate, a small KL) they would
        # hide the value, and from 1e6 on they are noise
        return f"{x:.3f}" if 0.01 <= abs(x) < 1e6 else f"{x:.3g}"
    return str(value)


def _table(rows: list[tuple[str, Any]]) -> str:
    def cell(value: Any) -> str:
        number = isinstance(value, int | float | np.number) and not isinstance(value, bool)
        attribute = ' class="num"' if number else ""
        return f"<td{attribute}>{html.escape(_fmt(value))}</td>"

    cells = "".join(f"<tr><th>{html.escape(str(k))}</th>{cell(v)}</tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _figure_html(uri: str, alt: str, caption: str) -> str:
    if uri.startswith("data:video/"):  # an MP4 animation: plays like the GIFs, without sound
        media = (
            f'<video aria-label="{html.escape(alt)}" src="{uri}" autoplay loop muted playsinline '
            f"controls></video>"
        )
    else:
        media = f'<img alt="{html.escape(alt)}" src="{uri}">'
    return f"<figure>{media}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _script_json(value: Any) -> str:
    """JSON to place inside ``<script>``: ``</`` would end the element early."""
    import plotly.utils  # type: ignore[import-untyped]

    return json.dumps(value, cls=plotly.utils.PlotlyJSONEncoder).replace("</", "<\\/")


# -- the page -----------------------------------------------------------------------------------------
def write_report(
    run_dir: Path, *, data_dir: str | None = None, plotlyjs: PlotlyJS = "inline"
) -> Path:
    """Write ``RUN_DIR/report.html`` (and ``RUN_DIR/plotly.min.js`` with ``plotlyjs="directory"``)
    and return the page's path.

    Raises:
        ValueError: if the run directory has no exported VAE or no config, or for another
            ``plotlyjs``.
    """
    import plotly.offline  # type: ignore[import-untyped]

    from .rundir import read_metrics, read_run_config
    from .training.run import prepare_data

    if plotlyjs not in ("inline", "directory"):
        raise ValueError(f"plotlyjs must be 'inline' or 'directory', got plotlyjs={plotlyjs!r}")
    config = read_run_config(run_dir)
    if data_dir is not None:
        import dataclasses

        config = dataclasses.replace(
            config, data=dataclasses.replace(config.data, data_dir=data_dir)
        )
    model = from_pretrained(run_dir / "model")
    if not isinstance(model, VAE):
        raise ValueError(f"{run_dir} holds an auto-encoder; the report needs a VAE")
    model.eval()
    splits, dynamic = prepare_data(config, run_dir)
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

    labelled = splits.info.labelled
    values = labels.numpy().astype(np.int64) if labelled else None
    class_names = splits.info.class_names

    def label_name(v: int) -> str:
        return class_names[v] if class_names and 0 <= v < len(class_names) else str(v)

    figure, sentences = _latent_view(model.latent, modes.double().numpy(), values, label_name)
    # vectors have no picture: the hover shows the label alone
    pictures = len(splits.info.image_shape) == 3
    hover_images = [_image_uri(img) for img in decoded] if pictures else [""] * n
    hover_labels = [label_name(int(v)) for v in values] if values is not None else ["-"] * n

    history = read_metrics(run_dir)
    metric_rows: list[tuple[str, Any]] = []
    if history:
        metric_rows += [(f"last epoch: {k}", v) for k, v in history[-1].items()]
    eval_file = run_dir / "eval_test.json"
    if eval_file.exists():
        metric_rows += [(f"test: {k}", v) for k, v in json.loads(eval_file.read_text()).items()]

    figures = _figure_sections(
        run_dir, model, images, labels if conditional else None, history, pictures
    )

    if plotlyjs == "directory":
        atomic_write_text(run_dir / "plotly.min.js", plotly.offline.get_plotlyjs())
        plotly_tag = '<script src="plotly.min.js"></script>'
    else:
        plotly_tag = f"<script>{plotly.offline.get_plotlyjs()}</script>"

    config_text = (run_dir / "config.yaml").read_text(encoding="utf-8")
    substitute = splits.info.substitute
    substitute_note = (
        f'<p id="substitute"><strong>Data: {html.escape(substitute)}.</strong></p>\n'
        if substitute
        else ""
    )
    title = f"spherevae run {run_dir.name}: {config.model.latent} {config.model.posterior}"
    captions = "".join(f"<li>{html.escape(s)}</li>" for s in sentences)
    legend_note = (
        "Colours are the labels, as in the PNG figures; click a legend entry to hide a label."
        if labelled
        else "The data set is unlabelled."
    )

    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; max-width: 1200px; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ddd; padding: 2px 8px; text-align: left; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
pre {{ background: #f6f6f6; padding: 8px; overflow-x: auto; }}
figure {{ margin: 0 0 1.2em 0; }} figcaption {{ color: #555; font-size: small; }}
figure img, figure video {{ max-width: 100%; }}
#view {{ display: flex; gap: 12px; align-items: flex-start; }}
#plot {{ flex: 1; min-width: 500px; }}
#hover {{ width: 140px; text-align: center; }}
#hover img {{ width: 112px; image-rendering: pixelated; }}
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
{plotly_tag}
</head><body data-plot-ready="0" data-errors="">
<h1>{html.escape(title)}</h1>
{substitute_note}<h2>Latent space</h2>
<p>The means (posterior modes) of {n} test images in the {html.escape(str(model.latent))} latent
space, one panel per factor:</p>
<ul>{captions}</ul>
<p>{legend_note} Drag to rotate a 3-D panel or to zoom into a flat one; hover a point to see its
label and the image decoded from it.</p>
<div id="view"><div id="plot"></div><div id="hover"><img id="hover-image" alt="">
<div id="hover-label">hover a point</div></div></div>
<h2>Metrics</h2>
{_table(metric_rows)}
{figures}
<h2>Configuration</h2><pre>{html.escape(config_text)}</pre>
<script>
(function () {{
  var spec = {_script_json(figure.to_plotly_json())};
  var images = {_script_json(hover_images)};
  var labels = {_script_json(hover_labels)};
  Plotly.newPlot("plot", spec.data, spec.layout, {{responsive: true}}).then(function (div) {{
    div.on("plotly_hover", function (ev) {{
      var i = ev.points[0].customdata;
      if (typeof i !== "number") return;
      var picture = document.getElementById("hover-image");
      picture.src = images[i];
      picture.style.display = images[i] ? "" : "none";
      document.getElementById("hover-label").textContent = "label " + labels[i];
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


def _figure_sections(
    run_dir: Path,
    model: VAE,
    images: Tensor,
    labels: Tensor | None,
    history: list[dict[str, float]],
    pictures: bool = True,
) -> str:
    """The sections of figures: training curves, reconstructions and prior samples (the run's PNG
    when ``RUN_DIR/plots`` has it, else drawn here; with ``pictures=False``, vector data, no
    images), then every other PNG, GIF and MP4 of ``plots``."""
    from .plots.run_figures import RUN_FIGURES

    files = sorted(
        p for p in (run_dir / "plots").glob("*") if p.suffix.lower() in _MIME and p.is_file()
    )
    by_stem = {p.stem: p for p in files if p.suffix.lower() == ".png"}
    sections = []
    for stem, heading in _SECTIONS.items():
        if not pictures and stem != "curves":
            sections.append(f"<h2>{heading}</h2>\n<p>none: this data set holds vectors</p>")
            continue
        if stem in by_stem:
            path = by_stem[stem]
            uri, caption = _file_data_uri(path), f"plots/{path.name}: {RUN_FIGURES[stem]}"
        else:
            uri = _drawn_figure(stem, model, images, labels, history)
            caption = f"{RUN_FIGURES[stem]} (drawn for this page)"
        body = _figure_html(uri, heading, caption) if uri else "<p>no metrics yet</p>"
        sections.append(f"<h2>{heading}</h2>\n{body}")
    shown = {by_stem[s] for s in _SECTIONS if s in by_stem}
    others = [
        _figure_html(
            _file_data_uri(p),
            p.stem,
            f"plots/{p.name}" + (f": {RUN_FIGURES[p.stem]}" if p.stem in RUN_FIGURES else ""),
        )
        for p in files
        if p not in shown
    ]
    if not others:
        others = ["<p>none in plots/ (<code>spherevae plot RUN_DIR</code> draws them)</p>"]
    sections.append("<h2>Other figures of the run</h2>\n" + "\n".join(others))
    return "\n".join(sections)


def _drawn_figure(
    stem: str,
    model: VAE,
    images: Tensor,
    labels: Tensor | None,
    history: list[dict[str, float]],
) -> str:
    """A data URI of the figure ``RUN_DIR/plots/<stem>.png`` would hold, for a run without it
    (``""`` for curves without metrics)."""
    from .plots import image_grid, training_curves

    with torch.no_grad():
        torch.manual_seed(0)
        if stem == "curves":
            return _png_data_uri(training_curves(history)) if history else ""
        if stem == "reconstructions":
            recon = model.reconstruct(images[:10], None if labels is None else labels[:10])
            return _png_data_uri(image_grid(torch.cat([images[:10], recon]), ncols=10))
        classes = torch.arange(model.n_classes).repeat_interleave(10)
        samples = (
            model.generate(len(classes), classes) if model.n_classes > 0 else model.generate(50)
        )
        return _png_data_uri(image_grid(samples, ncols=10))
