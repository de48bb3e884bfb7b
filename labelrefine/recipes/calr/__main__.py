"""``python -m labelrefine.recipes.calr``: the ``labelrefine-calr`` command."""

import sys

from .cli import main

sys.exit(main())
