"""manifpt: an offline feature store of generative-model fingerprints (ManiFPT).

This package holds the science and the store. It never imports dagster: the
Dagster assets in ``assets/`` are thin wrappers around the functions here.
"""

__version__ = "0.1.0"
