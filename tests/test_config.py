"""Tests of the configuration schema (qgt.config) and of size/duration parsing (qgt.units).

What a user checks: the shipped config files load, a setting given in several places
takes the documented winner, a typo names the key meant, a bad value names the key, the
value and where it came from, and docs/config.md lists exactly the keys the code reads.
Every test passes its own ``env`` so that the shell's QGT_* variables do not leak in.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from qgt.config import (
    DOCS_BEGIN,
    DOCS_END,
    SCHEMA,
    Config,
    config_sources,
    default_document,
    load_config,
    render_markdown_table,
)
from qgt.errors import ConfigError, UserError
from qgt.units import format_duration, format_size, parse_duration, parse_size

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.json"))
GiB = 1 << 30
MiB = 1 << 20


def write(tmp_path: Path, data: object, name: str = "x.json") -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


# ----------------------------------------------------------------- shipped files


def test_defaults_are_documented_values():
    cfg = Config()
    assert cfg.block_qubits == 16 and cfg.page_qubits == 4 and cfg.fusion_max_qubits == 4
    assert cfg.ssd_page_size == 16 * MiB and cfg.exchange_chunk == 16 * MiB
    assert cfg.memory_limit == "auto" and cfg.seed is None and cfg.checkpoint_interval == 0
    assert load_config(env={}) == cfg


def test_default_json_is_exactly_the_defaults():
    path = ROOT / "configs" / "default.json"
    assert json.loads(path.read_text()) == default_document()
    assert set(json.loads(path.read_text())) == set(SCHEMA)
    assert load_config(str(path), env={}) == Config()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    cfg = load_config(str(path), env={})
    json.dumps(cfg.to_dict())  # what a checkpoint stores must be JSON


def test_shipped_configs_say_what_they_are_for():
    small = load_config(str(ROOT / "configs" / "small-pages.json"), env={})
    assert small.block_qubits == 4 and small.ssd_page_size == 4096
    ooc = load_config(str(ROOT / "configs" / "out-of-core.json"), env={})
    assert ooc.memory_limit == 4 * GiB
    ckpt = load_config(str(ROOT / "configs" / "checkpointed.json"), env={})
    assert ckpt.checkpoint_dir and ckpt.checkpoint_interval == 3600 and ckpt.resume


def test_config_dir_holds_the_four_documented_files():
    names = {p.name for p in CONFIGS}
    assert {"default.json", "small-pages.json", "out-of-core.json", "checkpointed.json"} <= names


# ----------------------------------------------------------------- precedence


def test_precedence_file_then_env_then_overrides(tmp_path):
    path = write(tmp_path, {"threads": 2, "shots": 10, "block_qubits": 12})
    env = {"QGT_THREADS": "3", "QGT_SHOTS": "20"}
    cfg, sources = config_sources(path, env=env, overrides={"threads": 4})
    assert (cfg.threads, cfg.shots, cfg.block_qubits, cfg.page_qubits) == (4, 20, 12, 4)
    assert sources["threads"] == "the command line"
    assert sources["shots"] == "env QGT_SHOTS"
    assert sources["block_qubits"] == f"file {path}"
    assert sources["page_qubits"] == "default"
    assert "the command line" in cfg.describe(sources)


def test_qgt_config_names_the_file_and_an_explicit_path_wins(tmp_path):
    a = write(tmp_path, {"shots": 1}, "a.json")
    b = write(tmp_path, {"shots": 2}, "b.json")
    assert load_config(env={"QGT_CONFIG": a}).shots == 1
    assert load_config(b, env={"QGT_CONFIG": a}).shots == 2
    assert load_config(env={"QGT_CONFIG": ""}) == Config()


def test_text_overrides_are_parsed_like_env(tmp_path):
    cfg = load_config(env={}, overrides={"fusion": "off", "memory_limit": "2G", "seed": "7"})
    assert cfg.fusion is False and cfg.memory_limit == 2 * GiB and cfg.seed == 7


def test_comment_member_is_ignored(tmp_path):
    path = write(tmp_path, {"$comment": "why these values", "shots": 5})
    assert load_config(path, env={}).shots == 5


# ----------------------------------------------------------------- unknown keys


def test_misspelt_file_key_names_the_nearest(tmp_path):
    path = write(tmp_path, {"memroy_limit": "4GiB"})
    with pytest.raises(ConfigError) as e:
        load_config(path, env={})
    assert str(e.value) == (
        f"unknown configuration key 'memroy_limit' in {path}; did you mean 'memory_limit'?"
    )


def test_misspelt_env_variable_names_the_nearest():
    with pytest.raises(ConfigError, match=r"QGT_MEMROY_LIMIT.*did you mean QGT_MEMORY_LIMIT\?"):
        load_config(env={"QGT_MEMROY_LIMIT": "4GiB"})


def test_misspelt_override_names_the_nearest():
    with pytest.raises(
        ConfigError, match=r"'prefech_depth' from the command line.*'prefetch_depth'"
    ):
        load_config(env={}, overrides={"prefech_depth": 8})


def test_unrelated_unknown_key_points_to_the_docs(tmp_path):
    path = write(tmp_path, {"colour": "blue"})
    with pytest.raises(ConfigError, match=r"'colour'.*docs/config.md"):
        load_config(path, env={})


def test_non_qgt_variables_are_ignored():
    assert load_config(env={"HOME": "/root", "OMP_NUM_THREADS": "3"}) == Config()


# ----------------------------------------------------------------- bad values


@pytest.mark.parametrize(
    "key, text, allowed",
    [
        ("threads", "-1", "an integer >= 0"),
        ("threads", "four", "an integer >= 0"),
        ("block_qubits", "40", "from 4 to 30"),
        ("page_qubits", "31", "from 0 to 30"),
        ("fusion_max_qubits", "7", "from 1 to 6"),
        ("fusion", "maybe", "true or false"),
        ("ssd_page_size", "12KiB", "a power of two"),
        ("ssd_page_size", "128", ">= 256"),
        ("exchange_chunk", "4100", "a multiple of 16 bytes"),
        ("memory_limit", "lots", '"auto"'),
        ("memory_limit", "4GB", "binary units"),
        ("binding", "nuam", "one of none, core, socket, numa"),
        ("log_level", "verbose", "one of error, warning, info, debug"),
        ("checkpoint_interval", "soon", "a duration"),
        ("checkpoint_keep", "0", "an integer >= 1"),
        ("prefetch_depth", "0", "from 1 to 8"),
        ("seed", "-5", "or null"),
    ],
)
def test_bad_env_value_names_key_value_source_and_allowed(key, text, allowed):
    var = SCHEMA[key].env
    with pytest.raises(ConfigError) as e:
        load_config(env={var: text})
    msg = str(e.value)
    assert f"'{key}'" in msg and repr(text) in msg and f"environment variable {var}" in msg
    assert allowed in msg


@pytest.mark.parametrize(
    "key, value",
    [("threads", "4"), ("threads", True), ("threads", 2.0), ("fusion", "yes"), ("fusion", 1),
     ("binding", 3), ("scratch_dir", None), ("memory_limit", -1), ("seed", 1.5)],
)  # fmt: skip
def test_file_values_must_have_their_json_type(tmp_path, key, value):
    path = write(tmp_path, {key: value})
    with pytest.raises(ConfigError, match=rf"'{key}' in {path}: .*allowed: "):
        load_config(path, env={})


def test_choice_typo_suggests_the_choice():
    with pytest.raises(ConfigError, match="did you mean 'numa'"):
        load_config(env={}, overrides={"binding": "nuam"})


def test_page_qubits_must_fit_in_the_block(tmp_path):
    path = write(tmp_path, {"block_qubits": 6})
    with pytest.raises(ConfigError) as e:
        load_config(path, env={"QGT_PAGE_QUBITS": "8"})
    msg = str(e.value)
    assert "page_qubits=8 (from environment variable QGT_PAGE_QUBITS)" in msg
    assert f"block_qubits=6 (in {path})" in msg


def test_checkpoint_trigger_without_directory_is_an_error():
    with pytest.raises(ConfigError, match=r"checkpoint_interval=1h.*checkpoint_dir is empty"):
        load_config(env={"QGT_CHECKPOINT_INTERVAL": "1h"})
    cfg = load_config(env={"QGT_CHECKPOINT_INTERVAL": "1h", "QGT_CHECKPOINT_DIR": "ck"})
    assert cfg.checkpoint_interval == 3600


def test_config_errors_are_user_errors():
    with pytest.raises(UserError):
        load_config(env={"QGT_THREADS": "x"})


def test_unreadable_or_malformed_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_config(str(tmp_path / "missing.json"), env={})
    with pytest.raises(ConfigError, match=r"not valid JSON.*line 1"):
        load_config(write(tmp_path, '{"threads": 4,}'), env={})
    with pytest.raises(ConfigError, match="must hold a JSON object"):
        load_config(write(tmp_path, [1, 2]), env={})


# ----------------------------------------------------------------- env text forms, aliases


@pytest.mark.parametrize("text", ["1", "true", "YES", "On", " true "])
def test_env_true_forms(text):
    assert load_config(env={"QGT_PROGRESS": text}).progress is True


@pytest.mark.parametrize("text", ["0", "false", "No", "OFF"])
def test_env_false_forms(text):
    assert load_config(env={"QGT_FUSION": text}).fusion is False


@pytest.mark.parametrize("text", ["", "null", "None"])
def test_env_seed_null(text):
    assert load_config(env={"QGT_SEED": text}).seed is None


def test_env_choices_ignore_case():
    assert load_config(env={"QGT_LOG_LEVEL": "DEBUG"}).log_level == "debug"


def test_aliases_set_their_key():
    env = {"QGT_MPI_BINDING_STRATEGY": "numa", "QGT_MPI_USE_HUGE_PAGES": "1"}
    cfg, sources = config_sources(env=env)
    assert cfg.binding == "numa" and cfg.huge_pages is True
    assert sources["binding"] == "env QGT_MPI_BINDING_STRATEGY"


def test_alias_and_key_must_agree():
    same = {"QGT_BINDING": "core", "QGT_MPI_BINDING_STRATEGY": "CORE"}
    assert load_config(env=same).binding == "core"
    with pytest.raises(ConfigError, match=r"QGT_BINDING.*QGT_MPI_BINDING_STRATEGY.*unset one"):
        load_config(env={"QGT_BINDING": "core", "QGT_MPI_BINDING_STRATEGY": "numa"})


# ----------------------------------------------------------------- the Config object


def test_direct_construction_validates_and_normalises():
    with pytest.raises(ConfigError, match="'threads'"):
        Config(threads=-1)
    with pytest.raises(ConfigError, match="page_qubits"):
        dataclasses.replace(Config(), page_qubits=20)
    assert Config(binding="NUMA").binding == "numa"
    assert Config(memory_limit="1GiB").memory_limit == GiB


def test_to_dict_round_trips_through_json():
    cfg = load_config(env={}, overrides={"memory_limit": "3GiB", "seed": 9, "shots": 100})
    assert set(cfg.to_dict()) == set(SCHEMA)
    assert Config.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert load_config(env={}, overrides=cfg.to_dict()) == cfg


def test_config_is_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().threads = 3  # type: ignore[misc]


# ----------------------------------------------------------------- docs match code


def test_docs_list_every_key_and_env_var():
    doc = (ROOT / "docs" / "config.md").read_text()
    for key in SCHEMA.values():
        assert f"`{key.name}`" in doc and f"`{key.env}`" in doc
    assert "QGT_MPI_BINDING_STRATEGY" in doc and "QGT_MPI_USE_HUGE_PAGES" in doc


def test_docs_table_is_generated_from_the_schema():
    doc = (ROOT / "docs" / "config.md").read_text()
    section = doc.split(DOCS_BEGIN, 1)[1].split(DOCS_END, 1)[0]
    assert section.strip() == render_markdown_table().strip(), (
        "docs/config.md is stale: run python -m qgt.config --write-docs docs/config.md"
    )


# ----------------------------------------------------------------- units


@pytest.mark.parametrize(
    "text, nbytes",
    [("4096", 4096), (4096, 4096), ("4KiB", 4096), ("4K", 4096), ("4k", 4096),
     ("512MiB", 512 * MiB), ("16M", 16 * MiB), ("4GiB", 4 * GiB), ("4G", 4 * GiB),
     ("4 GiB", 4 * GiB), ("4Gi", 4 * GiB), ("1.5GiB", 3 * GiB // 2), ("2TiB", 2 << 40),
     ("100B", 100), ("0", 0)],
)  # fmt: skip
def test_parse_size(text, nbytes):
    assert parse_size(text) == nbytes


@pytest.mark.parametrize(
    "text, reason",
    [("4GB", "ambiguous"), ("1.3KiB", "whole number"), ("-1", "not a size"),
     ("four", "not a size"), ("4 XB", "not a size"), (-3, "negative"),
     (True, "not a size"), ("iB", "not a size")],
)  # fmt: skip
def test_parse_size_rejects(text, reason):
    with pytest.raises(ConfigError, match=reason):
        parse_size(text)


def test_format_size_round_trips():
    for n in (0, 1, 4096, 4097, 16 * MiB, 3 * GiB // 2, 4 * GiB, 1 << 50):
        assert parse_size(format_size(n)) == n
    assert format_size(16 * MiB) == "16MiB" and format_size(3 * GiB // 2) == "1536MiB"


@pytest.mark.parametrize(
    "text, seconds",
    [("0", 0), (0, 0), (90, 90), ("90", 90), ("90s", 90), ("5m", 300), ("1h", 3600),
     ("2d", 172800), ("1h30m", 5400), ("1h 30m 15s", 5415), ("0.5h", 1800), ("1.5", 1.5),
     ("5M", 300)],
)  # fmt: skip
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "5 minutes", "1h30", "1h1h", "-5s", "-1", "", True,
                                  float("inf"), float("nan")])  # fmt: skip
def test_parse_duration_rejects(text):
    with pytest.raises(ConfigError, match="not a duration"):
        parse_duration(text)


def test_format_duration_round_trips():
    for s in (0, 1, 59, 90, 3600, 5400, 86400 + 61, 0.25):
        assert parse_duration(format_duration(s)) == s
    assert format_duration(5400) == "1h30m" and format_duration(0) == "0"
