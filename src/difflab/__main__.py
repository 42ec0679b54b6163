"""``python -m difflab`` (also ``torchrun -m difflab``) runs the command line."""

import sys

from difflab.app.cli import main

sys.exit(main())
