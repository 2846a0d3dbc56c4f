"""Integrations with other libraries, each behind its optional extra (``pip install 'spherevae[NAME]'``).

- :mod:`spherevae.contrib.pyro`: the distributions as Pyro distributions (extra ``pyro``).
"""
