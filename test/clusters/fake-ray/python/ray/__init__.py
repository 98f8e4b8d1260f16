"""A fake of the part of Ray's Python API that the zp Ray launcher uses (init, remote with .options(num_cpus,
num_gpus, resources, max_retries), wait, get, cancel), talking to the test suite's fake head
(test/clusters/fake-ray). Each task runs in a process the head starts once the fake cluster has the resources
it asks for (until then it stays pending, as in Ray); the head kills a job's task processes when its driver
ends. Functions go to the workers by value (see _pickle); closures and classes do not."""
import json
import os
import sys
import time

from . import _pickle
from ._head import Head
from .exceptions import GetTimeoutError, RayTaskError, TaskCancelledError, WorkerCrashedError

__version__ = "2.9.3"
_FINAL = ("FINISHED", "FAILED", "CANCELLED", "CRASHED")
_TASK_OPTIONS = ("num_cpus", "num_gpus", "resources", "max_retries", "name")
_POLL_S = 0.05
_state = {}


def init(address=None, **_ignored):
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        raise ConnectionError("Could not find any running Ray instance. Please specify the one to connect to by setting RAY_ADDRESS.")
    config = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") or "{}")
    head = Head(address)
    job = head.call("POST", "/_fake/init", {"submission_id": (config.get("metadata") or {}).get("job_submission_id"), "pid": os.getpid()})
    _state.update(head=head, job_id=job["job_id"], submission_id=job["submission_id"])


def is_initialized():
    return "head" in _state


def shutdown():
    _state.clear()


def _head():
    if "head" not in _state:
        init()
    return _state["head"]


def cluster_resources():
    return _head().call("GET", "/_fake/resources")["total"]


def available_resources():
    return _head().call("GET", "/_fake/resources")["available"]


class ObjectRef:
    def __init__(self, task_id):
        self.task_id = task_id

    def __repr__(self):
        return "ObjectRef(%s)" % self.task_id

    def __hash__(self):
        return hash(self.task_id)

    def __eq__(self, other):
        return isinstance(other, ObjectRef) and other.task_id == self.task_id


class RemoteFunction:
    def __init__(self, fn, options):
        unknown = sorted(set(options) - set(_TASK_OPTIONS))
        if unknown:
            raise ValueError("Invalid option keyword %s for remote functions." % unknown[0])
        if {"CPU", "GPU"} & set(options.get("resources") or {}):
            raise ValueError("Use the 'num_cpus' and 'num_gpus' keyword instead of 'CPU' and 'GPU' in 'resources' keyword")
        self._fn = fn
        self._options = options

    def options(self, **options):
        return RemoteFunction(self._fn, dict(self._options, **options))

    def remote(self, *args, **kwargs):
        o = self._options
        task = _head().call("POST", "/_fake/tasks", {
            "job_id": _state["job_id"],
            "name": o.get("name") or self._fn.__name__,
            # workers run the driver's Python: functions travel as its bytecode
            "python": sys.executable,
            "payload": _pickle.dumps((self._fn, args, kwargs)),
            "resources": dict(o.get("resources") or {}, CPU=o.get("num_cpus", 1), GPU=o.get("num_gpus", 0)),
        })
        return ObjectRef(task["task_id"])


def remote(*args, **options):
    if len(args) == 1 and callable(args[0]) and not options:
        return RemoteFunction(args[0], {})
    return lambda fn: RemoteFunction(fn, options)


def _states(refs):
    return _head().call("POST", "/_fake/tasks/states", {"ids": [r.task_id for r in refs]})


def wait(object_refs, *, num_returns=1, timeout=None, fetch_local=True):
    refs = list(object_refs)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        states = _states(refs)
        done = [r for r in refs if states[r.task_id] in _FINAL]
        if len(done) >= num_returns or (deadline is not None and time.monotonic() >= deadline):
            ready = done[:num_returns]
            return ready, [r for r in refs if r not in ready]
        time.sleep(_POLL_S)


def get(object_refs, *, timeout=None):
    single = isinstance(object_refs, ObjectRef)
    refs = [object_refs] if single else list(object_refs)
    ready, _ = wait(refs, num_returns=len(refs), timeout=timeout)
    if len(ready) < len(refs):
        raise GetTimeoutError("Get timed out: some object(s) not ready.")
    values = [_result(r) for r in refs]
    return values[0] if single else values


def _result(ref):
    r = _head().call("GET", "/_fake/tasks/%s/result" % ref.task_id)
    if r["state"] == "FINISHED":
        return _pickle.loads(r["value"])
    if r["state"] == "CANCELLED":
        raise TaskCancelledError(ref.task_id)
    if r["state"] == "CRASHED":
        raise WorkerCrashedError()
    raise RayTaskError(r["name"], r["error"])


def cancel(object_ref, *, force=False, recursive=True):
    _head().call("POST", "/_fake/tasks/%s/cancel" % object_ref.task_id, {"force": force})
