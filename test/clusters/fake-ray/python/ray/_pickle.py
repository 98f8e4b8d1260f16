"""How the fake ships a task's function to the process that runs it. Ray uses cloudpickle, which sends
functions of the driver's __main__ by value; so does this, with the standard library only: their code
(marshal; driver and workers run the same Python) and the globals they name, modules by name."""
import base64
import builtins
import importlib
import io
import marshal
import pickle
import types


def _names(code):
    found = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found |= _names(const)
    return found


def _make_function(code, namespace, name, defaults, kwdefaults):
    namespace.setdefault("__builtins__", builtins)
    fn = types.FunctionType(marshal.loads(code), namespace, name, defaults)
    fn.__kwdefaults__ = kwdefaults
    return fn


def _by_value(obj):
    return isinstance(obj, types.FunctionType) and obj.__module__ == "__main__"


class _Pickler(pickle.Pickler):
    def __init__(self, file):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        # one namespace for every __main__ function, filled before any is written (pickle memoizes it)
        self._namespace = {}

    def _collect(self, fn):
        for name in _names(fn.__code__):
            if name in fn.__globals__ and name not in self._namespace:
                value = fn.__globals__[name]
                self._namespace[name] = value
                if _by_value(value):
                    self._collect(value)

    def reducer_override(self, obj):
        if isinstance(obj, types.ModuleType):
            return importlib.import_module, (obj.__name__,)
        if _by_value(obj):
            if obj.__closure__:
                raise pickle.PicklingError("the fake ray cannot ship closures (%s); use a module-level function" % obj.__name__)
            self._collect(obj)
            return _make_function, (marshal.dumps(obj.__code__), self._namespace, obj.__name__, obj.__defaults__, obj.__kwdefaults__)
        return NotImplemented


def dumps(obj):
    buf = io.BytesIO()
    _Pickler(buf).dump(obj)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def loads(text):
    return pickle.loads(base64.b64decode(text))
