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
])
def test_bad_values_name_the_variable(env, name):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)
