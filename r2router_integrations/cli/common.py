"""Helpers shared by the CLI commands: loading a router, printing decisions, and the one place
that turns a command's failures into one line and an exit code (:func:`run_command`)."""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import re
import socket
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from r2router_core import (
    ConfigError,
    R2Router,
    R2RouterError,
    RoutingDecision,
    format_budget,
)

ROUTER_ENV = "R2ROUTER_ROUTER"
ENGINES = ("local", "ray")


def add_engine_arguments(parser: argparse.ArgumentParser, work: str) -> None:
    """``--engine local|ray``, ``--ray-address`` and ``--concurrency``; ``work`` says what the engine does."""
    parser.add_argument("--engine", choices=ENGINES, default="local", help=f"where to {work} (default: local)")
    parser.add_argument("--ray-address", help="Ray cluster address, e.g. ray://head:10001 or auto (--engine ray)")
    parser.add_argument("--concurrency", type=int, help="Ray actors (default: one per cluster CPU; --engine ray)")


def check_engine_arguments(args: argparse.Namespace) -> None:
    """The Ray options only with ``--engine ray``."""
    if args.engine != "ray" and (args.ray_address or args.concurrency):
        raise ConfigError("--ray-address and --concurrency need --engine ray")
    check_numbers(args, {"concurrency": (1, math.inf, ""), "batch_size": (1, math.inf, "")})


@contextmanager
def embedding_engine(args: argparse.Namespace, spec: str) -> Iterator[Any]:
    """``None`` for ``--engine local`` (the caller loads ``spec`` itself); for ``--engine ray`` a
    ``RayEmbedder`` for ``spec``, inside a Ray session that ends with the block."""
    check_engine_arguments(args)
    if args.engine != "ray":
        yield None
        return
    from r2router_integrations.ray import RayEmbedder, session

    with session(args.ray_address):
        yield RayEmbedder(spec, concurrency=args.concurrency)


def add_router_argument(parser: argparse.ArgumentParser) -> None:
    """``--router DIR`` (default: $R2ROUTER_ROUTER) and ``--embedder``."""
    parser.add_argument(
        "--router",
        default=os.environ.get(ROUTER_ENV),
        help=f"checkpoint directory or Hugging Face repo id (default: ${ROUTER_ENV})",
    )
    parser.add_argument(
        "--embedder",
        default="auto",
        help="embedder id or path; 'auto' (default) loads the one the checkpoint was trained with",
    )
    parser.add_argument("--trust-pickles", action="store_true", help="allow the card's pickled kNN checkpoints")


def add_routing_options(parser: argparse.ArgumentParser) -> None:
    """The per-call routing options."""
    parser.add_argument(
        "--lambda", dest="lambda_", type=float, help="cost weight in [0, 1] (default: the checkpoint's)"
    )
    parser.add_argument("--models", help="comma-separated pool models allowed")
    parser.add_argument("--max-budget", type=int, help="largest output-token budget allowed")
    parser.add_argument("--max-cost", type=float, help="largest predicted USD per query allowed")


def routing_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword options for R2Router.route*, from parsed arguments (the router checks their values)."""
    return {
        "lambda_": args.lambda_,
        "allowed_models": [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None,
        "max_budget": args.max_budget,
        "max_cost": args.max_cost,
    }


def load_router(args: argparse.Namespace, *, with_embedder: bool = True) -> R2Router:
    """Load the router named by ``--router``."""
    if not args.router:
        raise ConfigError(
            f"no router given: pass --router DIR (or set ${ROUTER_ENV}); "
            "build one with 'r2router train DATA_DIR --out DIR', or try 'r2router demo'"
        )
    return R2Router.from_pretrained(
        args.router, embedder=args.embedder if with_embedder else None, trust_pickles=args.trust_pickles
    )


def format_decision(decision: RoutingDecision, *, verbose: bool = False) -> str:
    """Human-readable decision; ``verbose`` ranks every candidate."""
    lines = [
        f"model:             {decision.model} ({decision.model_full_name})",
        f"token budget:      {format_budget(decision.token_limit)}",
        f"predicted quality: {decision.predicted_quality:.3f}",
        f"predicted tokens:  {decision.predicted_tokens:.0f}",
        f"predicted cost:    ${decision.predicted_cost:.6f} per query",
        f"lambda:            {decision.lambda_}",
    ]
    if verbose:
        lines.append("")
        lines.append(
            f"{'rank':>4}  {'model':<28} {'budget':>9} {'quality':>8} {'tokens':>7} {'cost $':>10} {'utility':>12}"
        )
        for rank, c in enumerate(decision.candidates, 1):
            flag = "" if c.eligible else "  (excluded)"
            lines.append(
                f"{rank:>4}  {c.model:<28} {format_budget(c.token_limit):>9} {c.predicted_quality:>8.3f} "
                f"{c.predicted_tokens:>7.0f} {c.predicted_cost:>10.6f} {c.utility:>12.6g}{flag}"
            )
    return "\n".join(lines)


def _strict_json(data: Any) -> Any:
    """NaN and inf (an arm with no prediction) become null: json.dumps would write invalid JSON."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _strict_json(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_strict_json(v) for v in data]
    return data


def print_json(data: Any) -> None:
    """Print strict JSON for machines (NaN/inf as null)."""
    print(json.dumps(_strict_json(data), indent=2, allow_nan=False))


# -- exit codes and operator errors (docs/cli.md#exit-codes) ---------------------------------
EXIT_OK = 0
EXIT_ERROR = 1  # an r2router error: bad input, config, checkpoint or data
EXIT_USAGE = 2  # a malformed command line or a flag value out of range
EXIT_STORE = 3  # the outcome store cannot be opened or reached
EXIT_NETWORK = 4  # a server or URL cannot be reached
EXIT_PORT = 5  # the address to serve on is taken or not available
EXIT_PERMISSION = 6  # a file or directory this user may not read or write
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_CLOSED_PIPE = 141  # stdout closed by the reader (``| head``), as a process killed by SIGPIPE


class CommandFailure(Exception):
    """A failure the command explains itself: one line on stderr and an exit code.

    Args:
        message: What failed and the fix.
        code: One of the ``EXIT_*`` codes.
    """

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def run_command(args: argparse.Namespace) -> int:
    """Run ``args.run(args)``; every failure of the world becomes one line on stderr and its exit code.

    Store, network, port and permission failures (and r2router's own errors) print
    ``r2router COMMAND: error: ...`` naming the thing and the fix, with no traceback;
    a reader that closes the pipe (``r2router info DIR | head -1``) ends the command
    quietly. Anything else is a bug and keeps its traceback.
    """
    try:
        code = int(args.run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return code
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_CLOSED_PIPE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        failure = describe_failure(exc, args)
        if failure is None:
            raise
        print(f"r2router {args.command}: error: {failure}", file=sys.stderr)
        return failure.code


def describe_failure(exc: BaseException, args: argparse.Namespace | None = None) -> CommandFailure | None:
    """The one-line :class:`CommandFailure` for ``exc``, or ``None`` for a bug (keep its traceback)."""
    if isinstance(exc, CommandFailure):
        return exc
    if isinstance(exc, R2RouterError):
        return CommandFailure(str(exc), EXIT_ERROR)  # r2router's own message, as written
    store = getattr(args, "store", None)
    if type(exc).__module__.split(".")[0] == "sqlalchemy" or (store and _caused_by_sqlalchemy(exc)):
        return _store_failure(exc, store)
    if type(exc).__module__.split(".")[0] == "httpx" or isinstance(exc, ConnectionError | socket.gaierror):
        return CommandFailure(
            f"cannot reach the server ({_reason(exc)}); check the URL and that the server is running", EXIT_NETWORK
        )
    if isinstance(exc, PermissionError):
        return CommandFailure(
            f"permission denied: {exc.filename or _reason(exc)}; make it readable/writable by this user "
            "or choose another path",
            EXIT_PERMISSION,
        )
    if isinstance(exc, OSError) and exc.filename is not None:
        return CommandFailure(f"{exc.strerror or _reason(exc)}: {exc.filename}; check the path", EXIT_ERROR)
    return None


def _caused_by_sqlalchemy(exc: BaseException) -> bool:
    cause = exc.__cause__ or exc.__context__
    return cause is not None and type(cause).__module__.split(".")[0] == "sqlalchemy"


_STORE_FIXES = (  # (words of the driver's message, what it means and the fix)
    ("unable to open database file", "cannot be opened; create its directory or fix the path"),
    ("file is not a database", "is not a SQLite database; point --store at an r2router store or a new file"),
    ("file is encrypted", "is not a SQLite database; point --store at an r2router store or a new file"),
    ("readonly database", "is read-only; make the file and its directory writable by this user"),
    ("password authentication failed", "refused the credentials; fix the user and password in the URL"),
    ("does not exist", "names a database that does not exist; create it (createdb NAME) or fix the URL"),
    ("connection", "cannot be reached; start the database server or fix the host and port in the URL"),
    ("could not translate host name", "cannot be reached; fix the host in the URL"),
    ("timeout", "did not answer in time; check that the database server is up and reachable"),
)


def _store_failure(exc: BaseException, store: str | None) -> CommandFailure:
    root = getattr(exc, "orig", None) or exc
    reason = _reason(root)
    fix = next(
        (text for words, text in _STORE_FIXES if words in reason.lower()),
        "failed; check the URL and that the database is up",
    )
    where = f"the store {hide_password(store)}" if store else "the outcome store"
    return CommandFailure(f"{where} {fix} ({reason})", EXIT_STORE)


def hide_password(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages)."""
    return re.sub(r"(://[^:/@\s]+):\S*@", r"\1:***@", str(url))  # to the last @: a password may hold one


def _reason(exc: BaseException) -> str:
    """The first line of an exception's message, without SQLAlchemy's "(Background on this error...)"."""
    text = str(exc).split("(Background on this error")[0]
    return _one_line(text) or type(exc).__name__


def _one_line(text: str) -> str:
    return " ".join(text.split())[:400]


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def check_port(host: str, port: int) -> None:
    """Fail with one line if ``host:port`` cannot be bound (taken, not an address of this machine, privileged).

    Raises:
        CommandFailure: ``EXIT_PORT`` or ``EXIT_PERMISSION``.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CommandFailure(
            f"cannot serve on {host}: {exc.strerror}; pass --host 127.0.0.1 or 0.0.0.0", EXIT_PORT
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(address)
        except PermissionError:
            raise CommandFailure(
                f"port {port} needs privileges this user lacks; pass --port 1024 or higher", EXIT_PERMISSION
            ) from None
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CommandFailure(
                    f"port {port} on {host} is already in use; stop the other server or pass another --port",
                    EXIT_PORT,
                ) from None
            raise CommandFailure(
                f"cannot serve on {host}:{port} ({exc.strerror}); pass --host 127.0.0.1 or 0.0.0.0", EXIT_PORT
            ) from None


def check_numbers(args: argparse.Namespace, rules: Mapping[str, tuple[float, float, str]]) -> None:
    """Check numeric flags: ``rules`` maps an argument's dest to (lowest, highest, unit); ``None`` values pass.

    Raises:
        CommandFailure: ``EXIT_USAGE``, naming the flag, its range and the value (NaN and inf are refused).
    """
    for dest, (low, high, unit) in rules.items():
        value = getattr(args, dest, None)
        if value is None or (low <= value <= high and math.isfinite(value)):
            continue
        flag = "--" + dest.rstrip("_").replace("_", "-")
        if value < low:
            bound = f"at least {low:g}"
        elif value > high:
            bound = f"at most {high:g}"
        else:
            bound = f"a finite number from {low:g}"
        raise CommandFailure(f"{flag} must be {bound}{f' {unit}' if unit else ''}, got {value:g}", EXIT_USAGE)
