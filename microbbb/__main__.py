"""``python -m microbbb`` runs the command line (see ``microbbb.cli``)."""

import sys

from .cli import main

sys.exit(main())
