"""Dask side of the bridge suite (bench/suites/bridge.ts): the Monte Carlo campaign as native Dask tasks.

usage: dask-price.py SCHEDULER_ADDRESS WORKERS NODE SHARD_SCRIPT

Connects, waits for WORKERS workers and prints {"ready": true}. Then, for every JSON line on stdin
{"mode", "params", "shards": [{"index", "seed", "start", "end"}]}: client.map of one task per shard,
gather, and print {"seconds": wall time, "rows": [row per shard, in shard order]}. Modes:
  spawn  each task starts NODE SHARD_SCRIPT (examples/monte-carlo/price.mjs) for its shard and exits it
  warm   each worker keeps one NODE SHARD_SCRIPT process and feeds it its tasks' shards over a pipe
  numpy  each task simulates its shard's paths with numpy (its own generator: other numbers, same work)
Exits when stdin closes, after stopping the warm Node processes.
"""
import json
import sys
import time

from distributed import Client

# paths per numpy batch: price.mjs looks at its abort signal every 100,000 paths; this bounds memory the same way
NUMPY_BATCH = 100_000


# The Node processes get sessions of their own, as the Dask bridge starts zp-node: with the kernel's autogroup
# scheduling, CPU is shared fairly between sessions, so mesh and native Node processes compete alike with the rest.
def spawn_shard(shard, params, node, script):
    import json
    import subprocess
    line = json.dumps({"shard": shard, "params": params}) + "\n"
    done = subprocess.run([node, script], input=line, capture_output=True, text=True, timeout=600, start_new_session=True)
    if done.returncode != 0:
        raise RuntimeError("price-shard.mjs exited %s: %s" % (done.returncode, done.stderr[-2000:]))
    return json.loads(done.stdout)


def warm_shard(shard, params, node, script):
    import json
    import subprocess
    from distributed import get_worker
    worker = get_worker()
    proc = getattr(worker, "_zp_bench_price", None)
    if proc is None or proc.poll() is not None:
        # started once per worker process (one task at a time: 1 thread), like the zp-node on the same worker
        proc = subprocess.Popen([node, script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                                start_new_session=True)
        worker._zp_bench_price = proc
    proc.stdin.write(json.dumps({"shard": shard, "params": params}) + "\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    if line == "":
        raise RuntimeError("the warm price-shard.mjs process exited with %s (its stderr is in the worker's log)" % proc.wait())
    return json.loads(line)


def numpy_shard(shard, params):
    import math
    import numpy as np
    spot, strike, rate = params["spot"], params["strike"], params["rate"]
    volatility, maturity = params["volatility"], params["maturity"]
    call = params.get("option", "call") == "call"
    drift = (rate - volatility * volatility / 2) * maturity
    diffusion = volatility * math.sqrt(maturity)
    rng = np.random.default_rng(shard["seed"])
    paths = shard["end"] - shard["start"]
    sum_payoff = 0.0
    sum_payoff_sq = 0.0
    for done in range(0, paths, NUMPY_BATCH):
        terminal = spot * np.exp(drift + diffusion * rng.standard_normal(min(NUMPY_BATCH, paths - done)))
        payoff = np.maximum(terminal - strike, 0.0) if call else np.maximum(strike - terminal, 0.0)
        sum_payoff += float(payoff.sum())
        sum_payoff_sq += float(payoff @ payoff)
    return {"paths": paths, "sumPayoff": sum_payoff, "sumPayoffSq": sum_payoff_sq}


def stop_warm(dask_worker):
    proc = getattr(dask_worker, "_zp_bench_price", None)
    if proc is not None:
        proc.stdin.close()
        proc.wait(10)
        dask_worker._zp_bench_price = None


def main():
    address, workers, node, script = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    with Client(address, timeout=60) as client:
        client.wait_for_workers(workers, timeout=60)
        print(json.dumps({"ready": True}), flush=True)
        try:
            for line in sys.stdin:
                job = json.loads(line)
                mode, params, shards = job["mode"], job["params"], job["shards"]
                started = time.perf_counter()
                # pure=False: every shard is a new task, as every shard of a campaign is new work
                if mode == "spawn":
                    futures = client.map(spawn_shard, shards, params=params, node=node, script=script, pure=False)
                elif mode == "warm":
                    futures = client.map(warm_shard, shards, params=params, node=node, script=script, pure=False)
                elif mode == "numpy":
                    futures = client.map(numpy_shard, shards, params=params, pure=False)
                else:
                    raise ValueError("unknown mode %r" % mode)
                rows = client.gather(futures)
                seconds = time.perf_counter() - started
                print(json.dumps({"seconds": seconds, "rows": rows}), flush=True)
        finally:
            client.run(stop_warm)


main()
