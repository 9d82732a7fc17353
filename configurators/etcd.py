"""etcd for profiling: endpoint parsing, an up-front reachability check, a tiny
key-value client, and a throwaway local server for ``--start-etcd``.

nixlbench and cross-host NIXL agents meet in etcd. A run that cannot reach it
would otherwise sit in a connect loop, so every entry point checks first, with a
short timeout, and says which endpoint failed and why. The client speaks etcd's
v3 JSON gateway over plain HTTP (``urllib``) so no etcd Python package is needed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from registry.errors import ModelRegError, UsageError

DEFAULT_ENDPOINT = "http://localhost:2379"
ENDPOINT_FLAG = "--etcd-endpoints"
CHECK_TIMEOUT_S = 2.0


class EtcdError(ModelRegError):
    """etcd is unreachable, refused a request, or the local server would not start."""


@dataclass(frozen=True)
class EtcdEndpoint:
    """One client URL of an etcd cluster (``http://host:port``)."""

    scheme: str
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def __str__(self) -> str:
        return self.url


def parse_endpoints(text: str, flag: str = ENDPOINT_FLAG) -> list[EtcdEndpoint]:
    """Parse a comma-separated endpoint list; bare ``host:port`` means http.

    Raises UsageError naming ``flag`` for anything that is not a URL with a port
    we can dial, so a typo fails before a benchmark is half set up.
    """
    endpoints = []
    for raw in (part.strip() for part in text.split(",")):
        if not raw:
            continue
        candidate = raw if "://" in raw else f"http://{raw}"
        parsed = urllib.parse.urlsplit(candidate)
        try:
            port = parsed.port
        except ValueError:
            port = None
        if parsed.scheme not in ("http", "https") or not parsed.hostname or port is None:
            raise UsageError(
                f"{flag}: expected http://HOST:PORT (comma-separated for several), found {raw!r}"
            )
        endpoints.append(EtcdEndpoint(parsed.scheme, parsed.hostname, port))
    if not endpoints:
        raise UsageError(f"{flag}: expected at least one http://HOST:PORT, found {text!r}")
    return endpoints


def check_reachable(endpoints: list[EtcdEndpoint], timeout: float = CHECK_TIMEOUT_S) -> EtcdEndpoint:
    """Return the first endpoint whose ``/health`` answers; raise EtcdError naming each failure.

    The timeout bounds each endpoint, so the user waits seconds, never minutes,
    to learn that nothing listens there.
    """
    failures = []
    for endpoint in endpoints:
        try:
            with urllib.request.urlopen(f"{endpoint.url}/health", timeout=timeout) as response:
                body = json.loads(response.read() or b"{}")
            if str(body.get("health")).lower() == "true":
                return endpoint
            failures.append(f"{endpoint.url} answered /health with {body}")
        except (urllib.error.URLError, OSError, ValueError) as error:
            failures.append(f"{endpoint.url}: {_reason(error)}")
    raise EtcdError(
        f"cannot reach etcd ({'; '.join(failures)}) within {timeout:g} s; "
        f"start one with --start-etcd or point {ENDPOINT_FLAG} at a running etcd"
    )


def _reason(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or error
    return str(reason).strip() or type(error).__name__


class EtcdClient:
    """Put, get and delete keys through etcd's v3 JSON gateway.

    Profiling only exchanges a few small JSON values (buffer descriptors, the
    final statistics), so plain HTTP calls with a timeout are enough.
    """

    def __init__(self, endpoint: EtcdEndpoint, timeout: float = CHECK_TIMEOUT_S):
        self.endpoint = endpoint
        self.timeout = timeout

    def put(self, key: str, value: str) -> None:
        self._call("kv/put", {"key": _b64(key), "value": _b64(value)})

    def get(self, key: str) -> str | None:
        kvs = self._call("kv/range", {"key": _b64(key)}).get("kvs") or []
        return base64.b64decode(kvs[0].get("value", "")).decode() if kvs else None

    def delete_prefix(self, prefix: str) -> None:
        self._call("kv/deleterange", {"key": _b64(prefix), "range_end": _b64(_prefix_end(prefix))})

    def wait_for(self, key: str, timeout: float, poll: float = 0.05) -> str:
        """Poll until ``key`` exists; EtcdError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.get(key)
            if value is not None:
                return value
            if time.monotonic() >= deadline:
                raise EtcdError(
                    f"no peer published {key!r} in etcd at {self.endpoint} within {timeout:g} s; "
                    "is the other side (--role) running against the same --etcd-endpoints?"
                )
            time.sleep(poll)

    def _call(self, path: str, payload: dict) -> dict:
        request = urllib.request.Request(
            f"{self.endpoint.url}/v3/{path}",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"{}")
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise EtcdError(f"etcd at {self.endpoint} failed on /v3/{path}: {_reason(error)}") from None


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _prefix_end(prefix: str) -> str:
    """The smallest key greater than every key starting with ``prefix`` (etcd range end)."""
    raw = prefix.encode()
    return (raw[:-1] + bytes([raw[-1] + 1])).decode() if raw else "\0"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port the kernel says is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class LocalEtcd:
    """A single-node etcd on loopback with a temporary data dir, for one run.

    Used as a context manager: the server is stopped and its data dir removed on
    every exit path, Ctrl-C included. It runs in its own session so the
    terminal's SIGINT reaches us first and we shut it down in order.
    """

    def __init__(self, binary: str | None = None, start_timeout: float = 10.0):
        self.binary = binary or shutil.which("etcd") or "/usr/bin/etcd"
        self.start_timeout = start_timeout
        self.endpoint: EtcdEndpoint | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._data_dir: str | None = None

    def __enter__(self) -> EtcdEndpoint:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> EtcdEndpoint:
        if not shutil.which(self.binary):
            raise EtcdError(
                f"--start-etcd: no etcd binary at {self.binary!r}; install it "
                "(Debian/Ubuntu: apt-get install etcd-server) or run one and pass --etcd-endpoints"
            )
        self._data_dir = tempfile.mkdtemp(prefix="modelreg-etcd-")
        client_port, peer_port = free_port(), free_port()
        client = f"http://127.0.0.1:{client_port}"
        argv = [
            self.binary,
            "--name", "modelreg-profile",
            "--data-dir", self._data_dir,
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"modelreg-profile=http://127.0.0.1:{peer_port}",
        ]  # fmt: skip
        log = open(f"{self._data_dir}.log", "wb")  # noqa: SIM115 - kept open for the child's lifetime
        self._process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        endpoint = EtcdEndpoint("http", "127.0.0.1", client_port)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._process.poll() is not None:
                code = self._process.returncode
                raise EtcdError(f"--start-etcd: etcd exited with code {code}: {self._log_tail()}")
            try:
                check_reachable([endpoint], timeout=0.5)
                break
            except EtcdError:
                if time.monotonic() >= deadline:
                    raise EtcdError(
                        f"--start-etcd: etcd did not become healthy at {endpoint} "
                        f"within {self.start_timeout:g} s: {self._log_tail()}"
                    ) from None
                time.sleep(0.1)
        self.endpoint = endpoint
        return endpoint

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._data_dir:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self._data_dir}.log")
            self._data_dir = None

    def _log_tail(self) -> str:
        try:
            with open(f"{self._data_dir}.log", "rb") as handle:
                lines = handle.read().decode(errors="replace").strip().splitlines()
            return lines[-1] if lines else "(no output)"
        except OSError:
            return "(no log)"
