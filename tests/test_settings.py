"""Settings from the environment: defaults, parsing, clear errors."""

from __future__ import annotations

import pytest

from server.settings import Settings, SettingsError


def test_defaults_match_the_design():
    s = Settings.from_env({})
    assert (s.host, s.port, s.redis_url, s.api_only) == ("127.0.0.1", 3000, None, False)
    assert (s.workflows_dir, s.reap_interval_secs, s.max_body_bytes) == ("workflows", 5.0, 8 * 1024 * 1024)
    assert s.retention_secs == 7 * 86_400 and s.cors_origins == ()


def test_values_are_parsed():
    s = Settings.from_env({"PORT": "8080", "REDIS_URL": "redis://r:6379/1", "API_ONLY": "1",
                           "CORS_ORIGINS": "https://a.example, https://b.example", "REAP_INTERVAL_SECS": "0.5",
                           "RETENTION_SECS": "60", "WORKFLOWS_DIR": ""})
    assert (s.port, s.redis_url, s.api_only, s.reap_interval_secs, s.retention_secs) == (
        8080, "redis://r:6379/1", True, 0.5, 60)
    assert s.cors_origins == ("https://a.example", "https://b.example") and s.workflows_dir is None


@pytest.mark.parametrize("env,name", [
    ({"PORT": "http"}, "PORT"),
    ({"REAP_INTERVAL_SECS": "0"}, "REAP_INTERVAL_SECS"),
    ({"MAX_BODY_BYTES": "10"}, "MAX_BODY_BYTES"),
    ({"ROTA_NAMESPACE": "a{b}"}, "ROTA_NAMESPACE"),
    ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL"),
    ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
    ({"REDIS_URL": "http://x"}, "REDIS_URL"),
    ({"REDIS_URL": "redis://host:port"}, "REDIS_URL"),
    ({"REDIS_URL": "redis://"}, "REDIS_URL"),
    ({"SSL_KEYFILE": "/nonexistent/key.pem", "SSL_CERTFILE": "/nonexistent/cert.pem"}, "SSL_KEYFILE"),
    ({"MAX_OUTPUT_BYTES": "-1"}, "MAX_OUTPUT_BYTES"),
    ({"LOG_MAX_BYTES": "1000"}, "LOG_MAX_BYTES"),
    ({"LOG_MAX_CHUNK_BYTES": "65536"}, "LOG_MAX_CHUNK_BYTES"),
    ({"SSE_WRITE_TIMEOUT_SECS": "0"}, "SSE_WRITE_TIMEOUT_SECS"),
    ({"METRICS_FLUSH_SECS": "inf"}, "METRICS_FLUSH_SECS"),
    ({"METRICS_FLUSH_SECS": "nan"}, "METRICS_FLUSH_SECS"),
    ({"REAP_INTERVAL_SECS": "Infinity"}, "REAP_INTERVAL_SECS"),
])
def test_bad_values_name_the_variable(env, name):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)


def test_job_logs_are_bounded_by_default_and_configurable():
    s = Settings.from_env({})
    assert (s.log_max_bytes, s.log_max_chunk_bytes, s.sse_write_timeout_secs) == (16 << 20, 256 << 10, 30.0)
    s = Settings.from_env({"LOG_MAX_BYTES": str(100 << 20), "LOG_MAX_CHUNK_BYTES": str(1 << 20),
                           "SSE_WRITE_TIMEOUT_SECS": "5"})
    assert (s.log_max_bytes, s.log_max_chunk_bytes, s.sse_write_timeout_secs) == (100 << 20, 1 << 20, 5.0)


def test_log_settings_and_redis_schemes_are_accepted():
    s = Settings.from_env({"LOG_LEVEL": "WARNING", "LOG_FORMAT": "json", "REDIS_URL": "rediss://u:p@h:6380/2"})
    assert (s.log_level, s.log_format, s.redis_url) == ("warning", "json", "rediss://u:p@h:6380/2")
    assert Settings.from_env({"REDIS_URL": "unix:///run/redis.sock"}).redis_url == "unix:///run/redis.sock"


def test_a_bad_redis_url_never_shows_its_password():
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"REDIS_URL": "http://user:hunter2@host"})
    assert "hunter2" not in str(err.value)


# ---- what may be shown, and what is refused (issue 14, item 10) ------------------------


@pytest.mark.parametrize("url,shown", [
    ("redis://user:s3cret@h:6380/2", "redis://h:6380/2"),
    # redis-py decodes query keys: this one authenticates, so it must never be shown
    ("redis://h/0?passw%6Frd=S3CRET&socket_timeout=5", "redis://h:6379/0"),
    ("redis://h?db=3&password=S3CRET", "redis://h:6379/3"),
    ("rediss://:S3CRET@[::1]:7000", "rediss://[::1]:7000/0"),
    ("unix://:S3CRET@/run/redis/redis.sock?db=2", "unix:///run/redis/redis.sock?db=2"),
])
def test_the_redis_address_shown_is_rebuilt_from_host_port_and_db(url, shown):
    from server.redis_conn import describe

    assert describe(Settings.from_env({"REDIS_URL": url})) == shown


def test_auth_off_is_explicit_only_when_said():
    assert Settings.from_env({}).auth_off_explicit is False
    assert Settings.from_env({"ROTA_AUTH": "off"}).auth_off_explicit is True
    assert Settings.from_env({"ROTA_AUTH": "on"}).auth_off_explicit is False


def test_cors_origins_star_is_refused_with_auth_off():
    with pytest.raises(SettingsError, match=r"CORS_ORIGINS=\*"):
        Settings.from_env({"CORS_ORIGINS": "*"})
    with pytest.raises(SettingsError, match=r"CORS_ORIGINS=\*"):
        Settings.from_env({"CORS_ORIGINS": "https://a.example,*", "ROTA_AUTH": "off"})
    # with auth on a page still needs a token, which a browser never sends by itself
    on = Settings.from_env({"CORS_ORIGINS": "*", "ROTA_ADMIN_TOKEN": "Xq7-fR2p9LmW4tYc8BnV0sKd3HgJ6aZe1Uo5"})
    assert on.cors_origins == ("*",)


@pytest.mark.parametrize("token", [
    "a" * 40,
    "changeme-changeme-changeme-changeme",
    "changeme-changeme-changeme-changem3",
    "0123456789abcdef0123456789abcdef",
    "abcdefghijklmnopqrstuvwxyz0123456789",
    "passwordpasswordpasswordpassword1",
])
def test_a_guessable_admin_token_is_refused(token):
    with pytest.raises(SettingsError, match="admin token .* guess") as err:
        Settings.from_env({"ROTA_ADMIN_TOKEN": token})
    assert token not in str(err.value)


def test_random_admin_tokens_are_accepted():
    import secrets

    from tests.conftest import ADMIN_TOKEN

    for _ in range(300):
        for token in (secrets.token_hex(32), secrets.token_urlsafe(32), secrets.token_urlsafe(24)):
            assert Settings.from_env({"ROTA_ADMIN_TOKEN": token}).admin_token == token
    assert Settings.from_env({"ROTA_ADMIN_TOKEN": ADMIN_TOKEN}).auth is True


def test_front_door_settings():
    s = Settings.from_env({})
    assert (s.header_timeout_secs, s.max_connections_per_address) == (10.0, 1024)
    s = Settings.from_env({"HEADER_TIMEOUT_SECS": "2.5", "MAX_CONNECTIONS_PER_ADDRESS": "16"})
    assert (s.header_timeout_secs, s.max_connections_per_address) == (2.5, 16)
    with pytest.raises(SettingsError, match="MAX_CONNECTIONS_PER_ADDRESS"):
        Settings.from_env({"MAX_CONNECTIONS_PER_ADDRESS": "0"})


def test_server_workers_share_the_connection_limits():
    """`--workers N`: MAX_CONNECTIONS and MAX_CONNECTIONS_PER_ADDRESS stay
    the whole server's, each process enforcing its share (rounded up)."""
    one = Settings.from_env({})
    assert one.server_workers == 1 and one.process_share() is one
    s = Settings.from_env({"REDIS_URL": "redis://r", "SERVER_WORKERS": "3", "MAX_CONNECTIONS": "4096",
                           "MAX_CONNECTIONS_PER_ADDRESS": "10"})
    share = s.process_share()
    assert (share.max_connections, share.max_connections_per_address) == (1366, 4)
    # what is not a connection bound stays each process's
    assert (share.max_waiting_claims, share.redis_max_connections) == (s.max_waiting_claims, s.redis_max_connections)


@pytest.mark.parametrize("env,message", [
    ({"SERVER_WORKERS": "2"}, "needs REDIS_URL"),
    ({"SERVER_WORKERS": "0", "REDIS_URL": "redis://r"}, "SERVER_WORKERS must be >= 1"),
    ({"SERVER_WORKERS": "65", "REDIS_URL": "redis://r"}, "SERVER_WORKERS must be <= 64"),
    ({"SERVER_WORKERS": "two", "REDIS_URL": "redis://r"}, "SERVER_WORKERS must be an integer"),
    ({"SERVER_WORKERS": "4", "REDIS_URL": "redis://r", "MAX_CONNECTIONS": "32"}, "MAX_CONNECTIONS=32"),
])
def test_bad_server_workers_are_refused_by_name(env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)
