"""How much this machine slows one process down when a second one computes beside it.

Why: issue 4 asks 2 worker processes to reach >= 1.8x one worker.  On a VM the
second vCPU may share a physical core, caches or memory bandwidth with the first,
which caps any two-process speed-up below 2x whatever the engine does.  This
script measures that cap with work that has no I/O, no queue and no Django:
the same fixed compute per process (a 3x3 convolution stack like the
detector's, and a numpy matrix product), one torch/OpenMP thread per process,
run by 1 process alone and then by 2 processes at once.

    .venv/bin/python bench/cpu_contention.py [--seconds-per-run 20] [--repeats 3]

Prints a Markdown table: work items per second per process, alone and with a
neighbour, and the two-process speed-up it implies (2 x together / alone).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import time


def _work(kind: str, seconds: float, queue) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import numpy as np
    import torch

    torch.set_num_threads(1)
    if kind == "conv":
        torch.manual_seed(0)
        net = torch.nn.Sequential(*[torch.nn.Conv2d(64, 64, 3, padding=1) for _ in range(4)]).eval()
        x = torch.randn(1, 64, 128, 128)

        def step():
            with torch.inference_mode():
                net(x)
    else:
        a = np.random.default_rng(0).standard_normal((512, 512))

        def step():
            a @ a

    step()  # warm-up outside the timed window
    done, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        step()
        done += 1
    queue.put(done / (time.perf_counter() - began))


def rate(kind: str, processes: int, seconds: float) -> float:
    """Mean work items per second per process, with `processes` running at once."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_work, args=(kind, seconds, queue)) for _ in range(processes)]
    for p in procs:
        p.start()
    rates = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return sum(rates) / len(rates)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds-per-run", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average before {os.getloadavg()}")
    print()
    print("| work (1 thread per process) | repeat | alone, items/s | with a neighbour, items/s per process | two-process speed-up |")
    print("|---|---|---|---|---|")
    for kind in ("conv", "matmul"):
        for r in range(args.repeats):
            alone = rate(kind, 1, args.seconds_per_run)
            together = rate(kind, 2, args.seconds_per_run)
            print(f"| {kind} | {r + 1} | {alone:.2f} | {together:.2f} | {2 * together / alone:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
