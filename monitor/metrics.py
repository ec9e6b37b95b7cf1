"""Prometheus metrics of mevwatch (prometheus-client's default registry, served on /metrics).

Conventions: prefix ``mevwatch_``, base units (seconds, blocks, gas), ``_total`` counters
(prometheus-client adds the suffix), and no hashes or addresses as label values: labels
are bounded sets (alert kinds, stages, topics, delivery outcomes, devices).
Every metric is documented in docs/observability.md, with the alert rules that use it.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info, disable_created_metrics

disable_created_metrics()  # no *_created series: they double the series count and no panel reads them

# latency buckets that resolve milliseconds (1 ms .. 30 s)
FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)

# --- ingest -----------------------------------------------------------------------------------
PENDING_SEEN = Counter("mevwatch_pending_txs_seen", "Pending transactions taken from the bus by detection")
BLOCKS = Counter("mevwatch_blocks_processed", "Canonical blocks processed by detection (re-deliveries not counted)")
HEAD_LAG = Gauge("mevwatch_head_lag_seconds", "Wall clock minus the timestamp of the newest processed block")
HEAD = Gauge("mevwatch_head_block", "Number of the newest processed block")
RECONNECTS = Counter("mevwatch_node_reconnects", "Reconnections to the Ethereum node after a lost connection")
HEAD_STALLS = Counter("mevwatch_node_head_stalls", "Node connections dropped because no new block came for ten block "
                      "times (at least 60 s; node.block_time_s)")
REORGS = Counter("mevwatch_reorgs", "Chain reorganisations seen (one per revert sequence)")
REORG_DEPTH = Histogram("mevwatch_reorg_depth_blocks", "Blocks reverted per reorganisation", buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32, 64))
TRACE_FALLBACKS = Counter("mevwatch_trace_fallbacks", "Blocks decoded from event logs although call traces were asked for: "
                          "reason=error (the tracer failed, after retries) or unsupported (the node offers no tracer)", ["reason"])
ORPHANED_FINAL_BLOCKS = Counter("mevwatch_orphaned_final_blocks", "Blocks that left the chain although already final "
                                "(a reorg deeper than node.confirmations): their final alerts stay final, raise the setting")
REVERTED_BLOCKS = Counter("mevwatch_reverted_blocks", "Blocks that left the canonical chain after being processed")

# --- bus ------------------------------------------------------------------------------------------
RETRIES = Counter("mevwatch_retries", "Waits before a retry, by retry policy (monitor/retry.py)", ["policy"])
PRODUCE_ERRORS = Counter("mevwatch_kafka_produce_errors", "Failed produce or flush attempts to Kafka (retried)")
CONSUMER_LAG = Gauge("mevwatch_kafka_consumer_lag_records", "Records behind the end of the topic, per topic", ["topic"])

# --- detection ------------------------------------------------------------------------------
DETECTION_LATENCY = Histogram(
    "mevwatch_detection_latency_seconds",
    "Time to a committed alert: source=pending from the first sight of its newest pending transaction, "
    "source=head from the arrival of its block on the bus",
    ["source"], buckets=FAST)
ALERTS = Counter("mevwatch_alerts", "Alert stage events written to the sinks", ["kind", "stage"])
GNN_LATENCY = Histogram("mevwatch_gnn_inference_seconds", "Graph build + model inference per block or mempool window",
                        ["device"], buckets=FAST)
MODEL = Info("mevwatch_model", "The scoring model loaded (model_hash none: exact rules only)")
SWAP_CALLS = Counter("mevwatch_decode_swap_calls", "Swap-like calls in processed blocks, by outcome: decoded (a decoder "
                     "explained it) or undecoded (tokens traded through a call no decoder read)", ["outcome"])
DECODE_COVERAGE = Gauge("mevwatch_decode_coverage_ratio", "Share of swap-like calls the decoders explained in the newest "
                        "processed block that had any (1: everything seen was decoded)")

# --- store and sinks --------------------------------------------------------------------------
CH_INSERT = Histogram("mevwatch_clickhouse_insert_seconds", "One batch written to ClickHouse (every table)", buckets=FAST)
CH_FAILURES = Counter("mevwatch_clickhouse_insert_failures", "Failed ClickHouse writes (retried while offsets are held)")
WEBHOOKS = Counter("mevwatch_webhook_deliveries", "Webhook delivery attempts by outcome", ["status"])
WEBHOOK_LATENCY = Histogram("mevwatch_webhook_delivery_seconds", "One webhook POST, request to response", buckets=FAST)
OUTBOX_DEPTH = Gauge("mevwatch_webhook_outbox_depth", "Webhook messages waiting for delivery")

# --- attestation ------------------------------------------------------------------------------
ATTEST_BATCHES = Counter("mevwatch_attestation_batches", "Batches of final alerts attested on chain")
ATTEST_ALERTS = Counter("mevwatch_attestation_alerts", "Final alerts included in attested batches")
ATTEST_GAS = Counter("mevwatch_attestation_gas", "Gas used by attestation transactions")
ATTEST_FAILURES = Counter("mevwatch_attestation_failures", "Attestation attempts that failed (retried)")
ATTEST_LAST = Gauge("mevwatch_attestation_last_success_timestamp_seconds", "Unix time of the last attested batch")
ATTEST_WAITING = Gauge("mevwatch_attestation_waiting_alerts", "Final alerts not attested yet")

MODEL.info({"model_hash": "none", "device": "none", "detector": "rules"})

_last_block_ts = 0.0


def observe_block(number: int, timestamp: float) -> None:
    """A block was processed: head and (computed at scrape time, so a stall shows) head lag."""
    global _last_block_ts
    BLOCKS.inc()
    HEAD.set(number)
    _last_block_ts = float(timestamp)


def observe_coverage(decoded: int, undecoded: int) -> None:
    """One processed block's swap-like calls: decoded and not (the decoders' coverage)."""
    if decoded:
        SWAP_CALLS.labels("decoded").inc(decoded)
    if undecoded:
        SWAP_CALLS.labels("undecoded").inc(undecoded)
    if decoded or undecoded:
        DECODE_COVERAGE.set(decoded / (decoded + undecoded))


def _head_lag() -> float:
    import time

    return max(0.0, time.time() - _last_block_ts) if _last_block_ts else 0.0


HEAD_LAG.set_function(_head_lag)


def delivery_status(code: int | None) -> str:
    """A bounded label for a webhook outcome: 2xx, 4xx, 5xx, 410 or error (no response)."""
    if code is None:
        return "error"
    if code == 410:
        return "410"
    return f"{code // 100}xx"
