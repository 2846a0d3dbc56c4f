"""The flags of every subcommand: kebab-case spellings, help with defaults, earlier spellings kept.

Walks the parser itself (no training), so it is fast and covers flags added later.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

from spherevae import cli
from spherevae.config import RunConfig

KEBAB = re.compile(r"^--[a-z0-9]+(-[a-z0-9]+)*$")

# Every spelling the parser accepted before the flags were renamed (command, spelling, dest): each
# must still parse to the same destination.
EARLIER_SPELLINGS = [
    ("train", "--config", "config"),
    ("train", "--out", "out"),
    ("train", "--resume", "resume"),
    ("train", "--device", "device"),
    ("train", "--seed", "seed"),
    ("train", "-rs", "seed"),
    ("train", "--rs", "seed"),
    ("train", "--epochs", "epochs"),
    ("train", "-e", "epochs"),
    ("train", "--dataset", "dataset"),
    ("train", "-d", "dataset"),
    ("train", "--data-dir", "data_dir"),
    ("train", "--train-limit", "train_limit"),
    ("train", "--compiled-sampling", "compiled_sampling"),
    ("train", "--no-compiled-sampling", "compiled_sampling"),
    ("train", "--track-latents", "track_latents"),
    ("train", "--latent", "latent"),
    ("train", "--posterior", "posterior"),
    ("train", "--sampler", "sampler"),
    ("train", "--kind", "kind"),
    ("train", "--conditional", "conditional"),
    ("train", "-n", "name"),
    ("train", "--name", "name"),
    ("train", "-dis", "distribution"),
    ("train", "--distribution", "distribution"),
    ("train", "-z", "z"),
    ("train", "--z", "z"),
    ("train", "-zd", "z_dims"),
    ("train", "--z_dims", "z_dims"),
    ("train", "-hd", "h_dims"),
    ("train", "--h_dims", "h_dims"),
    ("train", "--h", "h_dims"),
    ("train", "-et", "encode_type"),
    ("train", "--encode_type", "encode_type"),
    ("train", "-dt", "decode_type"),
    ("train", "--decode_type", "decode_type"),
    ("train", "-cvm", "covariance_matrix"),
    ("train", "--covariance_matrix", "covariance_matrix"),
    ("train", "-lf", "loss_function"),
    ("train", "--loss_function", "loss_function"),
    ("train", "-b", "beta"),
    ("train", "--beta", "beta"),
    ("train", "-bi", "burn_in"),
    ("train", "--burn_in", "burn_in"),
    ("train", "-la", "look_ahead"),
    ("train", "--look_ahead", "look_ahead"),
    ("train", "-mi", "min_improv"),
    ("train", "--min_improv", "min_improv"),
    ("train", "-lr", "lr"),
    ("train", "--lr", "lr"),
    ("train", "-bs", "batch_size"),
    ("train", "--batch_size", "batch_size"),
    ("train", "-klw", "kl_warmup"),
    ("train", "--kl_warmup", "kl_warmup"),
    ("train", "-klf", "kl_freeze"),
    ("train", "--kl_freeze", "kl_freeze"),
    ("train", "-klt", "kl_target"),
    ("train", "--kl_target", "kl_target"),
    ("train", "-mr", "max_restarts"),
    ("train", "--max_restarts", "max_restarts"),
    ("train", "-lls", "ll_sample"),
    ("train", "--ll_sample", "ll_sample"),
    ("train", "-pf", "pf"),
    ("train", "--pf", "pf"),
    ("train", "-vll", "val_nll"),
    ("train", "--val_nll", "val_nll"),
    ("train", "-vf", "val_f"),
    ("train", "--val_f", "val_f"),
    ("train", "-sf", "save_f"),
    ("train", "--save_f", "save_f"),
    ("train", "-en", "exp_name"),
    ("train", "--exp_name", "exp_name"),
    ("train", "-ld", "log_dir"),
    ("train", "--log_dir", "log_dir"),
    ("train", "-bnz", "binarize"),
    ("train", "--binarize", "binarize"),
    ("eval", "--split", "split"),
    ("eval", "--ll-samples", "ll_samples"),
    ("eval", "--batch-size", "batch_size"),
    ("eval", "--limit", "limit"),
    ("eval", "--knn-k", "knn_k"),
    ("eval", "--seed", "seed"),
    ("eval", "--data-dir", "data_dir"),
    ("sample", "--n", "n"),
    ("sample", "--label", "label"),
    ("sample", "--grid", "grid"),
    ("sample", "--seed", "seed"),
    ("sample", "--out", "out"),
    ("report", "--data-dir", "data_dir"),
    ("report", "--plotlyjs", "plotlyjs"),
    ("experiment", "--quick", "quick"),
    ("experiment", "--out", "out"),
    ("experiment", "--data-dir", "data_dir"),
    ("experiment", "--epochs", "epochs"),
    ("experiment", "--seeds", "seeds"),
    ("experiment", "--models", "models"),
    ("experiment", "--jobs", "jobs"),
    ("experiment", "--finished-only", "finished_only"),
    ("experiment", "--shard", "shard"),
    ("export", "--format", "fmt"),
    ("export", "--out", "out"),
    ("plot", "--data-dir", "data_dir"),
]

# train's flags default to "not given" (the config decides): their help states the config's default
TRAIN_FLAG_KEYS = {
    "seed": "train.seed",
    "epochs": "train.epochs",
    "device": "train.device",
    "dataset": "data.dataset",
    "batch_size": "data.batch_size",
    "track_latents": "train.track_latents",
    "latent": "model.latent",
    "posterior": "model.posterior",
    "sampler": "model.sampler",
    "kind": "model.kind",
    "h_dims": "model.hidden_sizes",
    "encode_type": "model.network",
    "decode_type": "model.network",
    "covariance_matrix": "model.covariance",
    "beta": "train.beta",
    "burn_in": "train.burn_in",
    "look_ahead": "train.patience",
    "min_improv": "train.min_improvement",
    "lr": "train.lr",
    "kl_warmup": "train.kl_warmup",
    "kl_freeze": "train.kl_freeze",
    "kl_target": "train.kl_target",
    "max_restarts": "train.max_restarts",
    "ll_sample": "train.ll_samples",
    "pf": "train.print_every",
    "val_f": "train.val_every",
    "save_f": "train.save_every",
}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli._build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(commands.choices)


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if a.option_strings and not isinstance(a, (argparse._HelpAction, argparse._VersionAction))
    ]


def _value_for(action: argparse.Action) -> list[str]:
    if action.nargs == 0:
        return []
    if action.choices:  # one that is not the default, so that taking the flag shows
        return [next(str(c) for c in action.choices if c != action.default)]
    return ["2"]


def test_every_long_option_is_spelled_in_kebab_case_first() -> None:
    for command, parser in _subparsers().items():
        for action in _options(parser):
            long = [s for s in action.option_strings if s.startswith("--")]
            assert long and KEBAB.match(long[0]), (command, action.option_strings)


def test_every_option_has_help_with_its_default() -> None:
    for command, parser in _subparsers().items():
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                continue
            assert action.help and action.help.strip(), (command, action.dest)
            if action.option_strings:
                assert "(default: " in action.help, (command, action.option_strings)


def test_train_help_states_the_defaults_of_the_config() -> None:
    defaults = RunConfig()
    train = _subparsers()["train"]
    for action in _options(train):
        if action.dest not in TRAIN_FLAG_KEYS:
            continue
        section, key = TRAIN_FLAG_KEYS[action.dest].split(".")
        value = getattr(getattr(defaults, section), key)
        expected = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        assert action.help is not None
        stated = action.help.split("(default: ")[1].split(")")[0]
        if not isinstance(value, tuple):  # "0, none": the value, then what it means
            stated = stated.split(",")[0]
        assert stated == expected, (action.option_strings, stated, expected)


@pytest.mark.parametrize(("command", "spelling", "dest"), EARLIER_SPELLINGS)
def test_earlier_spellings_still_parse(command: str, spelling: str, dest: str) -> None:
    parser = cli._build_parser()
    action = next(a for a in _options(_subparsers()[command]) if spelling in a.option_strings)
    positional = {"train": [], "experiment": ["table1"]}.get(command, ["RUN"])
    argv = [command, *positional, spelling, *_value_for(action)]
    if command == "export" and spelling != "--format":
        argv += ["--format", "onnx"]
    args = parser.parse_args(argv)
    assert action.dest == dest
    assert getattr(args, dest) != action.default, (spelling, args)  # the flag was taken


def test_help_shows_kebab_case_and_names_the_earlier_spellings_once() -> None:
    text = _subparsers()["train"].format_help()
    options, _, epilog = " ".join(text.split()).partition("Also accepted (earlier spellings):")
    assert "-bs, --batch-size BATCH_SIZE" in options
    assert "-la, --patience PATIENCE" in options
    assert "--batch_size" not in options and "--look_ahead" not in options
    assert "--batch_size = --batch-size" in epilog and "--lr = --learning-rate" in epilog
    for name in cli.DATASET_NAMES:
        assert name in options


def test_a_prefix_of_a_flag_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "spherevae", "train", "--batch", "10"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "spherevae: error: unrecognized arguments: --batch 10"
    ]
