"""``python -m labelrefine``: the ``labelrefine`` command (demo, refine, report)."""

import sys

from .cli import main

sys.exit(main())
