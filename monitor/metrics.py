"""Prometheus metrics of mevwatch (prometheus-client's default registry, served on /metrics).

Conventions: prefix ``mevwatch_``, base units (seconds, wei/gas), ``_total`` counters,
and no hashes or addresses as label values.
"""

from __future__ import annotations

from prometheus_client import Counter

ATTEST_BATCHES = Counter("mevwatch_attestation_batches", "Batches of final alerts attested on chain")
ATTEST_ALERTS = Counter("mevwatch_attestation_alerts", "Final alerts included in attested batches")
ATTEST_GAS = Counter("mevwatch_attestation_gas", "Gas used by attestation transactions")
ATTEST_FAILURES = Counter("mevwatch_attestation_failures", "Attestation attempts that failed (retried)")
