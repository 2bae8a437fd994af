"""Worker settings: one typed model, read from defaults < YAML file < ``LABELFLOW_*`` environment < CLI flags.

Every number that shapes the runtime lives here with a comment saying why it has its default. Nested
settings use ``__`` in environment variables (``LABELFLOW_BATCH__SIZE=200``,
``LABELFLOW_TOPICS__DOCUMENTS=my.docs``); lists and maps are JSON (``LABELFLOW_ROUTING='[...]'``), except
``LABELFLOW_BROKERS``, which also accepts ``host1:9092,host2:9092``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from labelflow.operators.learners.decision_experts import Objective
from labelflow.stream.messages import DecodeLimits, ExtraFields

logger = logging.getLogger(__name__)

ENV_PREFIX = "LABELFLOW_"
ENV_NESTED_DELIMITER = "__"


class SettingsError(ValueError):
    """The settings are invalid; the message names every offending setting and how to set it."""


class _Section(BaseModel):
    # A typo in a YAML key or a nested environment variable must fail loudly, not be ignored.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TopicSettings(_Section):
    """Kafka topic names and the partition count used when labelflow creates them."""

    # The names ARCHITECTURE.md documents, under one prefix so a shared cluster shows what is ours.
    documents: str = "labelflow.documents"
    labels: str = "labelflow.labels"
    predictions: str = "labelflow.predictions"
    drift: str = "labelflow.drift"
    deadletter: str = "labelflow.deadletter"
    # Only the `embed` role writes here: documents with their pre-computed features, for learn workers.
    embedded: str = "labelflow.embedded"
    # 3 partitions let up to 3 workers share a stream while keeping per-partition order; the documents
    # and labels topics must have the same count so feedback lands on the worker that saw its document.
    partitions: int = Field(default=3, ge=1)

    @field_validator("documents", "labels", "predictions", "drift", "deadletter", "embedded")
    @classmethod
    def _valid_topic_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", value):
            raise ValueError(f"{value!r} is not a valid Kafka topic name (letters, digits, '.', '_', '-')")
        return value


class SecuritySettings(_Section):
    """Connection security, passed through to kafka-python's producer, consumer and admin client."""

    # Plaintext is what a local or embedded broker speaks; production clusters set SSL or SASL_SSL.
    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    # Credentials and certificates have no defaults: they must come from the deployment.
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_password: SecretStr | None = None
    # Hostname verification stays on unless a deployment explicitly opts out (self-signed test clusters).
    ssl_check_hostname: bool = True

    @field_validator("sasl_mechanism", mode="before")
    @classmethod
    def _supported_mechanism(cls, value: Any) -> Any:
        # kafka-python knows these two, but they need a token provider or Kerberos options the worker
        # does not pass: refuse them at start rather than fail on the first connection.
        if isinstance(value, str) and value.upper() in ("OAUTHBEARER", "GSSAPI"):
            raise ValueError(
                f"sasl_mechanism {value} is not supported by labelflow yet (no token provider or "
                "Kerberos options are passed to the client); use SCRAM-SHA-512, or SSL with a client "
                "certificate (ssl_certfile, ssl_keyfile)"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SecuritySettings:
        if self.protocol.startswith("SASL"):
            if self.sasl_mechanism is None:
                raise ValueError(f"protocol {self.protocol} needs sasl_mechanism")
            if self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and (
                not self.sasl_username or self.sasl_password is None
            ):
                raise ValueError(
                    f"sasl_mechanism {self.sasl_mechanism} needs sasl_username and sasl_password"
                )
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name} {str(path)!r} is not a readable file")
        return self

    def secret_values(self) -> list[str]:
        """The secret values themselves, for redacting them from logs."""
        return [s.get_secret_value() for s in (self.sasl_password, self.ssl_password) if s is not None]

    def kafka_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients (secrets revealed here and only here)."""
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        if self.protocol.startswith("SASL"):
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            if self.sasl_username is not None:
                kwargs["sasl_plain_username"] = self.sasl_username
            if self.sasl_password is not None:
                kwargs["sasl_plain_password"] = self.sasl_password.get_secret_value()
        if self.protocol.endswith("SSL"):
            kwargs["ssl_check_hostname"] = self.ssl_check_hostname
            for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                if getattr(self, name) is not None:
                    kwargs[name] = str(getattr(self, name))
            if self.ssl_password is not None:
                kwargs["ssl_password"] = self.ssl_password.get_secret_value()
        return kwargs


class ConsumerSettings(_Section):
    """Consumer-group timing and where a group with no committed offset starts."""

    # A worker that dies is replaced after this long; 10 s is Kafka's default and tolerates GC pauses.
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    # A third of the session timeout, Kafka's rule of thumb: two missed heartbeats are tolerated.
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    # The longest a batch may take between polls before the group evicts the worker; 5 minutes covers a
    # batch of large documents on a slow embedder by a wide margin (heartbeats run in their own thread).
    max_poll_interval_ms: int = Field(default=300_000, ge=1_000)
    # A new group reads the topic from its start: a fresh model should learn from every labelled document.
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    # How long the broker holds a fetch that finds no new records. Requests to the same broker queue
    # behind it on the connection, among them the worker's once-a-second end-offset probe, which stops
    # the loop until answered: at Kafka's 500 ms the probe stalled a worker with a backlog (partitions
    # drained unevenly) for up to 430 ms, 0.6 s of every 2 s; at 100 ms the stalls sum to a tenth of
    # that (measured on the embedded broker), and an idle worker sends 10 fetches a second.
    fetch_max_wait_ms: int = Field(default=100, ge=0, le=60_000)

    @model_validator(mode="after")
    def _heartbeat_below_session(self) -> ConsumerSettings:
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError(
                f"heartbeat_interval_ms ({self.heartbeat_interval_ms}) must be below "
                f"session_timeout_ms ({self.session_timeout_ms})"
            )
        return self


class BatchSettings(_Section):
    """Micro-batches: a batch closes when it holds ``size`` records or ``max_wait_ms`` after its first."""

    # 500 records amortize the embedder's and the producer's per-call cost (measured: throughput flattens
    # above a few hundred) while a batch of hashing features still takes well under a second.
    size: int = Field(default=500, ge=1, le=100_000)
    # 200 ms bounds the latency a quiet stream adds waiting for a batch to fill.
    max_wait_ms: int = Field(default=200, ge=0, le=60_000)
    # Records are processed in timestamp order across partitions; a partition known to hold records not
    # fetched yet is waited for up to this long (a fetch round trip takes far less). Only a backlog makes
    # the worker wait: a partition that is caught up is never waited for.
    order_wait_ms: int = Field(default=2_000, ge=0, le=60_000)


class ModelSettings(_Section):
    """Which learner and embedder the worker builds (names from the operator registries)."""

    # The default learner of ARCHITECTURE.md: per-cluster learners over an online label partition.
    learner: str = "partitioned"
    # The learner's and embedder's own defaults (documented with each operator) unless overridden.
    learner_kwargs: dict[str, Any] = Field(default_factory=dict)
    # The metric the published label sets should maximize (micro_f1, macro_f1, subset_accuracy,
    # example_f1), given to the learner as its `objective` keyword; None keeps the learner's default
    # (micro_f1 for the default learner: benchmarks/robustness/RESULTS.md).
    objective: Objective | None = None
    # Hashing features need no model download and run at thousands of documents per second on a CPU.
    embedder: str = "hashing"
    embedder_kwargs: dict[str, Any] = Field(default_factory=dict)
    # The 20 best labels' scores (the decided labels are in `labels`): a prediction stays small whatever
    # the label space (every score was 139 KB a prediction at 3,800 labels). At most 1,000; None (every
    # label's score) only for small label spaces.
    score_top_k: int | None = Field(default=20, ge=1, le=1000)
    # Scores below this are left out of a prediction; 0 keeps them all (small label spaces).
    score_floor: float = Field(default=0.0, ge=0.0, le=1.0)
    # The label budget: a labelled document whose new labels would pass it is dead-lettered (reason
    # label_budget) and the model is unchanged. The label tree holds a million labels in about 2 GB
    # (benchmarks/scale/RESULTS.md); None removes the bound.
    max_labels: int | None = Field(default=1_000_000, ge=1)
    # The model's input dimension: dense `features` lists have exactly this many values, sparse maps'
    # indices are below it, and texts are refused where the embedder makes another dimension. None: the
    # embedder's dimension. A numeric stream sets it to its features' length.
    feature_dim: int | None = Field(default=None, ge=1)
    # Before reading, a throwaway model of the configured learner predicts and learns this many
    # synthetic documents, so the learner's compiled kernels are loaded (about 0.2-0.5 s at startup
    # for the default learner) before the worker says it is ready, not during its first batch; the
    # last kernel is first called after 512 documents. 0 skips it.
    warm_up_documents: int = Field(default=600, ge=0, le=100_000)

    def learner_arguments(self) -> dict[str, Any]:
        """The learner's keyword arguments: ``learner_kwargs`` plus the objective when one is set."""
        extra = {} if self.objective is None else {"objective": self.objective}
        return {**self.learner_kwargs, **extra}


class CheckpointSettings(_Section):
    """Where and how often the worker writes model state and offsets together."""

    # Under the git-ignored `.labelflow/` of the working directory; deployments mount a volume here.
    dir: Path = Path(".labelflow/checkpoints")
    # A minute bounds the work replayed after a crash to a minute of stream for one state write a minute.
    interval_s: float = Field(default=60.0, gt=0)
    # Three checkpoints survive one that turns out unreadable (disk fault) with room to spare.
    keep: int = Field(default=3, ge=1)
    # When checkpoints exist but none can be read (damaged, or written by another model setup), the
    # worker refuses to start: silently starting over would lose the learned model and, once new
    # checkpoints were written, the evidence. "new_model" starts a new model anyway (the unreadable
    # checkpoints stay on disk; they are never pruned). Flag: `labelflow run --start-new-model`.
    on_unreadable: Literal["refuse", "new_model"] = "refuse"


class HealthSettings(_Section):
    """When the worker says it is unhealthy, and how long it may take to stop."""

    # Readiness (labelflow_worker_ready) turns 0 after the broker has not answered for this long: a
    # broker restart or a leader election takes seconds, so 15 s flags a real outage, not a blip.
    unready_after_s: float = Field(default=15.0, gt=0)
    # Liveness (labelflow_worker_up) turns 0 after this long without a broker answer; a restart by the
    # orchestrator then gets fresh connections (the worker also recovers by itself when the broker returns).
    down_after_s: float = Field(default=120.0, gt=0)
    # SIGTERM to exit: finish the batch, checkpoint, then commit and leave the group as far as the broker
    # lets us in the time left. 30 s is Kubernetes' default grace period; give the pod a longer
    # terminationGracePeriodSeconds than this.
    shutdown_timeout_s: float = Field(default=30.0, gt=0, le=3_600)

    @model_validator(mode="after")
    def _down_after_unready(self) -> HealthSettings:
        if self.down_after_s < self.unready_after_s:
            raise ValueError(
                f"down_after_s ({self.down_after_s}) must not be below unready_after_s ({self.unready_after_s})"
            )
        return self


class MetricsSettings(_Section):
    """The Prometheus endpoint and the window of the quality gauges."""

    # prometheus_client's customary port; 0 picks a free one (tests), -1 disables the endpoint.
    port: int = Field(default=8000, ge=-1, le=65535)
    # Loopback only unless a deployment opens it: the endpoint has no authentication and shows what the
    # worker reads. deploy/ (Compose, Kubernetes) sets 0.0.0.0 explicitly so Prometheus can scrape it.
    host: str = "127.0.0.1"
    # 1,000 labelled documents: windowed micro-F1 moves within minutes of a drift, yet is not noisy.
    quality_window: int = Field(default=1_000, ge=1)


class HttpSettings(_Section):
    """The HTTP API (``labelflow serve``): predictions from the live model, liveness and readiness."""

    # Off unless asked for (-1): `labelflow serve` turns it on at 8080; 0 picks a free port (tests).
    port: int = Field(default=-1, ge=-1, le=65535)
    # Loopback only unless a deployment opens it, as for the metrics endpoint: no authentication.
    host: str = "127.0.0.1"
    # One request embeds and predicts its documents while holding the model: 256 documents is tens of
    # milliseconds with the hashing embedder, so a batch request never stalls the stream for long.
    max_batch: int = Field(default=256, ge=1)
    # Request bodies are read whole and parsed before a document's own size is checked, at about 5x
    # their size in memory, in the worker's process: 16 MiB (~80 MB parsed) holds a batch of 256
    # documents of 64 KB. A body over it gets a 413 unread. A single document up to max_message_bytes
    # is always accepted (the bound is raised to fit it).
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1_024)


class FeedbackSettings(_Section):
    """The bounded store that joins delayed labels to the documents they belong to."""

    # 20,000 waiting documents (~30 MB of hashing features) cover feedback arriving within 20,000
    # documents of its document; older entries are evicted and their feedback counted as late.
    max_entries: int = Field(default=20_000, ge=1)
    # Feedback more than an hour after its document is stale for an online model; counted as late.
    ttl_s: float = Field(default=3_600.0, gt=0)
    # Ids remembered after learning, to count duplicate feedback and skip re-sent labelled documents.
    remember_ids: int = Field(default=100_000, ge=0)
    # The bound that matters for memory: waiting documents can be large (a 1 MB text's dense features,
    # long label lists), so entries are also counted in bytes. 256 MB holds the default 20,000 entries
    # of hashing features (~30 MB) many times over, and stops 20,000 large documents (~58 GB) well
    # before they exhaust a worker's memory; the oldest entries are evicted first and counted.
    max_bytes: int = Field(default=256 * 1024 * 1024, ge=1_024)


class LimitsSettings(_Section):
    """Structural limits on input messages: a message over one is dead-lettered with its reason."""

    # JSON nesting (the document object is level 1). `meta` is the only free-form field; 32 levels is
    # more than any metadata needs and far below the ~1,000 where Python's recursive parser fails.
    max_json_depth: int = Field(default=32, ge=2, le=500)
    # EuroVoc's longest concept name (EUR-Lex) is 117 characters; twice that leaves room for taxonomy
    # paths. Label names appear in every prediction's scores, so one huge name bloats every output.
    max_label_chars: int = Field(default=256, ge=1)
    # The largest label set in the shared datasets has 26 labels. Label statistics cost k^2 pair
    # updates for k labels, so 1,000 bounds one document's update at half a million pair counts.
    max_labels_per_document: int = Field(default=1_000, ge=1)


class ProducerSettings(_Section):
    """How the worker produces its outputs (predictions, drift alerts, dead letters)."""

    # Predictions repeat the same label names in every message: lz4 makes them 1.8x smaller for the
    # least CPU of the codecs (3.4 ms per 500 predictions; benchmarks/compression), and Java clients,
    # librdkafka and brokers since 0.10 read it. zstd: 2.9x for twice the CPU, where every consumer
    # supports it; gzip: for consumers without codec libraries (kafka-python without lz4).
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "lz4"


class RoutingRule(_Section):
    """Documents predicted positive for ``label`` (or any label matching ``pattern``) go to ``topic``."""

    label: str | None = None
    pattern: str | None = None
    topic: str

    @model_validator(mode="after")
    def _exactly_one_selector(self) -> RoutingRule:
        if (self.label is None) == (self.pattern is None):
            raise ValueError("a routing rule needs exactly one of 'label' or 'pattern'")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(
                    f"pattern {self.pattern!r} is not a valid regular expression: {exc}"
                ) from exc
        TopicSettings._valid_topic_name(self.topic)
        return self


Brokers = Annotated[list[str], NoDecode]

# The YAML mapping of the settings being loaded; a context variable so concurrent loads never mix. No
# default value (one dict would be shared by every context): readers pass a fresh empty one.
_yaml_values: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("labelflow_yaml")


class _YamlSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return _yaml_values.get({}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_yaml_values.get({}))


class Settings(BaseSettings):
    """Everything a labelflow worker needs, validated at start.

    >>> s = Settings(brokers="k1:9092,k2:9092", batch={"size": 100})
    >>> s.brokers, s.batch.size, s.topics.documents
    (['k1:9092', 'k2:9092'], 100, 'labelflow.documents')
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        validate_assignment=True,
    )

    # A broker on this machine: what `labelflow broker` starts and what local development expects.
    brokers: Brokers = Field(default_factory=lambda: ["localhost:9092"])
    # One group per model: workers of the same group share partitions, another group gets its own copy.
    group_id: str = "labelflow"
    # Names this process in broker logs and dead letters; None derives one from host and pid.
    client_id: str | None = None
    # "all" runs decode, embed, predict and learn in one process (the default and the demo); "embed"
    # runs a stateless embed stage that writes documents with features to topics.embedded; "learn"
    # reads topics.embedded (and the labels topic) and predicts and learns without embedding.
    role: Literal["all", "embed", "learn"] = "all"
    # How long a client waits for a first broker answer at start; a broker restarting takes seconds, a
    # missing one should fail fast enough for the orchestrator to restart the worker.
    connect_timeout_s: float = Field(default=15.0, gt=0)
    # Create missing topics at start; clusters where the worker may not administer topics turn it off.
    create_topics: bool = True
    # 1 MB is Kafka's default message limit; bigger input is dead-lettered instead of being processed.
    max_message_bytes: int = Field(default=1_000_000, ge=64)
    # Dead letters keep this much of the original message: enough to debug, bounded against huge input.
    dead_letter_max_bytes: int = Field(default=65_536, ge=0)
    # Input fields a message does not define: "reject" dead-letters the message (unknown_field), "ignore"
    # drops them, "meta" keeps them in the document's meta. "meta" by default: JSON-lines files carry
    # extra fields (Reuters: split, date) and `labelflow evaluate` reads them; misspelt message fields
    # ("label", "txt") are rejected under every policy.
    extra_fields: ExtraFields = "meta"
    # Largest output message (key + value + headers) the worker produces; 1 MB is the default limit of
    # a Kafka broker (message.max.bytes). An output over it is not sent: its input record is
    # dead-lettered (reason output_too_large), so one document cannot make every produce fail.
    max_output_bytes: int = Field(default=1_000_000, ge=4_096)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    producer: ProducerSettings = Field(default_factory=ProducerSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    consumer: ConsumerSettings = Field(default_factory=ConsumerSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    checkpoint: CheckpointSettings = Field(default_factory=CheckpointSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    feedback: FeedbackSettings = Field(default_factory=FeedbackSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    # A record that was being processed alone when the worker died this many times is dead-lettered
    # (reason poison) instead of processed again: 2 lets one unrelated crash (kill -9, a lost node) pass
    # without losing a healthy record. 0 turns the guard off.
    poison_after_crashes: int = Field(default=2, ge=0)
    # No routing topics unless asked for: every prediction already goes to topics.predictions.
    routing: list[RoutingRule] = Field(default_factory=list)

    @field_validator("brokers", mode="before")
    @classmethod
    def _split_brokers(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            value = (
                json.loads(text)
                if text.startswith("[")
                else [p.strip() for p in text.split(",") if p.strip()]
            )
        return value

    @field_validator("brokers")
    @classmethod
    def _brokers_host_port(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one broker is needed")
        for broker in value:
            if not re.fullmatch(r"[^\s:/]+:\d{1,5}", broker):
                raise ValueError(f"broker {broker!r} is not host:port")
        return value

    @model_validator(mode="after")
    def _distinct_output_topics(self) -> Settings:
        inputs = {self.topics.documents, self.topics.labels}
        outputs = [self.topics.predictions, self.topics.drift, self.topics.deadletter]
        outputs += [rule.topic for rule in self.routing]
        clash = inputs.intersection(outputs)
        if clash:
            raise ValueError(
                f"topic(s) {sorted(clash)} used both as input and as output: the worker would read its own output"
            )
        if self.topics.documents == self.topics.labels:
            raise ValueError("topics.documents and topics.labels must differ")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier sources win: CLI flags (init) over environment over the YAML file over defaults.
        return init_settings, env_settings, _YamlSource(settings_cls)

    @property
    def decode_limits(self) -> DecodeLimits:
        """The input limits in the form the message decoders take."""
        return DecodeLimits(
            max_depth=self.limits.max_json_depth,
            max_label_chars=self.limits.max_label_chars,
            max_labels=self.limits.max_labels_per_document,
        )

    @property
    def input_documents_topic(self) -> str:
        """The topic this worker reads documents from: the embed stage's output for a learn worker."""
        return self.topics.embedded if self.role == "learn" else self.topics.documents

    def masked(self) -> dict[str, Any]:
        """The settings as plain data with every secret replaced by ``**********``."""
        return self.model_dump(mode="json")

    def log_summary(self, log: logging.Logger = logger) -> None:
        """Log the effective settings at INFO, secrets masked."""
        log.info("settings %s", json.dumps(self.masked(), sort_keys=True))


def parse_override(assignment: str) -> tuple[list[str], Any]:
    """Split ``section.key=value`` into its path and a value (JSON when it parses, else the string).

    >>> parse_override("batch.size=100")
    (['batch', 'size'], 100)
    >>> parse_override("topics.documents=my.docs")
    (['topics', 'documents'], 'my.docs')
    """
    if "=" not in assignment:
        raise SettingsError(f"--set expects KEY=VALUE, got {assignment!r}")
    key, raw = assignment.split("=", 1)
    path = [part for part in key.strip().split(".") if part]
    if not path:
        raise SettingsError(f"--set has an empty key in {assignment!r}")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return path, value


def nest(overrides: dict[str, Any]) -> dict[str, Any]:
    """Turn ``{"batch.size": 5}`` into ``{"batch": {"size": 5}}`` (keys without dots pass unchanged)."""
    nested: dict[str, Any] = {}
    for dotted, value in overrides.items():
        path = dotted.split(".")
        node = nested
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SettingsError(f"setting {dotted!r} conflicts with another override of {part!r}")
        node[path[-1]] = value
    return nested


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"cannot read settings file {str(path)!r}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise SettingsError(f"settings file {str(path)!r} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(
            f"settings file {str(path)!r} must hold a mapping at its top level, not {type(data).__name__}"
        )
    return data


def _describe(error: ErrorDetails) -> str:
    location = ".".join(str(part) for part in error["loc"])
    env_hint = (
        ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(p) for p in error["loc"] if not isinstance(p, int)).upper()
    )
    where = f"{location} ({env_hint})" if location else "settings"
    return f"  {where}: {error['msg']}"


def load_settings(config_file: Path | str | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Build the settings from defaults, ``config_file`` (YAML), the environment and ``overrides``.

    ``overrides`` (CLI flags) may use dotted keys (``{"batch.size": 10}``) and win over everything else.
    Raises ``SettingsError`` listing every invalid setting.
    """
    yaml_values = _read_yaml(Path(config_file)) if config_file is not None else {}
    token = _yaml_values.set(yaml_values)
    try:
        return Settings(**nest(overrides or {}))
    except ValidationError as exc:
        lines = [_describe(error) for error in exc.errors()]
        source = f" (file {config_file})" if config_file else ""
        raise SettingsError(f"invalid labelflow settings{source}:\n" + "\n".join(lines)) from None
    finally:
        _yaml_values.reset(token)
