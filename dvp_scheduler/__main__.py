"""``python -m dvp_scheduler``."""

import sys

from dvp_scheduler.cli import main

sys.exit(main())
