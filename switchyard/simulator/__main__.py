"""`python -m switchyard.simulator`: the same as `switchyard simulate`."""

import sys

from .cli import main

sys.exit(main())
