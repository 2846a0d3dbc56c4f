"""``python -m spherevae`` runs the command line (the same as the installed ``spherevae``)."""

import sys

from .cli import main

sys.exit(main())
