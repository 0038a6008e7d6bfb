"""`python -m ferrymq`."""

import sys

from ferrymq.cli import main

sys.exit(main())
