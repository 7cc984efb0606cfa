"""Experiment configs: Python files with ``get_config(variant)`` (see ``spectrax.train``).

Run by name (``spectrax train burgers_fno``) or by path; installed with the package as
``spectrax/configs/``. Each file is loaded on its own by ``spectrax.train.load_config``, not
imported through this package.
"""
