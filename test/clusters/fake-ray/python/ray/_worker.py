"""A fake Ray worker: the head starts one per task (in its own process group, not the driver's);
it runs the task's function and posts the result. A cancel is SIGINT (KeyboardInterrupt), as in Ray."""
import os
import traceback

from . import _pickle
from ._head import Head


def main():
    task_id = os.environ["FAKE_RAY_TASK_ID"]
    head = Head(os.environ["RAY_ADDRESS"])
    fn, args, kwargs = _pickle.loads(head.call("GET", "/_fake/tasks/%s/payload" % task_id)["payload"])
    try:
        body = {"ok": True, "value": _pickle.dumps(fn(*args, **kwargs))}
    except BaseException:  # a cancel's KeyboardInterrupt too: the head reports the task cancelled
        body = {"ok": False, "error": traceback.format_exc()}
    head.call("POST", "/_fake/tasks/%s/result" % task_id, body)
