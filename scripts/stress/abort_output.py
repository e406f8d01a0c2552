#!/usr/bin/env python
"""Does a rank's last line survive MPI_Abort? MPICH's launcher drops what it had not yet
read from a rank's pipes when an abort ends the job, and partrain's reason for aborting
is always the last line, so ``_abort_quietly`` waits for the pipes to empty first.

    python scripts/stress/abort_output.py --runs 30                 # as partrain aborts
    python scripts/stress/abort_output.py --runs 30 --without-wait  # the launcher's race

Each run is ``mpiexec -n 2`` with rank 0 writing ``--lines`` lines of 100 bytes, then the
reason, then aborting (:func:`partrain.testing.abort_after_output`). Prints how many runs
lost the reason. Needs the MPI extra (pip install ".[mpi]").
"""

from __future__ import annotations

import argparse
import sys

from partrain.testing import abort_after_output


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--lines", type=int, default=3000)
    p.add_argument("--without-wait", action="store_true",
                   help="abort at once, as before partrain waited for the launcher")
    args = p.parse_args()
    try:
        lost = sum(not abort_after_output(args.lines, wait=not args.without_wait)
                   for _ in range(args.runs))
    except FileNotFoundError:
        sys.exit('abort_output.py: no mpiexec beside this Python (pip install ".[mpi]")')
    how = "without the wait" if args.without_wait else "with the wait"
    print(f"{how}: the last line was lost in {lost} of {args.runs} runs "
          f"({args.lines} lines of 100 bytes before it)")


if __name__ == "__main__":
    main()
