#!/usr/bin/env python3
"""asyncio beside bench_scale: the same shapes, one line of numbers.

  bench_scale.py tasks N K      -> create ns/task, resident B/task, await ns
  bench_scale.py lifecycle A R  -> ns per task (create, sleep(0), finish),
                                   A alive at once, R rounds

Run by bench_scale (BENCH_SCALE_PY); usable alone."""
import asyncio
import gc
import os
import sys
import time


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def tasks(n, k):
    loop = asyncio.get_running_loop()
    gate, gate2 = loop.create_future(), loop.create_future()
    all_waiting, all_parked = loop.create_future(), loop.create_future()
    state = {"started": 0, "parked": 0}

    async def task():
        state["started"] += 1
        if state["started"] == n:
            all_waiting.set_result(None)
        await gate
        for _ in range(k):
            f = loop.create_future()
            loop.call_soon(f.set_result, None)
            await f
        state["parked"] += 1
        if state["parked"] == n:
            all_parked.set_result(None)
        await gate2

    gc.collect()
    r0 = rss()
    t0 = time.perf_counter_ns()
    ts = [loop.create_task(task()) for _ in range(n)]
    await all_waiting
    t1 = time.perf_counter_ns()
    r1 = rss()
    gate.set_result(None)
    t2 = time.perf_counter_ns()
    await all_parked
    t3 = time.perf_counter_ns()
    gate2.set_result(None)
    await asyncio.gather(*ts)
    # The task list (8 B a task) is the caller's, as in the C benchmark the
    # caller keeps no list; it is small beside a task.
    print((t1 - t0) / n, (r1 - r0) / n, (t3 - t2) / (n * (k + 1)))


async def lifecycle(alive, rounds):
    async def task():
        await asyncio.sleep(0)

    async def one_round():
        await asyncio.gather(*[asyncio.create_task(task())
                               for _ in range(alive)])

    await one_round()  # warm up
    t0 = time.perf_counter_ns()
    for _ in range(rounds):
        await one_round()
    print((time.perf_counter_ns() - t0) / (alive * rounds))


def main():
    what, a, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if what == "tasks":
        asyncio.run(tasks(a, b))
    elif what == "lifecycle":
        asyncio.run(lifecycle(a, b))
    else:
        sys.exit("usage: bench_scale.py tasks N K | lifecycle A ROUNDS")


if __name__ == "__main__":
    main()
