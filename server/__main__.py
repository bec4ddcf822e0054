"""`python -m server` is `linli`."""

import sys

from server.cli import main

sys.exit(main())
