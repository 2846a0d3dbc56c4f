"""The optional extras: which one brings each third-party package spherevae uses beyond its core.

``pip install spherevae`` installs the core, torch, numpy and safetensors: enough for
:mod:`spherevae.distributions`, :mod:`spherevae.special` and :mod:`spherevae.models`. The rest comes
with extras (``pip install 'spherevae[train]'``, ``'spherevae[all]'`` for everything), declared in
``pyproject.toml``; tests/test_extras.py checks that this table and that file agree, and that every
package the source imports is either in the core or in this table.

Example:
    >>> print(missing_extra_message(ModuleNotFoundError("No module named 'yaml'", name="yaml")))
    the package PyYAML is not installed: pip install 'spherevae[train]'
"""

from __future__ import annotations

__all__ = ["CORE_MODULES", "EXTRA_OF_MODULE", "missing_extra", "missing_extra_message"]

# the core dependencies, by the name they are imported under
CORE_MODULES = ("torch", "numpy", "safetensors")

# imported name -> (the distribution that provides it, the extra that installs it)
EXTRA_OF_MODULE: dict[str, tuple[str, str]] = {
    # configuration files, the command line's progress bars, the platform's cache folder
    "yaml": ("PyYAML", "train"),
    "pydantic": ("pydantic", "train"),
    "tqdm": ("tqdm", "train"),
    "platformdirs": ("platformdirs", "train"),
    # figures (``train`` draws some at the end of a run, so it brings these too) and image folders
    "matplotlib": ("matplotlib", "plots"),
    "mpl_toolkits": ("matplotlib", "plots"),
    "PIL": ("pillow", "plots"),
    # kNN accuracy, t-SNE, the statistics of the experiments
    "sklearn": ("scikit-learn", "eval"),
    "scipy": ("scipy", "eval"),
    # the interactive report
    "plotly": ("plotly", "report"),
    "pyro": ("pyro-ppl", "pyro"),
    "lightning": ("lightning", "lightning"),
    "huggingface_hub": ("huggingface_hub", "hub"),
    "imageio_ffmpeg": ("imageio-ffmpeg", "video"),
    "onnx": ("onnx", "onnx"),
    "onnxscript": ("onnxscript", "onnx"),
    "onnxruntime": ("onnxruntime", "onnx"),
    "tensorboard": ("tensorboard", "tensorboard"),
}


def missing_extra_message(err: ImportError) -> str:
    """One line for a failed import: the package and the extra to install when spherevae knows it.

    A :class:`ModuleNotFoundError` for a module of :data:`EXTRA_OF_MODULE` (or a submodule of one)
    names its distribution and ``pip install 'spherevae[EXTRA]'``; any other error keeps its own
    message, on one line.
    """
    top = (getattr(err, "name", None) or "").split(".")[0]
    if isinstance(err, ModuleNotFoundError) and top in EXTRA_OF_MODULE:
        package, extra = EXTRA_OF_MODULE[top]
        return f"the package {package} is not installed: pip install 'spherevae[{extra}]'"
    return " ".join((str(err) or type(err).__name__).split())


def missing_extra(err: ModuleNotFoundError) -> ModuleNotFoundError:
    """The error to raise in place of ``err`` where a module of spherevae imports an optional
    package: its message names the extra to install (:func:`missing_extra_message`)::

        try:
            import yaml
        except ModuleNotFoundError as err:
            raise missing_extra(err) from None
    """
    return ModuleNotFoundError(missing_extra_message(err), name=err.name)
