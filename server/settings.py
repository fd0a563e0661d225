"""Settings from the environment (DESIGN.md "Config"); one frozen object."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping, Optional


class SettingsError(ValueError):
    pass


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{name} must be > 0, got {value}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 3000
    redis_url: Optional[str] = None  # None: the embedded in-process store
    api_only: bool = False
    workflows_dir: Optional[str] = "workflows"
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    reap_interval_secs: float = 5.0
    max_body_bytes: int = 8 * 1024 * 1024
    retention_secs: int = 7 * 86_400
    namespace: str = "rota"
    log_max_chunks: int = 10_000
    max_wait_secs: float = 60.0
    keepalive_secs: float = 15.0
    log_level: str = "info"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        namespace = env.get("ROTA_NAMESPACE", "rota")
        if not namespace or any(c in namespace for c in "{}: "):
            raise SettingsError("ROTA_NAMESPACE must be non-empty without '{', '}', ':' or spaces")
        return cls(
            host=env.get("HOST", "127.0.0.1"),
            port=_int(env, "PORT", 3000),
            redis_url=env.get("REDIS_URL") or None,
            api_only=_flag(env, "API_ONLY"),
            workflows_dir=env.get("WORKFLOWS_DIR", "workflows") or None,
            cors_origins=tuple(o.strip() for o in env.get("CORS_ORIGINS", "").split(",") if o.strip()),
            reap_interval_secs=_float(env, "REAP_INTERVAL_SECS", 5.0),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", 8 * 1024 * 1024, minimum=1024),
            retention_secs=_int(env, "RETENTION_SECS", 7 * 86_400, minimum=1),
            namespace=namespace,
            log_max_chunks=_int(env, "LOG_MAX_CHUNKS", 10_000, minimum=10),
            keepalive_secs=_float(env, "SSE_KEEPALIVE_SECS", 15.0),
            log_level=env.get("LOG_LEVEL", "info").lower(),
        )
