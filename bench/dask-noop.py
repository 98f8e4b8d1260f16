"""Dask side of the campaign suite (bench/suites/campaign.ts); run by /usr/bin/python3.

usage: dask-noop.py SCHEDULER_FILE WORKERS

Connects to the scheduler, waits for WORKERS workers and prints {"ready": true}.
Then, for every line N on stdin: client.map of a no-op over N items (each
returning one tiny row, like the mesh's no-op shard), gather, and print
{"tasks": N, "seconds": wall time}. Exits when stdin closes.
"""
import json
import sys
import time

from distributed import Client


def noop(i):
    return {"index": i}


def main():
    scheduler_file, workers = sys.argv[1], int(sys.argv[2])
    with Client(scheduler_file=scheduler_file, timeout=60) as client:
        client.wait_for_workers(workers, timeout=60)
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            n = int(line)
            started = time.perf_counter()
            # pure=False: every item is a new task, as every shard is new work
            rows = client.gather(client.map(noop, range(n), pure=False))
            seconds = time.perf_counter() - started
            if len(rows) != n:
                raise RuntimeError(f"gathered {len(rows)} rows for {n} tasks")
            print(json.dumps({"tasks": n, "seconds": seconds}), flush=True)


main()
