"""The exceptions of Ray's that the fake raises (ray.exceptions)."""


class RayError(Exception):
    pass


class RayTaskError(RayError):
    """The task raised; carries its traceback as text, as Ray shows it."""

    def __init__(self, function_name, traceback_str):
        super().__init__("ray::%s() failed:\n%s" % (function_name, traceback_str))
        self.function_name = function_name
        self.traceback_str = traceback_str


class TaskCancelledError(RayError):
    def __init__(self, task_id=None):
        super().__init__("Task: %s was cancelled." % task_id)
        self.task_id = task_id


class WorkerCrashedError(RayError):
    def __init__(self):
        super().__init__("The worker died unexpectedly while executing this task. "
                         "Check python-core-worker-*.log files for more information.")


class GetTimeoutError(RayError, TimeoutError):
    pass
