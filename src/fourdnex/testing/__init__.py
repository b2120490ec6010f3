"""Fixtures for tests and benchmarks: scenes with known answers (not used by the library).

- :mod:`fourdnex.testing.geometry`: pointmaps seen by known cameras, with noise and
  outliers, for registration and rendering checks.
- :mod:`fourdnex.testing.conditions`: the condition the training objective feeds the
  transformer, to compare with the one generation builds.
"""
