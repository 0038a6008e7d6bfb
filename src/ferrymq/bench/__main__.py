"""`python -m ferrymq.bench ARGS`: the same as `ferrymq bench ARGS`."""

import sys

from ferrymq.bench import main

sys.exit(main())
