"""One settings object for mevwatch.

Sources, later ones winning: built-in defaults, a YAML file (``--config``), then
``MEVWATCH_*`` environment variables (nested fields with ``__``, e.g.
``MEVWATCH_KAFKA__BOOTSTRAP=127.0.0.1:9092``). Secrets are ``SecretStr``: they print
as ``**********`` and are never logged; read them with ``.get_secret_value()``.
A secret may also be given as a path through the matching ``*_FILE`` variable
(``MEVWATCH_ATTEST__PRIVATE_KEY_FILE=/run/secrets/key``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from mevwatch.monitor.errors import ConfigError


class _Section(BaseModel):
    """A settings section: an unknown key at any depth is refused, with its path."""

    model_config = ConfigDict(extra="forbid")


class KafkaSettings(_Section):
    bootstrap: str | None = Field(None, description="host:port of a Kafka broker; None = in-process bus")
    client_id: str = "mevwatch"
    group_id: str = "mevwatch"
    partitions: int = Field(6, ge=1, description="partitions when mevwatch creates a topic")
    topic_prefix: str = Field("mevwatch", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$",
                              description="topics are <prefix>.mempool.v1, .blocks.v1, .alerts.v1, .deadletter.v1: one "
                                          "prefix per chain keeps several chains apart on one cluster")
    replication_factor: int = Field(1, ge=1)
    flush_timeout_s: float = Field(30.0, gt=0, description="how long one write to the alerts topic waits for the broker's "
                                   "acknowledgements before it backs off and waits again (for the records already sent)")
    commit_timeout_s: float = Field(30.0, gt=0, description="how long one offset commit waits for the broker before it "
                                    "backs off and tries again")
    session_timeout_s: float = Field(10.0, ge=6, le=1800, description="a consumer-group member (detect) silent this "
                                     "long is dropped and its partitions go to the others (the broker's group.min/max."
                                     "session.timeout.ms bound it: 6 s-30 min by default); heartbeats every third of it")
    # security (helm/mevwatch/README.md, "Kafka over TLS and SASL"): Strimzi's TLS listeners with KafkaUsers, MSK, Confluent
    security_protocol: str = Field("PLAINTEXT", pattern="^(PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL)$",
                                   description="PLAINTEXT, SSL (TLS; with ssl_cert_file/ssl_key_file: mutual TLS), "
                                               "SASL_PLAINTEXT or SASL_SSL")
    sasl_mechanism: str = Field("SCRAM-SHA-512", pattern="^(PLAIN|SCRAM-SHA-256|SCRAM-SHA-512)$",
                                description="with SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
    sasl_username: str | None = None
    sasl_password: SecretStr | None = Field(None, description="or MEVWATCH_KAFKA__SASL_PASSWORD_FILE")
    ssl_ca_file: Path | None = Field(None, description="PEM CA certificate the brokers' certificates chain to; "
                                     "None = the system's trust store")
    ssl_cert_file: Path | None = Field(None, description="PEM client certificate (mutual TLS)")
    ssl_key_file: Path | None = Field(None, description="PEM client key (mutual TLS), unencrypted")
    ssl_check_hostname: bool = Field(True, description="check the broker's certificate names its host")

    @model_validator(mode="after")
    def _complete(self) -> KafkaSettings:
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            raise ValueError("ssl_cert_file and ssl_key_file go together (mutual TLS)")
        return self

    def client_kwargs(self) -> dict[str, Any]:
        """The connection's security as kafka-python keyword arguments (producer, consumers, admin).
        Checked here, where a role connects, not when the settings load: roles that never talk to
        Kafka (attest, replay) share the config but not the password (the Helm chart mounts it
        for ingest and detect only). Raises :class:`ConfigError` naming the setting."""
        kw: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL_") and (not self.sasl_username or self.sasl_password is None):
            raise ConfigError(f"kafka.security_protocol {self.security_protocol} needs kafka.sasl_username and "
                              "kafka.sasl_password (or MEVWATCH_KAFKA__SASL_PASSWORD_FILE)")
        if self.security_protocol in ("SSL", "SASL_SSL"):
            kw["ssl_check_hostname"] = self.ssl_check_hostname
            for key, name, path in (("ssl_cafile", "ssl_ca_file", self.ssl_ca_file), ("ssl_certfile", "ssl_cert_file", self.ssl_cert_file),
                                    ("ssl_keyfile", "ssl_key_file", self.ssl_key_file)):
                if path is not None:
                    if not Path(path).is_file() or not os.access(path, os.R_OK):
                        raise ConfigError(f"kafka.{name}: {path} is not a readable file")
                    kw[key] = str(path)
        if self.security_protocol.startswith("SASL_"):
            assert self.sasl_password is not None
            kw.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                      sasl_plain_password=self.sasl_password.get_secret_value())
        return kw


class NodeSettings(_Section):
    rpc: str | None = Field(None, description="ws:// or wss:// URL of an Ethereum node (docs/node.md)")
    confirmations: int = Field(12, ge=0, description="blocks behind head before a block is final")
    max_reorg_depth: int = Field(64, ge=1, description="deeper reorganisations are an error")
    traces: str = Field("auto", pattern="^(auto|none|parity|geth)$",
                        description="call traces: auto (trace_block, else Geth's callTracer, else event logs), "
                                    "parity (trace_block), geth (debug_traceBlockByNumber callTracer) or none")
    reconnect_max_s: float = Field(30.0, gt=0)
    reexecute: str = Field("auto", pattern="^(auto|all|off)$",
                           description="sandwich victim loss by re-executing the victim on the node without the front-run "
                                       "(eth_simulateV1): auto (where no exact pool model exists), all (every pool) or off")
    exposure: str = Field("auto", pattern="^(auto|off)$",
                          description="exposure of pending swaps the reserves from blocks cannot estimate (V3 pools, "
                                      "multi-hop routes, pairs not yet seen) by simulating each on the node "
                                      "(eth_simulateV1): auto (when the detect path has a node) or off")
    block_time_s: float | None = Field(None, gt=0, le=3600,
                                       description="seconds between the chain's blocks; None: the chain's known one "
                                                   "(monitor/chains.py). Without a new block for ten of them (at least 60 s) "
                                                   "the node follower reconnects")


class ClickHouseSettings(_Section):
    url: str | None = Field(None, description="clickhouse://host:port/db; None = embedded chDB")
    data_dir: Path = Path(".mevwatch/chdb")
    password: SecretStr | None = Field(None, description="the user's password (the user is the URL's, default 'default'); "
                                       "or MEVWATCH_CLICKHOUSE__PASSWORD_FILE")
    secure: bool = Field(False, description="TLS on the native protocol (the server's tcp_port_secure, usually 9440)")
    ca_file: Path | None = Field(None, description="PEM CA certificate the server's certificate must chain to; "
                                 "None = the system's trust store")
    verify: bool = Field(True, description="verify the server's certificate and host name (turn off only for tests)")


class WebhookSubscriber(_Section):
    """One webhook endpoint and what it wants to hear about."""

    url: str = Field(..., description="http(s) URL that receives POSTed events")
    secrets: list[SecretStr] = Field(default_factory=list, description="signing secrets (whsec_... or raw); several while rotating")
    secret_files: list[Path] = Field(default_factory=list, description="files holding signing secrets, one per file")
    kinds: list[str] = Field(default_factory=list, description="alert kinds to send; empty = all")
    stages: list[str] = Field(default_factory=list, description="stages to send (pending, included, final, retracted); empty = all")
    min_score: float = Field(0.0, ge=0.0, le=1.0)
    addresses: list[str] = Field(default_factory=list, description="only alerts naming one of these accounts, pools or tokens; empty = all")

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, v: list[str]) -> list[str]:
        from mevwatch.monitor.kinds import Kind

        unknown = [k for k in v if k not in {x.value for x in Kind}]
        if unknown:  # a typo would match nothing, silently
            raise ValueError(f"unknown alert kind {unknown[0]!r}; kinds are {', '.join(x.value for x in Kind)}")
        return v

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, v: list[str]) -> list[str]:
        from mevwatch.monitor.kinds import Stage

        unknown = [s for s in v if s not in {x.value for x in Stage}]
        if unknown:
            raise ValueError(f"unknown stage {unknown[0]!r}; stages are {', '.join(x.value for x in Stage)}")
        return v

    def secret_values(self) -> list[str]:
        out = [s.get_secret_value() for s in self.secrets]
        for f in self.secret_files:
            try:
                out.append(Path(f).read_text().strip())
            except OSError as exc:
                raise ConfigError(f"cannot read webhook secret file {f}: {exc.strerror}") from None
        if not out:
            raise ConfigError(f"webhook {self.url} has no signing secret (secrets or secret_files)")
        return out


class WebhookDelivery(_Section):
    concurrency: int = Field(8, ge=1, description="deliveries in flight at once, all endpoints together")
    endpoint_concurrency: int = Field(4, ge=1, description="deliveries in flight at once to one endpoint (a slow one cannot take every slot)")
    timeout_s: float = Field(10.0, gt=0)
    max_attempts: int = Field(15, ge=1, description="then the message is a dead letter")
    backoff_base_s: float = Field(2.0, gt=0, description="first retry delay; doubles per attempt, with jitter")
    backoff_max_s: float = Field(3600.0, gt=0)
    allow_private: bool = Field(False, description="allow loopback and private targets (SSRF guard off)")
    outbox: Path | None = Field(None, description="SQLite outbox file; default <data_dir>/outbox.sqlite")


class AttestSettings(_Section):
    """On-chain attestation of final alerts (docs/attestation.md)."""

    enabled: bool = Field(True, description="attest final alerts (role all runs the batcher; else run --role attest)")
    rpc: str | None = Field(None, description="http(s) URL of the attestation chain's node; None = embedded py-evm chain under data_dir")
    contract: str | None = Field(None, description="AttestationRegistry address; embedded: deployed on first use")
    private_key: SecretStr | None = Field(None, description="attester key (0x hex); or private_key_file, keystore")
    keystore: Path | None = Field(None, description="encrypted JSON keystore of the attester key")
    keystore_password: SecretStr | None = None
    batch_blocks: int = Field(100, ge=1, description="attest when this many final blocks are unattested")
    batch_seconds: float = Field(600.0, gt=0, description="... or when the oldest unattested final alert waited this long")
    confirmations: int = Field(2, ge=1, description="attestation-chain blocks on top of the attestation before proofs are stored")
    priority_fee_gwei: float = Field(1.5, ge=0)
    max_priority_fee_gwei: float = Field(10.0, ge=0, description="the escalating tip never goes above this")
    max_fee_gwei: float = Field(300.0, gt=0, description="never pay more per gas; hold the batch while the base fee is higher")
    replace_after_s: float = Field(60.0, gt=0, description="re-send with 12.5% higher fees when not mined by then (within the caps)")
    receipt_timeout_s: float = Field(900.0, gt=0)
    uri_template: str = Field("", description="stored with each batch; {root} and {batch_from}/{batch_to} are filled in")
    trusted_attesters: list[str] = Field(default_factory=list,
                                         description="verify: attester addresses whose batches count (besides the configured key's)")
    trusted_models: list[Path] = Field(default_factory=list,
                                       description="verify: model files (hashed from their weights) or release records "
                                                   "(JSON naming model_hash) whose models count; none = the shipped model file")
    verify_at: str = Field("finalized", pattern="^(finalized|safe|latest)$",
                           description="verify: the attestation-chain block to read the registry at (a node; the embedded chain: latest)")

    @field_validator("contract", mode="before")
    @classmethod
    def _address_read_as_number(cls, v: Any) -> Any:
        return _address_from_yaml(v)

    @field_validator("trusted_attesters", mode="before")
    @classmethod
    def _addresses_read_as_numbers(cls, v: Any) -> Any:
        return [_address_from_yaml(x) for x in v] if isinstance(v, list) else v


def _address_from_yaml(v: Any) -> Any:
    # YAML reads an unquoted 0x... address as an integer; a 20-byte address survives the trip exactly
    if isinstance(v, int) and not isinstance(v, bool):
        if not 0 <= v < 2**160:
            raise ValueError("not a 20-byte address; quote it in YAML")
        return f"0x{v:040x}"
    return v


class GnnSettings(_Section):
    """The graph model (models/, docs/gnn.md): on when the gnn extra (torch) is installed."""

    enabled: bool = Field(True, description="score blocks and mempool windows with the model (needs the gnn extra)")
    model: Path | None = Field(None, description="model file; None = the shipped models/default/model.pt")
    threshold: float = Field(0.9, gt=0, le=1, description="role probability for 'both' and for model-only attempts")
    window: int = Field(64, ge=2, description="pending transactions in a mempool window")
    model_alerts: str = Field("pending", pattern="^(all|pending|none)$",
                              description="which alerts the model may raise on its own (it always scores the rules' "
                                          "alerts and never removes one): pending (mempool attempts only; the default), "
                                          "all (also model-only sandwiches and arbitrages in blocks), none. Default from "
                                          "docs/model-eval/lab-v2.md: in blocks its own alerts added false positives and no attack")


class Settings(BaseSettings):
    """All of mevwatch's configuration."""

    model_config = SettingsConfigDict(env_prefix="MEVWATCH_", env_nested_delimiter="__", extra="forbid")

    chain_id: int = 1
    native_wrapper: str | None = Field(None, pattern="^0x[0-9a-fA-F]{40}$",
                                       description="the chain's wrapped native token (WETH on Ethereum): valued 1:1 in the "
                                                   "native coin, prices from its pools; None: the chain's known one "
                                                   "(monitor/chains.py; mainnet's WETH address for a chain it does not know)")
    data_dir: Path = Path(".mevwatch")
    log_level: str = Field("INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    log_format: str = Field("auto", pattern="^(auto|json|console)$",
                            description="auto: console on a terminal, JSON otherwise (monitor/log.py)")
    kafka: KafkaSettings = KafkaSettings()
    node: NodeSettings = NodeSettings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    attest: AttestSettings = AttestSettings()
    gnn: GnnSettings = GnnSettings()
    webhooks: list[WebhookSubscriber] = Field(default_factory=list)
    webhook_delivery: WebhookDelivery = WebhookDelivery()
    sinks: list[str] = Field(["webhooks", "clickhouse", "alerts_topic", "checkpoint"],
                             description="where alerts go, in order: registered sink names or package.module:factory "
                                         "(monitor/sinks/registry.py); keep checkpoint last")
    health_port: int | None = Field(8080, description="port of /healthz and /readyz on 127.0.0.1 unless health_host; None = off")
    health_host: str = "127.0.0.1"
    device: str = Field("auto", pattern="^(auto|cpu|cuda)$", description="where the graph model runs (auto: CUDA when there is one)")
    decoders: str = Field("full", pattern="^(full|transfers)$",
                          description="full: every protocol decoder; transfers: swaps inferred from token transfers "
                                      "only, as for protocols no decoder knows (monitor/decode/tokenflow.py)")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # env beats the YAML file (passed as init kwargs) which beats defaults.
        return (_WithoutSecretFileVars(settings_cls, env_settings), init_settings, file_secret_settings)


class _WithoutSecretFileVars(PydanticBaseSettingsSource):
    """The environment, less the ``*_FILE`` variables :func:`load_settings` reads itself (not settings keys)."""

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        self.inner = inner

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        data = self.inner()
        for section, name in _SECRET_FILE_VARS.values():
            sub = data.get(section)
            if isinstance(sub, dict):
                sub.pop(f"{name}_file", None)
                if not sub:
                    del data[section]
        return data


_SECRET_FILE_VARS = {
    "MEVWATCH_ATTEST__PRIVATE_KEY_FILE": ("attest", "private_key"),
    "MEVWATCH_ATTEST__KEYSTORE_PASSWORD_FILE": ("attest", "keystore_password"),
    "MEVWATCH_CLICKHOUSE__PASSWORD_FILE": ("clickhouse", "password"),
    "MEVWATCH_KAFKA__SASL_PASSWORD_FILE": ("kafka", "sasl_password"),
}


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from a YAML file, the environment and explicit overrides.

    Raises :class:`ConfigError` naming the file or field at fault.
    """
    data: dict[str, Any] = {}
    if config_file is not None:
        try:
            loaded = yaml.safe_load(Path(config_file).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc.strerror}") from None
        except yaml.YAMLError as exc:  # never echo the offending line: it may hold a secret
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or "cannot be parsed"
            raise ConfigError(f"config file {config_file} is not valid YAML{where}: {problem}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {config_file} must hold a mapping at top level")
        data = loaded or {}
    for var, (section, field) in _SECRET_FILE_VARS.items():
        path = os.environ.get(var)
        if path:
            try:
                secret = Path(path).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"cannot read secret file named by {var}: {exc.strerror}") from None
            data.setdefault(section, {})[field] = secret
    for key, value in overrides.items():
        if value is None:
            continue
        section, _, field = key.partition("__")
        if field:
            data.setdefault(section, {})[field] = value
        else:
            data[key] = value
    try:
        return Settings(**data)
    except SettingsError as exc:  # an environment value that does not parse (JSON of a list or section)
        m = re.search(r'field "([^"]+)"', str(exc))
        var = f"MEVWATCH_{m.group(1).upper()}" if m else "a MEVWATCH_* variable"
        raise ConfigError(f"environment: {var} is not valid JSON for that setting (its value is not shown)") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        origin = f" (from {config_file} and the environment)" if config_file else ""
        raise ConfigError(f"invalid settings{origin}: {problems}") from None
