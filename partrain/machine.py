"""What machine this is: cores, BLAS, memory, versions (config.json, `partrain info`)."""

from __future__ import annotations

import os
import platform

import numpy as np
import psutil


def physical_cores():
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def machine_info():
    import h5py
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
