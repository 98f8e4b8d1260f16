#!/usr/bin/env python3
"""The Dask bridge's driver: makes every Dask worker run one mesh node (`zp-node join ...`).

Run with the Python the cluster's workers run (standard library + distributed only):
  driver.py up    --scheduler ADDR --id ID --argv-json '[...]' [--env-json '{}'] [--per-worker K] [--drain-s S]
  driver.py info  --scheduler ADDR --id ID
  driver.py down  --scheduler ADDR --id ID
  driver.py check --scheduler ADDR
Each prints one JSON object on stdout and exits 0, or prints {"error", "fix", "code"} and exits 2.

`up` registers a WorkerPlugin named zp-node-<ID>. The scheduler keeps it, so it also starts a node on
workers that join later or that a nanny restarts, long after this process has exited. Placeholders in
argv: {worker} (the worker's name, sanitized), {slots} (--per-worker, or the worker's threads),
{datadir} (stable per ID and worker name, so a restarted worker's node keeps its identity), {id}.
"""
import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PLACEHOLDER_RE = re.compile(r"\{(worker|slots|datadir|id)\}")
# marks every node process (and what it starts) so `down` can find stragglers on a worker's host
MARK = "ZP_DASK_BRIDGE"
UNREACHABLE_FIX = "is `dask scheduler` running there? check the address and port"


class DriverError(Exception):
    def __init__(self, code, error, fix):
        super().__init__(error)
        self.code, self.error, self.fix = code, error, fix


def plugin_name(bridge_id):
    return "zp-node-" + bridge_id


def id_root(bridge_id):
    return os.path.join(tempfile.gettempdir(), "zp-dask-" + bridge_id)


def proc_alive(pid):
    """Running, not a zombie waiting for a parent that does not reap."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _tail(path, limit=2000):
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - limit))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


class ZpNodePlugin:
    """One node process per worker. Duck-typed WorkerPlugin (distributed accepts that): pickled by value
    from this script's __main__, so workers need nothing but distributed."""

    def __init__(self, bridge_id, argv, env, per_worker, drain_s):
        self.name = plugin_name(bridge_id)
        self.bridge_id, self.argv, self.env = bridge_id, argv, env
        self.per_worker, self.drain_s = per_worker, drain_s
        self.proc = None
        self.datadir = None

    def setup(self, worker):
        # runs on the worker's event-loop thread, which lives as long as the worker: PR_SET_PDEATHSIG
        # fires when the thread that forked the child ends, so never start the node from a task thread
        worker_name = re.sub(r"[^A-Za-z0-9._-]", "_", str(worker.name))
        self.datadir = os.path.join(id_root(self.bridge_id), worker_name)
        os.makedirs(self.datadir, exist_ok=True)
        values = {"worker": worker_name, "slots": str(self.per_worker or worker.state.nthreads),
                  "datadir": self.datadir, "id": self.bridge_id}
        argv = [PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], a) for a in self.argv]
        env = dict(os.environ, **self.env)
        env[MARK] = self.bridge_id
        with open(os.path.join(self.datadir, "node.out"), "ab") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         env=env, start_new_session=True, preexec_fn=_die_with_parent())

    async def teardown(self, worker):
        import asyncio  # async so a draining node does not block the worker's event loop
        proc = self.proc
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                deadline = time.monotonic() + self.drain_s
                while proc.poll() is None and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
            # the node, if it outlived the drain, and whatever it started (its session's process group)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
        if self.datadir is not None:
            shutil.rmtree(self.datadir, ignore_errors=True)
            try:
                os.rmdir(os.path.dirname(self.datadir))  # the last node of this bridge on the host
            except OSError:
                pass


def _die_with_parent():
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


def node_state(name, dask_worker=None):
    """On a worker (client.run): its node process, if the plugin started one."""
    plugin = dask_worker.plugins.get(name)
    proc = getattr(plugin, "proc", None)
    alive = proc is not None and proc.poll() is None and proc_alive(proc.pid)
    state = {"name": str(dask_worker.name), "address": dask_worker.address, "nthreads": dask_worker.state.nthreads,
             "child_pid": proc.pid if proc is not None else None, "alive": alive,
             "exit_code": None if proc is None else proc.returncode}
    if proc is not None and not alive:
        state["output_tail"] = _tail(os.path.join(plugin.datadir, "node.out"))
    return state


def sweep(bridge_id):
    """On a worker (client.run): kills every process of this bridge left on its host, removes its datadirs."""
    killed = []
    needle = ("%s=%s" % (MARK, bridge_id)).encode()
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as f:
                marked = needle in f.read().split(b"\0")
        except OSError:
            continue
        if marked and proc_alive(int(entry)):
            try:
                os.kill(int(entry), signal.SIGKILL)
                killed.append(int(entry))
            except ProcessLookupError:
                pass
    shutil.rmtree(id_root(bridge_id), ignore_errors=True)
    return killed


def scheduler_plugins(dask_scheduler):
    return list(dask_scheduler.worker_plugins)


def scheduler_version():
    import distributed
    return distributed.__version__


def workers_of(client, name):
    states = client.run(node_state, name, on_error="return")
    return [s for s in states.values() if isinstance(s, dict)]


def cmd_up(client, a):
    name = plugin_name(a.id)
    argv = _json_arg(a.argv_json, list, "--argv-json", '\'["/abs/path/to/node", "zp-node.mjs", "join", "..."]\'')
    env = _json_arg(a.env_json, dict, "--env-json", '\'{"NAME": "value"}\'')
    if not argv or not all(isinstance(x, str) for x in argv):
        raise DriverError("bad-input", "--argv-json must be a non-empty array of strings", "pass the node's command, e.g. '[\"/usr/bin/node\", \"zp-node.mjs\", \"join\", \"ADDR\"]'")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise DriverError("bad-input", "--env-json must map names to strings", 'quote every value, e.g. \'{"ZP_LOG": "info"}\'')
    try:
        client.register_worker_plugin(ZpNodePlugin(a.id, argv, env, a.per_worker, a.drain_s), name=name)
    except Exception as e:  # setup raised on a worker: leave nothing registered that fails on every new worker
        _clean(client, a.id)
        raise DriverError("node-failed", "the node process could not start on a Dask worker: %s" % e,
                          "check that %s exists on every Dask worker and is executable (use an absolute path)" % argv[0])
    workers = workers_of(client, name)
    dead = [w for w in workers if not w["alive"]]
    if dead:
        _clean(client, a.id)
        w = dead[0]
        raise DriverError("node-failed", "the node process on Dask worker %s exited with code %s: %s" % (w["name"], w["exit_code"], w.get("output_tail") or "(no output)"),
                          "run the same command by hand on that worker's host to see why it stops: %s" % shlex.join(argv))
    return {"plugin": name, "workers": [{"name": w["name"], "address": w["address"]} for w in workers]}


def cmd_info(client, a):
    name = plugin_name(a.id)
    registered = name in client.run_on_scheduler(scheduler_plugins)
    workers = workers_of(client, name)
    for w in workers:
        w.pop("output_tail", None)
    return {"registered": registered, "workers": workers}


def cmd_down(client, a):
    name = plugin_name(a.id)
    stopped = {w["child_pid"] for w in workers_of(client, name) if w["alive"]}
    return {"stopped": len(stopped | _clean(client, a.id))}


def cmd_check(client, a):
    return {"workers": len(client.scheduler_info()["workers"]), "version": client.run_on_scheduler(scheduler_version)}


def _clean(client, bridge_id):
    """Unregisters the plugin (each worker's teardown drains its node), then kills what is left of this
    bridge on every worker's host. Returns the pids it had to kill."""
    name = plugin_name(bridge_id)
    if name in client.run_on_scheduler(scheduler_plugins):
        client.unregister_worker_plugin(name)
    killed = set()
    for pids in client.run(sweep, bridge_id, on_error="return").values():
        if isinstance(pids, list):
            killed.update(pids)
    return killed


def _json_arg(text, kind, flag, example):
    try:
        value = json.loads(text)
    except ValueError as e:
        raise DriverError("bad-input", "%s is not JSON: %s" % (flag, e), "pass e.g. %s %s" % (flag, example))
    if not isinstance(value, kind):
        raise DriverError("bad-input", "%s must be a JSON %s" % (flag, "array" if kind is list else "object"), "pass e.g. %s %s" % (flag, example))
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise DriverError("bad-input", message, "see `%s --help`" % self.prog)


def _parser():
    p = _Parser(prog="driver.py", description="Runs a mesh node on every Dask worker.")
    sub = p.add_subparsers(dest="cmd", required=True)
    for cmd in ("up", "info", "down", "check"):
        s = sub.add_parser(cmd)
        s.add_argument("--scheduler", required=True, help="tcp://HOST:8786")
        s.add_argument("--timeout", type=float, default=10.0, help="seconds to connect to the scheduler")
        if cmd != "check":
            s.add_argument("--id", required=True)
        if cmd == "up":
            s.add_argument("--argv-json", required=True)
            s.add_argument("--env-json", default="{}")
            s.add_argument("--per-worker", type=int)
            s.add_argument("--drain-s", type=float, default=20.0)
    return p


def main(args):
    try:
        a = _parser().parse_args(args)
        if getattr(a, "id", None) is not None and not ID_RE.match(a.id):
            raise DriverError("bad-input", "--id %r is not a bridge id" % a.id, "use letters, digits, '-' and '_' (at most 64), e.g. dask-3f9a2c")
        if getattr(a, "per_worker", None) is not None and a.per_worker < 1:
            raise DriverError("bad-input", "--per-worker must be at least 1", "pass the work slots each node offers, e.g. --per-worker 4")
        try:
            from distributed import Client
        except ImportError as e:
            raise DriverError("no-distributed", "%s cannot import distributed: %s" % (sys.executable, e),
                              "run the driver with the Python your Dask workers run, or install python3-distributed")
        try:
            client = Client(a.scheduler, timeout=a.timeout)
        except (OSError, ValueError, TypeError) as e:
            raise DriverError("unreachable", "cannot reach the Dask scheduler at %s: %s" % (a.scheduler, e), UNREACHABLE_FIX)
        try:
            out = {"up": cmd_up, "info": cmd_info, "down": cmd_down, "check": cmd_check}[a.cmd](client, a)
        except (OSError, TimeoutError) as e:  # the scheduler went away mid-command
            raise DriverError("unreachable", "lost the Dask scheduler at %s: %s" % (a.scheduler, e), UNREACHABLE_FIX)
        finally:
            client.close()
    except DriverError as e:
        print(json.dumps({"error": e.error, "fix": e.fix, "code": e.code}), flush=True)
        return 2
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
