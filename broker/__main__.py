"""``python -m broker`` runs the ignite-broker command line."""

import sys

from .launch import main

sys.exit(main())
