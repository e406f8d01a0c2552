"""The ``partrain`` command line.

Every problem the user can fix ends as one line on stderr and a non-zero exit status
(2 for usage errors, 1 for runtime errors, 128 + signal number when interrupted);
tracebacks are for bugs only. Messages from the package name settings in their Python
spelling in backticks; :func:`partrain.cli.parser.flag_spelling` turns those into flags.

Modules: ``parser`` (every command and flag), ``train`` (``partrain train``),
``sweep`` (``partrain sweep``), ``verify`` (``partrain verify``), ``commands`` (the others).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from .. import signals
from ..errors import PartrainError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _stop_before_start(signum, frame):
    # While the command line itself is imported, a stop is a quiet exit, never an
    # import-time KeyboardInterrupt traceback; main() installs its own handler.
    raise SystemExit(128 + signum)


def stop_quietly_until_main():
    """Called first thing by the ``partrain`` and ``python -m partrain.cli`` entry."""
    for stop in STOP_SIGNALS:
        signal.signal(stop, _stop_before_start)


def one_blas_thread_from_the_start():
    """Called by the ``partrain`` and ``python -m partrain.cli`` entry, before numpy
    loads. partrain computes on one BLAS thread per process anyway (threadpoolctl pins
    it), but OpenBLAS starts a thread per core when it loads: under a low process limit
    (``ulimit -u``) a failed start makes it raise SIGINT in its own process (a
    "stopped by SIGINT" that nobody sent), and under a low address-space limit
    (``ulimit -v``) every idle thread's stack and buffers count. A variable the user
    set is kept; ``partrain scale`` raises the count where it measures threaded BLAS."""
    from ..machine import BLAS_THREAD_VARIABLES

    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")


if sys.argv and Path(sys.argv[0]).name == "partrain":
    one_blas_thread_from_the_start()
    stop_quietly_until_main()


def main(argv=None):
    """Run one command; a process that fails ends the processes that wait for it."""
    from .. import log
    from ..engine import begin_process, end_process

    log.use_stderr()
    try:
        begin_process()
    except PartrainError as exc:   # MPI could not start here (see begin_process)
        _say(f"partrain: error: {exc}", exc)
        return exc.exit_code
    code = _main(argv)
    end_process(code)
    return code


def _main(argv=None):
    import warnings

    from ..errors import Interrupted

    def stop_before_the_run(signum, frame):   # nothing to save yet: say so and stop
        signals.request(signum)
        raise Interrupted(signum)

    # Python installs signal handlers only from the main thread: called from another
    # thread (a GUI, a job runner), the command runs with the caller's handlers, and a
    # stop request is the caller's business.
    in_main_thread = threading.current_thread() is threading.main_thread()
    old = ({s: signal.signal(s, stop_before_the_run) for s in STOP_SIGNALS}
           if in_main_thread else {})
    try:
        # One clear line per problem, never a raw warning before it; called from Python
        # (a sweep's worker, a notebook), the caller's warning filters come back after.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _run_command(argv)
    finally:
        signals.forget()
        for s, handler in old.items():
            # The process itself (argv from the command line) is now exiting with its
            # status decided: a late signal must not turn that into a default-action
            # death. Called from Python (argv given), the caller's handlers come back.
            signal.signal(s, signal.SIG_IGN if argv is None else handler)


def _run_command(argv):
    from ..errors import Interrupted

    try:
        # Imported here, where a stop during the (slow) imports is a quiet exit.
        from .commands import (cmd_datasets, cmd_eval, cmd_info, cmd_models, cmd_predict,
                               cmd_scale)
        from .parser import build_parser
        from .sweep import cmd_sweep
        from .train import cmd_train
        from .verify import cmd_verify

        commands = dict(train=cmd_train, sweep=cmd_sweep, verify=cmd_verify, eval=cmd_eval,
                        predict=cmd_predict,
                        models=cmd_models, datasets=cmd_datasets, info=cmd_info,
                        scale=cmd_scale)
        parser = build_parser()
        if not (sys.argv[1:] if argv is None else argv):
            parser.print_help()   # `partrain` alone: what it can do, not an error
            return 0
        args = parser.parse_args(argv)
        return commands[args.command](args)
    except BrokenPipeError:
        # `partrain models | head -1`: the reader has all it wanted. Say nothing, and
        # end as a process ended by SIGPIPE does; stdout goes nowhere so that Python's
        # own flush at exit does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except PartrainError as exc:
        from .parser import flag_spelling

        _say(f"partrain: error: {flag_spelling(str(exc))}", exc)
        return exc.exit_code
    except (Interrupted, KeyboardInterrupt) as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        train = sys.modules.get(f"{__name__}.train")   # not imported yet: no run begun
        run = train.CURRENT_RUN.get("out") if train else None
        hint = (f"; outputs and a checkpoint are in {run}; resume with: "
                f"partrain train --resume {run}" if run and Path(run, "checkpoint.h5").is_file()
                else "")
        hint = getattr(exc, "hint", "") or hint
        _say(f"partrain: stopped by {signal.Signals(signum).name}{hint}", exc)
        return 128 + signum
    except MemoryError:
        _say("partrain: error: out of memory; use a smaller --batch-size or fewer --workers")
        return 1
    except ImportError as exc:
        if "failed to map segment" not in str(exc) and "cannot allocate" not in str(exc).lower():
            raise   # a broken installation: its traceback says which
        # A library that cannot be mapped into memory (ulimit -v): not a bug of ours.
        _say(f"partrain: error: out of memory while loading {exc.name or 'a library'} "
             "(is the address-space limit, ulimit -v, too low?)")
        return 1
    except OSError as exc:   # disk full, permission denied... while writing outputs
        _say(f"partrain: error: {exc.strerror or exc}"
             + (f": {exc.filename}" if getattr(exc, "filename", None) else ""))
        return 1


def _say(line, exc=None):
    """The command's last line, on stderr: once per job (an error shared by every
    process of an MPI job is said by the one that coordinates)."""
    if not getattr(exc, "said_elsewhere", False):
        print(line, file=sys.stderr)
