"""A loopback TCP proxy that tests can cut and restore, to take a server away from a client.

``TcpProxy(target_port)`` listens on 127.0.0.1 at a port of its own and forwards
every connection to ``127.0.0.1:target_port``. ``cut()`` closes every open
connection (both sides) and stops listening, so new connections are refused
as by a server that is down; ``restore()`` listens again on the same port. It
runs its own event loop in a daemon thread, so synchronous and asynchronous
tests alike can use it and a busy test loop never stalls the forwarded traffic.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")

_CHUNK = 64 * 1024
_CONTROL_TIMEOUT = 10.0


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:target_port`` until cut."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    def __enter__(self) -> TcpProxy:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def cut_off(self) -> bool:
        """Whether the proxy refuses connections right now."""
        return self._server is None

    def start(self) -> None:
        """Start the thread and listen (on a free port the first time)."""
        self._thread.start()
        self._call(self._listen())

    def cut(self) -> None:
        """Close every forwarded connection and refuse new ones, until ``restore``."""
        self._call(self._cut())

    def restore(self) -> None:
        """Listen again on the same port."""
        self._call(self._listen())

    def close(self) -> None:
        """Cut everything and stop the thread."""
        if self._thread.is_alive():
            self._call(self._cut())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=_CONTROL_TIMEOUT)
        self._loop.close()

    # ------------------------------------------------------------------ in the proxy's loop

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(_CONTROL_TIMEOUT)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)
            self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for connection in list(self._connections):
            connection.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _forward(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        writers = [client_out]
        try:
            if self.cut_off:
                return  # accepted in the instant before the cut
            server_in, server_out = await asyncio.open_connection("127.0.0.1", self.target_port)
            writers.append(server_out)
            await asyncio.gather(_pipe(client_in, server_out), _pipe(server_in, client_out))
        except (OSError, asyncio.CancelledError):
            pass  # the connection ends here either way; the client sees it closed
        finally:
            for writer in writers:
                writer.transport.abort()
            self._connections.discard(task)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy bytes until ``source`` ends, then end ``sink``'s side."""
    while chunk := await source.read(_CHUNK):
        sink.write(chunk)
        await sink.drain()
    if sink.can_write_eof():
        sink.write_eof()
