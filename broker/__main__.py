"""``python -m broker`` runs the ignite-broker command line."""

import sys

from .cli import main

sys.exit(main())
