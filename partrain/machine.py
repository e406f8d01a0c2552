"""What machine this is: cores, BLAS, memory, versions (config.json, `partrain info`)."""

from __future__ import annotations

import os
import platform
import resource

import psutil

# What BLAS libraries read, once as they load, for their number of threads. (This module
# imports no numpy, so the command line can set them before numpy loads.)
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def physical_cores():
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def machine_info():
    import h5py
    import numpy as np
    from threadpoolctl import threadpool_info

    from . import __version__

    blas = [dict(library=p.get("internal_api"), version=p.get("version"),
                 threads=p.get("num_threads"), architecture=p.get("architecture"))
            for p in threadpool_info() if p.get("user_api") == "blas"]
    return dict(
        hostname=platform.node(), platform=platform.platform(), processor=platform.machine(),
        physical_cores=physical_cores(), logical_cores=os.cpu_count(),
        memory_gib=round(psutil.virtual_memory().total / 2**30, 1), blas=blas,
        versions=dict(partrain=__version__, python=platform.python_version(),
                      numpy=np.__version__, h5py=h5py.__version__, psutil=psutil.__version__),
    )


def process_limit_room():
    """(limit, in use): this user's process limit (``ulimit -u``, RLIMIT_NPROC, which
    counts every thread of every process of the user) and how many it runs now; None
    where no limit applies (unlimited, or root, whom Linux does not hold to it)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    uid = os.getuid()
    if soft == resource.RLIM_INFINITY or uid == 0:
        return None
    running = 0
    for p in psutil.process_iter(["uids", "num_threads"]):
        uids, threads = p.info["uids"], p.info["num_threads"]
        if uids is not None and uids.real == uid:
            running += threads or 1
    return soft, running
