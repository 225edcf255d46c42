"""Local stand-ins for outside services, started on 127.0.0.1 by tests and demos."""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self


class QuietHTTPServer(ThreadingHTTPServer):
    """Says nothing when a client hung up before its answer was written.

    Tests that make the IdP give up waiting (timeouts) leave such answers behind. Formatting
    their tracebacks here would also be harmful: Python 3.11 parses source lines with ``ast``
    for the ``^^^`` markers, and ``ast.parse`` in two threads at once can fail with
    "SystemError: AST constructor recursion depth mismatch" (CPython gh-106905) in whatever
    the test's own thread was parsing at the time (an app's URL rules, say).
    """

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 whose handler reaches this object.

    Subclasses name their handler class and the attribute the handler finds them under.
    """

    handler_class: ClassVar[type[BaseHTTPRequestHandler]]
    handler_attribute: ClassVar[str] = "fake"

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Listen on 127.0.0.1 (a free port unless one was given) in a daemon thread."""
        handler = type("Handler", (self.handler_class,), {self.handler_attribute: self})
        self._server = QuietHTTPServer(("127.0.0.1", self._port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port the fake listens on."""
        assert self._server is not None, f"{type(self).__name__} is not running"
        return int(self._server.server_address[1])
