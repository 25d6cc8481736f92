"""A TCP forwarder a test can take down and bring back: a dependency outage (PostgreSQL, say)
seen by one process only, without stopping the server other tests share."""

import contextlib
import socket
import threading


class TcpProxy:
    def __init__(self, *, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._up = threading.Event()
        self._up.set()
        self._closing = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and cut every open one, as a crashed server would."""
        self._up.clear()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def up(self) -> None:
        self._up.set()

    def close(self) -> None:
        self._closing.set()
        self.down()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._up.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, server))
            threading.Thread(target=self._pipe, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.close()
            with self._lock:
                self._sockets.discard(source)
                self._sockets.discard(sink)
