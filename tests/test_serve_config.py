"""qgt serve's configuration (qgt.serve.config): the source design's config.toml keys and
QGT_SERVE_* variables, with the same strictness as qgt's run schema."""

from __future__ import annotations

import pytest

from qgt.config import load_config
from qgt.errors import ConfigError
from qgt.serve.config import load_serve_config


def test_source_design_keys_from_toml_env_and_flags(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[server]\nhost = "0.0.0.0"\nport = 9000\n[nats]\nurl = "nats://n:4222"\n'
                    '[redis]\nurl = "redis://r:6379/0"\n[worker]\nmax_concurrent_tasks = 4\n')
    cfg = load_serve_config(str(path), env={"QGT_SERVE_SERVER_PORT": "9100"},
                            overrides={"host": None, "worker_max_concurrent_tasks": 8})
    assert (cfg.host, cfg.port, cfg.nats_url, cfg.redis_url) == (
        "0.0.0.0", 9100, "nats://n:4222", "redis://r:6379/0")
    assert cfg.worker_max_concurrent_tasks == 8 and cfg.deployment


@pytest.mark.parametrize("text, message", [
    ('[worker]\nmax_concurent_tasks = 4\n', "did you mean 'worker.max_concurrent_tasks'"),
    ('[sever]\nport = 1\n', "did you mean 'server.port'"),
    ('[server]\nport = "eighty"\n', "server.port in"),
    ('[server\n', "not valid TOML"),
])
def test_bad_files_name_the_key(tmp_path, text, message):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_serve_config(str(path), env={})


def test_unknown_variable_names_the_nearest_and_run_settings_ignore_the_service():
    with pytest.raises(ConfigError, match="did you mean QGT_SERVE_REDIS_URL"):
        load_serve_config(env={"QGT_SERVE_REDIS_UR": "redis://x"})
    # a qgt run in the service's environment does not trip over QGT_SERVE_* variables
    assert load_config(env={"QGT_SERVE_NATS_URL": "nats://x", "QGT_THREADS": "2"}).threads == 2
