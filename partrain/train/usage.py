"""What a run cost the machine: CPU busy time per core and peak memory."""

from __future__ import annotations

import resource
import time

import psutil


class ResourceUsage:
    """Measures from :meth:`start` to :meth:`stop`: wall seconds, each core's busy
    percentage, and peak resident memory of this process and the workers."""

    def start(self):
        psutil.cpu_percent(percpu=True)   # opens the busy-time window
        self.t0 = time.perf_counter()
        return self

    def stop(self, worker_peak_rss):
        """worker_peak_rss: [bytes per worker] as the engine reports it."""
        self.seconds = time.perf_counter() - self.t0
        self.cpu_busy = psutil.cpu_percent(percpu=True)
        self.worker_rss = list(worker_peak_rss)
        return self

    def summary(self):
        """The part of metrics.json this class measured."""
        coord_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024   # Linux: KiB
        return dict(
            total_seconds=self.seconds, cpu_busy_percent_per_core=self.cpu_busy,
            peak_rss_mib=dict(coordinator=round(coord_rss / 2**20, 1),
                              workers=[round(r / 2**20, 1) for r in self.worker_rss]))
