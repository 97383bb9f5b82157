"""``python -m dnabird``: the same as the ``dnabird`` command."""

import sys

from dnabird.cli import main

sys.exit(main())
