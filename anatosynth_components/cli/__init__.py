"""The ``anatosynth`` command line: :func:`main` (in :mod:`.main`) and one module per subcommand
(``demo_data``, ``inspect``, ``pseudomask``, ``benchmark``, ``tables``, ``package``), each with
``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``."""

from anatosynth_components.cli.main import COMMANDS, main

__all__ = ["COMMANDS", "main"]
