"""`python -m reminders`: the command line of reminders.entrypoints.cli."""

import sys

from reminders.entrypoints.cli import main

sys.exit(main())
