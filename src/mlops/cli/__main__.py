"""``python -m mlops.cli``: the same entry point as the ``mlops`` script."""

import sys

from mlops.cli.main import main

sys.exit(main())
