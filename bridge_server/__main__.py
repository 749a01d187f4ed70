"""``python -m bridge_server ...``: the ``rvm-bridge`` command (``serve``, ``render``, ``status``, ...)."""

import sys

from .cli import main

sys.exit(main())
