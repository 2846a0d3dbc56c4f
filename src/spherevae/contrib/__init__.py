"""Integrations with other libraries, each behind its optional extra (``pip install 'spherevae[NAME]'``).

- :mod:`spherevae.contrib.pyro`: the distributions as Pyro distributions (extra ``pyro``);
- :mod:`spherevae.contrib.lightning`: a VAE as a PyTorch Lightning module (extra ``lightning``);
- :mod:`spherevae.contrib.hub`: a VAE on the Hugging Face Hub (extra ``hub``).
"""
