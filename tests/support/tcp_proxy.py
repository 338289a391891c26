"""A TCP relay in front of a real server whose link the test can cut: an outage of the database as a client
sees one (open connections reset, new ones closed at once, as by a server shutting down), without touching the
server other tests share. It counts the connections it turned away, so a test can wait until the clients have
really met the outage (an event, not a sleep) before it ends it."""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpRelay:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.refused = 0  # connections turned away while cut
        self._down = False
        self._links: set[socket.socket] = set()
        self._changed = threading.Condition()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def up(self) -> None:
        """Relay connections (again)."""
        with self._changed:
            self._down = False

    def cut(self) -> None:
        """Reset every open connection and turn new ones away until `up`."""
        with self._changed:
            self._down = True
            links, self._links = self._links, set()
        for link in links:
            _close(link)

    def wait_refused(self, count: int, timeout: float) -> bool:
        """Until `count` connections in all have been turned away; False when `timeout` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: self.refused >= count, timeout=timeout)

    def close(self) -> None:
        self.cut()
        _close(self._listener)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            with self._changed:
                if self._down:
                    self.refused += 1
                    self._changed.notify_all()
                    _close(client)
                    continue
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                _close(client)
                continue
            with self._changed:
                cut_meanwhile = self._down
                if not cut_meanwhile:
                    self._links |= {client, server}
            if cut_meanwhile:
                _close(client)
                _close(server)
                continue
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
