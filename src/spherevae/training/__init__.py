"""Training: the fit loop, checkpoints, run directories and what keeps them safe.

One module per role, imported by name (this package imports none of them, so that importing one does
not load the others):

- :mod:`.run`: a training run end to end, as ``spherevae train`` drives it: data, model, trainer,
  writing the run directory (its layout: :mod:`spherevae.rundir`), resumption and figures;
- :mod:`.trainer`: the fit loop (Adam, KL schedule, early stopping, the guard against non-finite
  losses, exact resumption);
- :mod:`.checkpoint`: checkpoints that resume bit-identically;
- :mod:`.manifest`: the SHA-256 manifest that a run's files are checked against on load;
- :mod:`.lock`: one writer per run directory;
- :mod:`.seed`: seeds and random-number-generator states;
- :mod:`.distributed`: data-parallel training under ``torchrun``;
- :mod:`.model_card`: the model card written beside a trained model.
"""
