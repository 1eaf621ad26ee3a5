"""Starts moto's S3 server with its writes made atomic.

moto checks a conditional put (If-None-Match: *) and then stores the object
in two separate steps, on a threaded server: two concurrent creates of one
key can both see it absent and both succeed. Real S3 decides a conditional
put atomically, and talusdb's fencing and manifest protocol rest on that, so
the test suite runs the server with every request that changes state
(anything but GET and HEAD) serialised by one lock. Reads stay concurrent.

Usage: python moto_atomic.py -H 127.0.0.1 -p PORT   (moto_server's flags)
"""

import sys
import threading

import moto.server as server

_WRITES = threading.Lock()
_run_simple = server.run_simple


def _serialise_writes(app):
    def serialised(environ, start_response):
        if environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            return app(environ, start_response)
        with _WRITES:
            # The request takes effect while the response is produced, so
            # the whole body is produced under the lock.
            return list(app(environ, start_response))

    return serialised


def _run_simple_serialised(host, port, app, **options):
    return _run_simple(host, port, _serialise_writes(app), **options)


server.run_simple = _run_simple_serialised

if __name__ == "__main__":
    sys.exit(server.main())
