"""``python -m partrain.cli``: the ``partrain`` command."""

import sys

from partrain.cli import main, stop_quietly_until_main

stop_quietly_until_main()
sys.exit(main())
