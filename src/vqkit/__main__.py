"""``python -m vqkit ...``: the same as the ``vqkit`` command."""

import sys

from vqkit.cli import main

sys.exit(main())
