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
])
def test_bad_values_name_the_variable(env, name):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)


def test_log_settings_and_redis_schemes_are_accepted():
    s = Settings.from_env({"LOG_LEVEL": "WARNING", "LOG_FORMAT": "json", "REDIS_URL": "rediss://u:p@h:6380/2"})
    assert (s.log_level, s.log_format, s.redis_url) == ("warning", "json", "rediss://u:p@h:6380/2")
    assert Settings.from_env({"REDIS_URL": "unix:///run/redis.sock"}).redis_url == "unix:///run/redis.sock"


def test_a_bad_redis_url_never_shows_its_password():
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"REDIS_URL": "http://user:hunter2@host"})
    assert "hunter2" not in str(err.value)
