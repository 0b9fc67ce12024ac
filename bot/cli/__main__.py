"""``python -m bot.cli``: the same as the ``livcr`` console script."""

import sys

from bot.cli import main

sys.exit(main())
