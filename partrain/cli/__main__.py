"""``python -m partrain.cli``: the ``partrain`` command."""

import sys

from partrain.cli import main, one_blas_thread_from_the_start, stop_quietly_until_main

one_blas_thread_from_the_start()
stop_quietly_until_main()
sys.exit(main())
