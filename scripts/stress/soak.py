#!/usr/bin/env python
"""Soak test (not a unit test): survive many kills and still end with the same bytes.

1. Train once without interruption (the reference).
2. Train the same settings again while, repeatedly, a worker is SIGKILLed every
   --worker-kill-every seconds and, every --coordinator-kill-every seconds, the
   coordinator itself is SIGKILLed and the run is resumed with `partrain train --resume`.
3. Compare every parameter of the two model.h5 files byte for byte.

    python scripts/stress/soak.py --epochs 12 --worker-kill-every 1.0 --coordinator-kill-every 8
                                                # about a minute on 2 cores
    -> prints the figures and writes results/soak.json
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from partrain.testing import CLI, h5_arrays, worker_processes

ROOT = Path(__file__).resolve().parents[2]


def train_cmd(out, extra):
    return [*CLI, "train", "--out", str(out), "--no-progress", *extra]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--worker-kill-every", type=float, default=1.5, help="seconds")
    ap.add_argument("--coordinator-kill-every", type=float, default=7.0, help="seconds")
    ap.add_argument("--out", default=str(ROOT / "results" / "soak.json"))
    args = ap.parse_args()
    # The preset's own training settings (batch 32, momentum), so the soaked run also
    # shows it learns, not only that its bytes survive.
    settings = ["--model", "lenet5", "--dataset", "digits32", "--epochs", str(args.epochs),
                "--workers", "2", "--checkpoint-every", "5"]
    tmp = Path(tempfile.mkdtemp(prefix="partrain-soak-"))
    t0 = time.time()
    subprocess.run(train_cmd(tmp / "reference", settings), check=True, stderr=subprocess.DEVNULL)
    reference_seconds = time.time() - t0

    out = tmp / "soaked"
    worker_kills = coordinator_kills = 0
    cmd = train_cmd(out, settings)
    t0 = time.time()
    while True:
        log = open(tmp / f"leg{coordinator_kills}.log", "w")
        proc = subprocess.Popen(cmd, stderr=log, stdout=log)
        started = time.time()
        next_worker_kill = started + args.worker_kill_every
        while proc.poll() is None:
            time.sleep(0.05)
            now = time.time()
            if now >= next_worker_kill:
                kids = worker_processes(proc.pid)
                if kids:
                    kids[worker_kills % len(kids)].send_signal(signal.SIGKILL)
                    worker_kills += 1
                next_worker_kill = now + args.worker_kill_every
            if now - started >= args.coordinator_kill_every and (out / "checkpoint.h5").exists():
                proc.kill()
                proc.wait()
                coordinator_kills += 1
                break
        if proc.returncode == 0:
            break
        log.close()
        if proc.returncode not in (-signal.SIGKILL,):
            last = (tmp / f"leg{coordinator_kills}.log").read_text().strip().splitlines()[-1:]
            sys.exit(f"soak: training exited with status {proc.returncode}: {' '.join(last)}")
        cmd = [*CLI, "train", "--resume", str(out), "--no-progress"]
    soaked_seconds = time.time() - t0

    reference, soaked = h5_arrays(tmp / "reference" / "model.h5"), h5_arrays(out / "model.h5")
    equal = reference == soaked
    metrics = json.loads((out / "metrics.json").read_text())
    result = dict(steps=metrics["steps"], worker_kills=worker_kills,
                  coordinator_kills_and_resumes=coordinator_kills,
                  worker_replacements_in_last_leg=metrics["worker_replacements"],
                  bytes_equal=equal, parameters_compared=len(reference),
                  train_accuracy=round(metrics["train_acc"], 4),
                  test_accuracy=round(metrics["test_acc"], 4),
                  reference_seconds=round(reference_seconds, 1),
                  soaked_seconds=round(soaked_seconds, 1),
                  command="python scripts/stress/soak.py " + " ".join(sys.argv[1:]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    sys.exit(0 if equal else 1)


if __name__ == "__main__":
    main()
