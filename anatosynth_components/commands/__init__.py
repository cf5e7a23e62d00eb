"""Subcommands of the ``anatosynth`` command line (see :mod:`anatosynth_components.cli`)."""
