"""The fake head's private task API (/_fake/...), over HTTP at RAY_ADDRESS."""
import json
import urllib.error
import urllib.request


class Head:
    def __init__(self, address):
        self.base = "http://" + address.replace("http://", "").rstrip("/")

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as res:
                return json.loads(res.read().decode())
        except urllib.error.HTTPError as e:
            raise RuntimeError("fake Ray head: %s %s: %s %s" % (method, path, e.code, e.read().decode(errors="replace")))
