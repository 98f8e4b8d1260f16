"""The Ray bridge's launcher: the driver of one Ray job whose tasks each run one mesh node (`zp-node join ...`).

The bridge ships this file's text in the job's runtime_env and runs it as
  python3 -c "import os; exec(os.environ['ZP_RAY_LAUNCHER'])"
so the head needs nothing of zp but Node and zp-node at the paths the node command names. Standard library and
`ray` only. Its settings come in ZP_RAY_CONFIG (JSON): bridge (the allocation id), nodes (N), argv (the node
command; {index} becomes the node's index, {datadir} its scratch dir), task (Ray task options: num_cpus, num_gpus,
resources), drain_s (how long a node may drain when the job is stopped).

Each task starts its node in a new session with PR_SET_PDEATHSIG, so a node whose Ray worker is killed gets SIGTERM
and drains on its own rather than being orphaned or SIGKILLed with the worker. `ray job stop` sends this driver
SIGTERM (the bridge sets RAY_JOB_STOP_WAIT_TIME_S to the drain time and a margin): it cancels every task, each
task's node drains and exits, then the driver exits, so nothing of the job runs once Ray reports it STOPPED.

The job's logs say what happened, one line per event (the bridge counts running nodes from them):
  zp-ray: node I started: pid P on HOST           (printed by the task)
  zp-ray: node I exited with code C[: output]    (printed by the task; output tail when C is not 0)
  zp-ray: node I lost: WHY                        (printed by the driver: the task's worker died)
Exit status 0 when every node exited 0 (they leave when idle), 1 otherwise.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

PLACEHOLDER_RE = re.compile(r"\{(index|datadir)\}")
TAIL_BYTES = 1500
# the driver's wait for draining nodes, beyond their drain time
STOP_MARGIN_S = 5


def say(line):
    print("zp-ray: " + line, flush=True)


def fill(argv, values):
    """The node command with its placeholders filled in."""
    return [PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], a) for a in argv]


def output_tail(path):
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - TAIL_BYTES))
            return " | ".join(line.strip() for line in f.read().decode("utf-8", "replace").splitlines() if line.strip())
    except OSError:
        return ""


def die_with_parent():
    """preexec_fn: the node gets SIGTERM when the process that started it (the Ray worker) dies."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import ctypes.util
    # loaded before fork: loading a library between fork and exec can deadlock
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    parent = os.getpid()

    def preexec():
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the worker died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)
    return preexec


def run_node(index, cfg):
    """One Ray task: runs node `index` until it exits. ray.cancel (the job stopping) raises KeyboardInterrupt
    here: the node gets SIGTERM and drain_s to hand its work back."""
    scratch = tempfile.mkdtemp(prefix="zp-ray-%s-%d-" % (cfg["bridge"], index))
    out_path = os.path.join(scratch, "node.out")
    argv = fill(cfg["argv"], {"index": str(index), "datadir": scratch})
    proc = None
    code = None
    try:
        try:
            with open(out_path, "ab") as out:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True, preexec_fn=die_with_parent())
        except OSError as e:
            say("node %d exited with code 127: cannot run %s: %s" % (index, argv[0], e))
            return 127
        say("node %d started: pid %d on %s" % (index, proc.pid, socket.gethostname()))
        try:
            # polled: Ray's cancel may only flag an interrupt, which a thread blocked in waitpid would not see
            while proc.poll() is None:
                time.sleep(0.2)
            code = proc.returncode
        except KeyboardInterrupt:
            say("node %d draining: the job is stopping" % index)
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=cfg["drain_s"])
            except subprocess.TimeoutExpired:
                say("node %d did not drain within %d s: killing it" % (index, cfg["drain_s"]))
    finally:
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the node if it outlived its drain, and whatever it started
            except (ProcessLookupError, PermissionError):
                pass
            if code is None:
                code = proc.wait()
            tail = output_tail(out_path) if code != 0 else ""
            say("node %d exited with code %d%s" % (index, code, ": " + tail if tail else ""))
        shutil.rmtree(scratch, ignore_errors=True)
    return code


def last_line(err):
    """What an exception says, on one line: the last line of a task's traceback."""
    text = str(err).strip()
    return text.splitlines()[-1] if text else type(err).__name__


def main():
    import ray
    from ray.exceptions import TaskCancelledError

    cfg = json.loads(os.environ["ZP_RAY_CONFIG"])
    ray.init()
    # after ray.init, which may install a SIGTERM handler of its own that just exits
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    # a node whose worker died is not started again by Ray: its shards are rescheduled in the mesh
    task = ray.remote(run_node).options(max_retries=0, **cfg["task"])
    n = cfg["nodes"]
    refs = {task.remote(i, cfg): i for i in range(n)}
    say("job of %d node(s) for %s submitted, each task asking for %s" % (n, cfg["bridge"], json.dumps(cfg["task"], sort_keys=True)))
    pending = list(refs)
    failed = 0
    deadline = None
    while pending:
        if stopping and deadline is None:
            say("stop requested: cancelling %d task(s); each running node drains (up to %d s)" % (len(pending), cfg["drain_s"]))
            for ref in pending:
                ray.cancel(ref)
            deadline = time.monotonic() + cfg["drain_s"] + STOP_MARGIN_S
        if deadline is not None and time.monotonic() > deadline:
            say("%d task(s) did not end in time" % len(pending))
            failed += len(pending)
            break
        # a short wait, so a stop request is seen within a second
        ready, pending = ray.wait(pending, num_returns=1, timeout=1.0)
        for ref in ready:
            try:
                code = ray.get(ref)
            except TaskCancelledError:
                continue  # a running task said how its node ended; a pending one never started
            except Exception as e:
                failed += 1
                say("node %d lost: %s" % (refs[ref], last_line(e)))
                continue
            if code != 0:
                failed += 1
    say("the job ends: %s" % ("%d of %d node(s) failed" % (failed, n) if failed else "no node failed"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
