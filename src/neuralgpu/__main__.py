"""``python -m neuralgpu`` (and ``torchrun -m neuralgpu``) runs the command line."""

import sys

from neuralgpu.cli import main

sys.exit(main())
