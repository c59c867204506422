"""Owns `python -m broker.devcluster start|stop|status` (same as `ignite-broker dev-cluster`)."""

import sys

from broker.devcluster.cli import main

sys.exit(main())
