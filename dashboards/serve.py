"""``python -m dashboards.serve [--storage URL] [--host 127.0.0.1] [--port 8080]``: optuna-dashboard.

Serves the live studies (intermediate values, PRUNED states, user attributes) from the same storage
the launcher writes, opened through ``storage.open_storage`` so a bad URL is one line, not a stack
trace. It listens on localhost unless told otherwise: the dashboard can rename and delete studies and
has no authentication, so exposing it on every interface is an explicit choice that gets a warning.
"""

from __future__ import annotations

import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna_dashboard

from objectives.cli import Parser, one_line_errors
from objectives.errors import AblationError
from storage import open_storage, redact, resolve_url
from storage.cli import add_storage_argument

ALL_INTERFACES = ("0.0.0.0", "")


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """One thread per request: the dashboard polls several endpoints at once."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """No access log line per poll request (the dashboard polls every few seconds)."""

    def log_message(self, format: str, *args: object) -> None:
        pass


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m dashboards.serve", description=__doc__.splitlines()[0])
    add_storage_argument(parser)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to listen on (default 127.0.0.1; 0.0.0.0 exposes it to the network)",
    )
    parser.add_argument("--port", type=int, default=8080, help="port (0 picks a free one)")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0..65535, got {args.port}")

    url = resolve_url(args.storage)
    storage = open_storage(url)
    try:
        server = make_server(
            args.host,
            args.port,
            optuna_dashboard.wsgi(storage),
            server_class=_ThreadingServer,
            handler_class=_QuietHandler,
        )
    except OSError as exc:
        raise AblationError(
            f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); "
            "pick another --port or --host"
        ) from None
    if args.host in ALL_INTERFACES:
        print(
            "warning: listening on all interfaces; anyone who can reach this machine can edit "
            "and delete studies (use --host 127.0.0.1 to keep it local)",
            file=sys.stderr,
            flush=True,
        )
    shown = "localhost" if args.host in ALL_INTERFACES else args.host
    print(
        f"optuna-dashboard for {redact(url)} at http://{shown}:{server.server_port}/dashboard "
        "(Ctrl-C stops)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
