"""Settings: sources and their precedence, validation errors that name the setting, masked secrets."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from labelflow.stream.config import Settings, SettingsError, load_settings, nest, parse_override
from labelflow.stream.kafka_io import build_consumer


def test_defaults_are_valid_and_name_the_standard_topics() -> None:
    s = load_settings()
    assert s.topics.documents == "labelflow.documents"
    assert s.topics.labels == "labelflow.labels"
    assert s.topics.predictions == "labelflow.predictions"
    assert s.topics.drift == "labelflow.drift"
    assert s.topics.deadletter == "labelflow.deadletter"
    assert s.model.learner == "partitioned" and s.model.embedder == "hashing"
    assert s.consumer.heartbeat_interval_ms < s.consumer.session_timeout_ms


def test_precedence_flags_over_environment_over_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "labelflow.yaml"
    config.write_text("group_id: from-yaml\nbatch:\n  size: 50\n  max_wait_ms: 10\ncheckpoint:\n  keep: 7\n")
    monkeypatch.setenv("LABELFLOW_GROUP_ID", "from-env")
    monkeypatch.setenv("LABELFLOW_BATCH__MAX_WAIT_MS", "20")
    s = load_settings(config, {"batch.max_wait_ms": 30})
    assert s.group_id == "from-env"  # environment beats the file
    assert s.batch.size == 50  # the file beats the default
    assert s.batch.max_wait_ms == 30  # a flag beats everything
    assert s.checkpoint.keep == 7


def test_brokers_accept_comma_list_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABELFLOW_BROKERS", "k1:9092, k2:9093")
    assert load_settings().brokers == ["k1:9092", "k2:9093"]
    monkeypatch.setenv("LABELFLOW_BROKERS", '["k3:1"]')
    assert load_settings().brokers == ["k3:1"]


def test_errors_name_every_bad_setting_and_its_variable() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(
            None, {"batch.size": 0, "brokers": "no-port", "topics.documents": "bad name", "bogus": 1}
        )
    message = str(info.value)
    assert "batch.size (LABELFLOW_BATCH__SIZE)" in message
    assert "brokers" in message and "host:port" in message
    assert "not a valid Kafka topic name" in message
    assert "bogus" in message


def test_environment_type_errors_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABELFLOW_BATCH__SIZE", "many")
    with pytest.raises(SettingsError, match="LABELFLOW_BATCH__SIZE"):
        load_settings()


def test_yaml_problems_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("batch: [unclosed\n")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(SettingsError, match="mapping"):
        load_settings(listing)
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml")


def test_input_and_output_topics_must_differ() -> None:
    with pytest.raises(SettingsError, match="input and as output"):
        load_settings(None, {"topics.predictions": "labelflow.documents"})
    with pytest.raises(SettingsError, match="input and as output"):
        load_settings(None, {"routing": [{"label": "a", "topic": "labelflow.labels"}]})


def test_routing_rules_need_one_selector_and_a_valid_pattern() -> None:
    with pytest.raises(SettingsError, match="exactly one"):
        load_settings(None, {"routing": [{"label": "a", "pattern": "b", "topic": "t"}]})
    with pytest.raises(SettingsError, match="regular expression"):
        load_settings(None, {"routing": [{"pattern": "(", "topic": "t"}]})
    s = load_settings(None, {"routing": [{"pattern": "^sci", "topic": "science"}]})
    assert s.routing[0].pattern == "^sci"


def test_security_is_checked_and_passed_to_kafka_python_with_secrets_masked_in_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(SettingsError, match="needs sasl_mechanism"):
        load_settings(None, {"security.protocol": "SASL_SSL"})
    with pytest.raises(SettingsError, match="sasl_username and sasl_password"):
        load_settings(None, {"security.protocol": "SASL_PLAINTEXT", "security.sasl_mechanism": "PLAIN"})
    s = load_settings(
        None,
        {
            "security.protocol": "SASL_PLAINTEXT",
            "security.sasl_mechanism": "SCRAM-SHA-256",
            "security.sasl_username": "svc",
            "security.sasl_password": "hunter2",
        },
    )
    kwargs = s.security.kafka_kwargs()
    assert kwargs == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "svc",
        "sasl_plain_password": "hunter2",
    }
    with caplog.at_level(logging.INFO):
        s.log_summary()
    assert "hunter2" not in caplog.text and "**********" in caplog.text and "SCRAM-SHA-256" in caplog.text


@pytest.mark.parametrize("mechanism", ["OAUTHBEARER", "GSSAPI"])
def test_sasl_mechanisms_the_runtime_cannot_configure_are_refused_at_start(mechanism: str) -> None:
    with pytest.raises(SettingsError, match=f"sasl_mechanism {mechanism} is not supported"):
        load_settings(None, {"security.protocol": "SASL_SSL", "security.sasl_mechanism": mechanism})


def test_ssl_files_must_exist(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="ssl_cafile"):
        load_settings(None, {"security.protocol": "SSL", "security.ssl_cafile": str(tmp_path / "none.pem")})
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    kwargs = load_settings(
        None, {"security.protocol": "SSL", "security.ssl_cafile": str(ca)}
    ).security.kafka_kwargs()
    assert kwargs["ssl_cafile"] == str(ca) and kwargs["security_protocol"] == "SSL"


def test_heartbeat_must_be_below_session_timeout() -> None:
    with pytest.raises(SettingsError, match="heartbeat_interval_ms"):
        load_settings(None, {"consumer.session_timeout_ms": 2000, "consumer.heartbeat_interval_ms": 3000})


def test_override_helpers() -> None:
    assert parse_override("routing=[]") == (["routing"], [])
    assert parse_override('model.learner_kwargs={"neighbours_k": 5}') == (
        ["model", "learner_kwargs"],
        {"neighbours_k": 5},
    )
    assert nest({"a.b": 1, "a.c": 2, "d": 3}) == {"a": {"b": 1, "c": 2}, "d": 3}
    with pytest.raises(SettingsError):
        parse_override("no-equals-sign")


def test_unrelated_labelflow_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABELFLOW_DATASETS", "/somewhere")
    assert isinstance(load_settings(), Settings)


def test_the_objective_setting_is_validated_and_given_to_the_learner() -> None:
    from labelflow.stream.model_runtime import ModelRuntime

    settings = Settings(model={"objective": "subset_accuracy", "learner_kwargs": {"neighbours_k": 5}})
    assert settings.model.learner_arguments() == {"neighbours_k": 5, "objective": "subset_accuracy"}
    runtime = ModelRuntime.from_settings(settings.model)
    assert runtime.model.decisions.objective == "subset_accuracy"
    assert Settings().model.learner_arguments() == {}  # the learner's own default
    with pytest.raises(ValueError, match="objective"):
        Settings(model={"objective": "accuracy"})


def test_consumers_hold_an_empty_fetch_for_fetch_max_wait_ms(settings_for: Callable[..., Settings]) -> None:
    # Kafka's 500 ms default held the worker's end-offset probe (queued behind the fetch on the same
    # connection) for up to 430 ms once a second on a backlog; the setting bounds it.
    s = settings_for("fetchwait")
    assert s.consumer.fetch_max_wait_ms == 100
    consumer = build_consumer(s)
    try:
        assert consumer.config["fetch_max_wait_ms"] == 100
    finally:
        consumer.close()
