"""A Kubernetes API server on 127.0.0.1 that speaks batch/v1 Jobs as the API documents them
(create, get, list, delete; Status objects for errors), for the real `kubernetes` client.
A test plays the Job controller by setting a Job's status (set_status)."""

from __future__ import annotations

import json
import re
import threading
import uuid
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.http_support import QuietHandler

TOKEN = "kube-test-token"
_JOBS = re.compile(r"/apis/batch/v1/namespaces/([a-z0-9-]+)/jobs(?:/([a-z0-9.-]+))?")


def status_object(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class KubeApi:
    """The server's state: Jobs by (namespace, name), and every request it answered."""

    def __init__(self):
        self.jobs: dict[tuple[str, str], dict] = {}
        self.requests: list[tuple[str, str, str]] = []  # (method, path with query, auth)
        self.lock = threading.Lock()
        self.create_error: tuple[int, str, str] | None = None  # (code, reason, message)
        self.created: list[dict] = []  # each Job as it was created
        self.deleted: list[dict] = []  # with the propagationPolicy of its DELETE
        self.url = ""

    def set_status(self, namespace: str, name: str, **status) -> None:
        with self.lock:
            self.jobs[(namespace, name)]["status"] = status

    def calls(self, method: str) -> list[str]:
        return [path for m, path, _ in self.requests if m == method]


class _Handler(QuietHandler):
    api: KubeApi

    def _reply(self, code: int, body: dict) -> None:
        self.send(code, json.dumps(body).encode(), "application/json")

    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        self.api.requests.append((method, self.path, self.headers.get("Authorization", "")))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._reply(401, status_object(401, "Unauthorized", "Unauthorized"))
        match = _JOBS.fullmatch(url.path)
        if not match:
            return self._reply(404, status_object(404, "NotFound", "the server could not "
                                                  "find the requested resource"))
        namespace, name = match.groups()
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else {}
        with self.api.lock:
            if method == "POST" and name is None:
                return self._create(namespace, body)
            if name is None and method == "GET":
                items = [j for (ns, _), j in self.api.jobs.items() if ns == namespace]
                return self._reply(200, {"kind": "JobList", "apiVersion": "batch/v1",
                                         "metadata": {"resourceVersion": "1"}, "items": items})
            job = self.api.jobs.get((namespace, name or ""))
            if job is None:
                return self._reply(404, status_object(404, "NotFound",
                                                      f'jobs.batch "{name}" not found'))
            if method == "GET":
                return self._reply(200, job)
            if method == "DELETE":
                del self.api.jobs[(namespace, name)]
                policy = parse_qs(url.query).get("propagationPolicy", [""])[0]
                job["metadata"]["annotations"]["test/propagationPolicy"] = policy
                self.api.deleted.append(job)
                return self._reply(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                         "status": "Success", "details": {
                                             "name": name, "group": "batch", "kind": "jobs"}})
        self._reply(405, status_object(405, "MethodNotAllowed", method))

    def _create(self, namespace: str, job: dict) -> None:
        if self.api.create_error:
            return self._reply(self.api.create_error[0], status_object(*self.api.create_error))
        name = job["metadata"]["name"]
        if (namespace, name) in self.api.jobs:
            return self._reply(409, status_object(409, "AlreadyExists",
                                                  f'jobs.batch "{name}" already exists'))
        job["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()),
                               resourceVersion="1", creationTimestamp="2026-12-01T12:00:00Z")
        job["metadata"].setdefault("annotations", {})
        job["status"] = {}
        self.api.jobs[(namespace, name)] = job
        self.api.created.append(json.loads(json.dumps(job)))
        self._reply(201, job)

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    def do_DELETE(self):
        self._route("DELETE")


class KubeApiServer:
    def __init__(self):
        self.api = KubeApi()
        handler = type("Handler", (_Handler,), {"api": self.api})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> KubeApi:
        self.thread.start()
        self.api.url = self.url
        return self.api

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
