"""``python -m anatosynth_components.cli``: the same as the ``anatosynth`` command."""

import sys

from anatosynth_components.cli.main import main

sys.exit(main())
