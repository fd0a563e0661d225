"""Settings from the environment (DESIGN.md "Config"); one frozen object."""

from __future__ import annotations

import ipaddress
import math
import os
from dataclasses import dataclass, field, replace
from typing import Mapping, Optional
from urllib.parse import urlsplit

from .guessable import estimated_bits


class SettingsError(ValueError):
    pass


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0,
         maximum: Optional[int] = None) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name} must be <= {maximum}, got {value}")
    return value


# uvicorn's levels: rota's and uvicorn's lines share one level.
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
REDIS_SCHEMES = ("redis", "rediss", "unix")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (env.get(name) or default).strip().lower()
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {env.get(name)!r}")
    return value


def _redis_url(url: Optional[str]) -> Optional[str]:
    """Checked here, so a typo is one line at start, not a traceback on the
    first request. The message never repeats a password."""
    if url is None:
        return None
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.hostname or ''}" if parts.scheme else "(no scheme)"
    if parts.scheme not in REDIS_SCHEMES:
        raise SettingsError(f"REDIS_URL must be redis://, rediss:// or unix://..., got {shown}...")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise SettingsError(f"REDIS_URL has a port that is not a number ({shown}...)") from None
    if parts.scheme == "unix" and not parts.path:
        raise SettingsError("REDIS_URL unix:// needs a socket path, e.g. unix:///run/redis/redis.sock")
    if parts.scheme != "unix" and not parts.hostname:
        raise SettingsError(f"REDIS_URL needs a host, e.g. redis://localhost:6379/0 (got {shown})")
    return url


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise SettingsError(f"{name} must be a finite number > 0, got {raw!r}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# Host headers a loopback server answers when ALLOWED_HOSTS is unset: a web
# page that rebinds its own name to 127.0.0.1 still sends its own name.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
# Server processes on one port (`rota server --workers N`): each is a whole
# server with its own Redis connections, and the machines this runs on have
# a few cores, not hundreds.
MAX_SERVER_WORKERS = 64
# What each of them needs at least of MAX_CONNECTIONS (its minimum).
MIN_CONNECTIONS_PER_PROCESS = 16
# A token this short is guessable, or a placeholder someone forgot to fill.
MIN_ADMIN_TOKEN = 32
MAX_ADMIN_TOKEN = 256
# server/guessable.py's estimate: `openssl rand -hex 32` gives ~200 or more,
# and a placeholder such as changeme-changeme-... about 60.
MIN_ADMIN_TOKEN_BITS = 128


def _admin_token(env: Mapping[str, str]) -> Optional[str]:
    token = env.get("ROTA_ADMIN_TOKEN", "").strip()
    path = env.get("ROTA_ADMIN_TOKEN_FILE", "").strip()
    if token and path:
        raise SettingsError("set ROTA_ADMIN_TOKEN or ROTA_ADMIN_TOKEN_FILE, not both")
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as exc:
            raise SettingsError(f"ROTA_ADMIN_TOKEN_FILE: cannot read {path}: {exc.strerror}") from None
    return _strong(token, "the admin token") if token else None


def _strong(token: str, what: str) -> str:
    """A bearer secret set by hand (the admin token, METRICS_TOKEN), if hard enough to guess."""
    if len(token) < MIN_ADMIN_TOKEN or any(c.isspace() for c in token):
        raise SettingsError(f"{what} must be at least {MIN_ADMIN_TOKEN} characters without spaces"
                            " (e.g. `openssl rand -hex 32`)")
    if len(token) > MAX_ADMIN_TOKEN or not all(c.isascii() and c.isprintable() for c in token):
        raise SettingsError(f"{what} must be at most {MAX_ADMIN_TOKEN} printable ASCII characters"
                            " (e.g. `openssl rand -hex 32`)")
    bits = estimated_bits(token)
    if bits < MIN_ADMIN_TOKEN_BITS:
        raise SettingsError(
            f"{what} is too easy to guess: about {bits:.0f} bits estimated, at least"
            f" {MIN_ADMIN_TOKEN_BITS} needed (a repeated pattern, a run such as 0123 or abcd, or few kinds"
            " of character); generate one with `openssl rand -hex 32`")
    return token


def _metrics_token(env: Mapping[str, str], admin_token: Optional[str]) -> Optional[str]:
    token = env.get("METRICS_TOKEN", "").strip()
    if not token:
        return None
    if token == admin_token:
        raise SettingsError("METRICS_TOKEN must not be the admin token: it is written into a scraper's config")
    return _strong(token, "METRICS_TOKEN")


def _cors_origins(env: Mapping[str, str], auth: bool) -> tuple[str, ...]:
    origins = _list(env, "CORS_ORIGINS")
    if "*" in origins and not auth:
        # Any page the operator opens could read every log and, with no
        # token to ask for, run commands: the case Redis's protected mode is for.
        raise SettingsError("CORS_ORIGINS=* with auth off would let any web page you open call this server;"
                            " list the origins (e.g. https://ci.example.com), or turn auth on")
    return origins


def _auth(env: Mapping[str, str], admin_token: Optional[str], host: str) -> bool:
    raw = env.get("ROTA_AUTH", "").strip().lower()
    if raw not in ("", "on", "off"):
        raise SettingsError(f"ROTA_AUTH must be on or off, got {raw!r}")
    if raw == "off" and admin_token:
        raise SettingsError("ROTA_AUTH=off but an admin token is set: auth is on whenever there is one")
    enabled = raw == "on" or admin_token is not None
    if not enabled and raw != "off" and not is_loopback(host):
        # Redis's protected mode, for a server that runs shell on build machines.
        raise SettingsError(
            f"refusing to listen on HOST={host} without authentication: set ROTA_ADMIN_TOKEN"
            " (see docs/security.md), or ROTA_AUTH=off to accept that anyone who can reach the port"
            " can run commands on your workers")
    return enabled


def _server_workers(env: Mapping[str, str], max_connections: int) -> int:
    count = _int(env, "SERVER_WORKERS", 1, minimum=1, maximum=MAX_SERVER_WORKERS)
    if count == 1:
        return count
    if not env.get("REDIS_URL"):
        raise SettingsError("SERVER_WORKERS (--workers) above 1 needs REDIS_URL: the embedded store"
                            " lives inside one process, and the others would not see it")
    if max_connections // count < MIN_CONNECTIONS_PER_PROCESS:
        raise SettingsError(f"MAX_CONNECTIONS={max_connections} is the whole server's; shared by {count}"
                            f" processes it leaves each fewer than {MIN_CONNECTIONS_PER_PROCESS}")
    return count


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 3000
    redis_url: Optional[str] = None  # None: the embedded in-process store
    api_only: bool = False
    workflows_dir: Optional[str] = "workflows"
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    reap_interval_secs: float = 5.0
    # How often the scheduler looks for cron ticks due, delayed runs to
    # start and runs to expire (in every process that runs the reaper).
    schedule_interval_secs: float = 1.0
    max_body_bytes: int = 8 * 1024 * 1024
    retention_secs: int = 7 * 86_400
    namespace: str = "rota"
    log_max_chunks: int = 10_000
    # A job attempt's log, in bytes as stored (each chunk's JSON). Redis holds
    # logs in memory for RETENTION_SECS: 16 MiB is four times GitLab's
    # long-time default (4 MB), some 200,000 lines of 80 characters, and ten
    # attempts at the limit cost 160 MiB of Redis. Raise it toward GitLab's
    # 100 MB if your Redis has the room.
    log_max_bytes: int = 16 * 1024 * 1024
    # One chunk, as stored: rota's worker sends at most ~65 KiB per chunk, and
    # a job's own log entry (a message and its data, up to 64 Ki characters
    # each) fits unless it is mostly characters JSON escapes. Every page or
    # stream batch holds at least one whole chunk.
    log_max_chunk_bytes: int = 256 * 1024
    max_wait_secs: float = 60.0
    keepalive_secs: float = 15.0
    # A log or event stream whose client has not taken what was sent within
    # this long is dropped: a tail that stops reading must not hold a batch,
    # a socket buffer and a MAX_STREAMS slot forever.
    sse_write_timeout_secs: float = 30.0
    log_level: str = "info"
    log_format: str = "text"  # or json: one object per line, for log shippers
    auth: bool = False
    # ROTA_AUTH=off: auth off said in so many words, not for want of a token
    # (server/tokens.py's auth_off_refusal tells the two apart).
    auth_off_explicit: bool = False
    admin_token: Optional[str] = field(default=None, repr=False)
    # None: any Host header (a server on a public address cannot know its names).
    allowed_hosts: Optional[tuple[str, ...]] = LOOPBACK_HOSTS
    body_timeout_secs: float = 30.0
    # The request line and headers, from the connection's accept (or the
    # request's first byte): a socket that sends nothing holds its slot no longer.
    header_timeout_secs: float = 10.0
    max_connections: int = 4096
    # Connections not yet past auth from one address (an IPv6 /64): see server/slots.py.
    max_connections_per_address: int = 1024
    max_waiting_claims: int = 2048
    max_streams: int = 2048
    ssl_keyfile: Optional[str] = None
    ssl_certfile: Optional[str] = None
    redis_max_connections: int = 64
    redis_pool_timeout_secs: float = 20.0
    # How long a settled lease remembers its result, so a complete or fail
    # re-sent after a lost reply is answered as the first one was.
    result_replay_secs: int = 900
    # A job's outputs at complete, keys and values in UTF-8 bytes (GitHub's
    # figure): they travel to every dependent job.
    max_output_bytes: int = 1024 * 1024
    # What one API token (with auth off: everyone, as one) may hold at once:
    # worker ids until they are forgotten, one-off workflows until retention
    # purges them, idempotency keys for their 24 h.
    max_workers_per_token: int = 10_000
    max_oneoff_workflows_per_token: int = 10_000
    max_idempotency_keys_per_token: int = 100_000
    # Server processes sharing the port (SERVER_WORKERS, `--workers`).
    server_workers: int = 1
    # A bearer token good only for GET /metrics (a scraper's), and how often
    # each process adds what it counted to the fleet's (docs/metrics.md).
    metrics_token: Optional[str] = field(default=None, repr=False)
    metrics_flush_secs: float = 1.0

    def process_share(self) -> "Settings":
        """What one of `server_workers` processes enforces: MAX_CONNECTIONS
        and MAX_CONNECTIONS_PER_ADDRESS stay the whole server's, each process
        holding its share, so that what a stranger's sockets can hold does
        not grow with the number of processes."""
        n = self.server_workers
        if n == 1:
            return self
        return replace(self, max_connections=-(-self.max_connections // n),
                       max_connections_per_address=-(-self.max_connections_per_address // n))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        namespace = env.get("ROTA_NAMESPACE", "rota")
        if not namespace or any(c in namespace for c in "{}: "):
            raise SettingsError("ROTA_NAMESPACE must be non-empty without '{', '}', ':' or spaces")
        host = env.get("HOST", "127.0.0.1")
        admin_token = _admin_token(env)
        allowed_hosts = _list(env, "ALLOWED_HOSTS") or (LOOPBACK_HOSTS if is_loopback(host) else None)
        ssl_keyfile, ssl_certfile = env.get("SSL_KEYFILE") or None, env.get("SSL_CERTFILE") or None
        if (ssl_keyfile is None) != (ssl_certfile is None):
            raise SettingsError("TLS needs both SSL_KEYFILE and SSL_CERTFILE")
        for name, path in (("SSL_KEYFILE", ssl_keyfile), ("SSL_CERTFILE", ssl_certfile)):
            if path is not None and not os.access(path, os.R_OK):
                raise SettingsError(f"{name} {path!r} cannot be read")
        auth = _auth(env, admin_token, host)
        max_connections = _int(env, "MAX_CONNECTIONS", 4096, minimum=MIN_CONNECTIONS_PER_PROCESS)
        server_workers = _server_workers(env, max_connections)
        return cls(
            host=host,
            port=_int(env, "PORT", 3000),
            redis_url=_redis_url(env.get("REDIS_URL") or None),
            api_only=_flag(env, "API_ONLY"),
            workflows_dir=env.get("WORKFLOWS_DIR", "workflows") or None,
            cors_origins=_cors_origins(env, auth),
            reap_interval_secs=_float(env, "REAP_INTERVAL_SECS", 5.0),
            schedule_interval_secs=_float(env, "SCHEDULE_INTERVAL_SECS", 1.0),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", 8 * 1024 * 1024, minimum=1024),
            retention_secs=_int(env, "RETENTION_SECS", 7 * 86_400, minimum=1),
            namespace=namespace,
            log_max_chunks=_int(env, "LOG_MAX_CHUNKS", 10_000, minimum=10),
            log_max_bytes=_int(env, "LOG_MAX_BYTES", 16 * 1024 * 1024, minimum=64 * 1024),
            # rota's worker sends chunks of up to ~65 KiB: the minimum leaves room
            log_max_chunk_bytes=_int(env, "LOG_MAX_CHUNK_BYTES", 256 * 1024, minimum=128 * 1024),
            keepalive_secs=_float(env, "SSE_KEEPALIVE_SECS", 15.0),
            sse_write_timeout_secs=_float(env, "SSE_WRITE_TIMEOUT_SECS", 30.0),
            log_level=_choice(env, "LOG_LEVEL", "info", LOG_LEVELS),
            log_format=_choice(env, "LOG_FORMAT", "text", ("text", "json")),
            auth=auth,
            auth_off_explicit=env.get("ROTA_AUTH", "").strip().lower() == "off",
            admin_token=admin_token,
            allowed_hosts=None if allowed_hosts == ("*",) else allowed_hosts,
            body_timeout_secs=_float(env, "BODY_TIMEOUT_SECS", 30.0),
            header_timeout_secs=_float(env, "HEADER_TIMEOUT_SECS", 10.0),
            max_connections=max_connections,
            max_connections_per_address=_int(env, "MAX_CONNECTIONS_PER_ADDRESS", 1024, minimum=1),
            max_waiting_claims=_int(env, "MAX_WAITING_CLAIMS", 2048, minimum=1),
            max_streams=_int(env, "MAX_STREAMS", 2048, minimum=1),
            ssl_keyfile=ssl_keyfile,
            ssl_certfile=ssl_certfile,
            redis_max_connections=_int(env, "REDIS_MAX_CONNECTIONS", 64, minimum=4),
            redis_pool_timeout_secs=_float(env, "REDIS_POOL_TIMEOUT_SECS", 20.0),
            result_replay_secs=_int(env, "RESULT_REPLAY_SECS", 900, minimum=60),
            max_output_bytes=_int(env, "MAX_OUTPUT_BYTES", 1024 * 1024, minimum=1024),
            max_workers_per_token=_int(env, "MAX_WORKERS_PER_TOKEN", 10_000, minimum=1),
            max_oneoff_workflows_per_token=_int(env, "MAX_ONEOFF_WORKFLOWS_PER_TOKEN", 10_000, minimum=1),
            max_idempotency_keys_per_token=_int(env, "MAX_IDEMPOTENCY_KEYS_PER_TOKEN", 100_000, minimum=1),
            server_workers=server_workers,
            metrics_token=_metrics_token(env, admin_token),
            metrics_flush_secs=_float(env, "METRICS_FLUSH_SECS", 1.0),
        )
