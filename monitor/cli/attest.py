"""On-chain attestation: ``verify`` and ``mevwatch attest`` (deploy, flush, proof, status)."""

from __future__ import annotations

import sys
from contextlib import closing
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from mevwatch.monitor.cli.main import USAGE, err, handled, open_store, state
from mevwatch.monitor.cli.output import esc
from mevwatch.monitor.errors import MevwatchError

attest_app = typer.Typer(help="On-chain attestation of final alerts: the registry, batches, proofs.", no_args_is_help=True)


def _read_alert_argument(alert: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """``verify``'s ALERT: a file (a proof bundle or an alert record) -> (record, proof); an id -> (None, None)."""
    import orjson

    path = Path(alert)
    if path.exists():
        try:
            doc = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise typer.BadParameter(f"{path} is not JSON: {exc}") from None
        record, proof = (doc["alert"], doc.get("proof")) if isinstance(doc, dict) and "alert" in doc else (doc, None)
        if not isinstance(record, dict) or "alert_id" not in record:
            raise typer.BadParameter(f"{path} holds neither an alert record nor a proof bundle")
        return record, proof
    if not alert.startswith("0x"):
        raise typer.BadParameter(f"{alert} is neither a file nor an alert id (0x...)")
    return None, None


@handled(USAGE)
def verify(
    alert: Annotated[str, typer.Argument(help="An alert id (0x...) from the store, or a file: a bundle from `mevwatch attest proof` or an alert record.")],
    rpc: Annotated[Optional[str], typer.Option("--rpc", help="http(s) node of the attestation chain; default: attest.rpc, else the embedded chain.")] = None,
    contract: Annotated[Optional[str], typer.Option("--contract", help="AttestationRegistry address; default: the proof's, else attest.contract.")] = None,
    clickhouse: Annotated[Optional[str], typer.Option("--clickhouse", help="clickhouse://host:9000/db to read the alert and proof from; default: embedded chDB.")] = None,
) -> None:
    """Check an alert against its on-chain attestation; exit 0 only when it verifies.

    Recomputes the alert's leaf from its canonical encoding (evidence included), walks the
    proof to the root, checks that root in the registry and the model hash against the
    shipped model. Exit 1: does not verify (or not attested yet); 2: could not check.
    """
    from mevwatch.monitor.attest.chain import open_chain
    from mevwatch.monitor.attest.verify import verify_alert
    from mevwatch.monitor.cli.output import print_verdict

    s = state.settings
    record, proof = _read_alert_argument(alert)
    if proof is None:
        with closing(open_store(clickhouse, migrate=False)) as store:
            found = store.proof(record["alert_id"] if record else alert.lower())
        if found is None:
            err.print(f"[red]unknown alert[/red] {esc(alert)} in {esc(s.clickhouse.url or 'the embedded store')}")
            raise typer.Exit(2)
        stored, proof = found
        if record is None:
            record = stored.to_json()
    assert record is not None  # a file gives the record, an id the stored one
    chain = open_chain(s, rpc=rpc, contract=contract or (proof or {}).get("contract"))
    verdict = verify_alert(record, proof, chain)
    print_verdict(verdict)
    if not verdict.ok:
        raise typer.Exit(1)


@attest_app.command("deploy")
@handled()
def attest_deploy(
    rpc: Annotated[str, typer.Option("--rpc", help="http(s) node of the attestation chain.")],
    attester: Annotated[Optional[str], typer.Option("--attester", help="First attester (default: the deploying key).")] = None,
) -> None:
    """Deploy an AttestationRegistry with the configured key (its owner); prints its address."""
    from web3 import HTTPProvider, Web3

    from mevwatch.monitor.attest.chain import deploy_registry, load_account

    account = load_account(state.settings)
    if account is None:
        raise MevwatchError("no key: set MEVWATCH_ATTEST__PRIVATE_KEY_FILE, attest.private_key or attest.keystore")
    address = deploy_registry(Web3(HTTPProvider(rpc)), account, attester)
    err.print(f"registry deployed by {account.address}")
    typer.echo(address)


@attest_app.command("flush")
@handled()
def attest_flush(
    clickhouse: Annotated[Optional[str], typer.Option("--clickhouse", help="clickhouse://host:9000/db; default: embedded chDB.")] = None,
    rpc: Annotated[Optional[str], typer.Option("--rpc", help="http(s) node of the attestation chain; default: attest.rpc or embedded.")] = None,
    contract: Annotated[Optional[str], typer.Option("--contract", help="AttestationRegistry address.")] = None,
) -> None:
    """Attest every final alert not attested yet now (finishing a batch left in flight first)."""
    from mevwatch.monitor.attest.batcher import make_batcher
    from mevwatch.monitor.cli.output import batch_line

    with closing(open_store(clickhouse, migrate=True)) as store:
        b = make_batcher(state.settings, store, rpc=rpc, contract=contract)
        n = 0
        while (r := b.step(force=True)) is not None:
            n += 1
            err.print(batch_line(r))
        horizon = b.horizon()
    err.print(f"{n} batch(es) attested; horizon: final blocks up to {horizon}")


@attest_app.command("proof")
@handled()
def attest_proof(
    alert_id: Annotated[str, typer.Argument(help="Alert id (0x...).")],
    out: Annotated[str, typer.Option("--out", "-o", help="File for the bundle; '-' for stdout.")] = "-",
    clickhouse: Annotated[Optional[str], typer.Option("--clickhouse", help="clickhouse://host:9000/db; default: embedded chDB.")] = None,
) -> None:
    """Write an alert and its inclusion proof as one JSON bundle, checkable by `mevwatch verify FILE` anywhere."""
    import orjson

    with closing(open_store(clickhouse, migrate=False)) as store:
        found = store.proof(alert_id.lower())
    if found is None:
        err.print(f"[red]unknown alert[/red] {esc(alert_id)}")
        raise typer.Exit(2)
    alert, proof = found
    if proof is None:
        err.print(f"alert {esc(alert_id)} is {alert.stage} and not attested yet")
        raise typer.Exit(1)
    body = orjson.dumps({"alert": alert.to_json(), "proof": proof}, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    if out == "-":
        sys.stdout.buffer.write(body)
    else:
        Path(out).write_bytes(body)
        err.print(f"wrote {esc(out)}; check it with: mevwatch verify {esc(out)}")


@attest_app.command("status")
@handled()
def attest_status(
    clickhouse: Annotated[Optional[str], typer.Option("--clickhouse", help="clickhouse://host:9000/db; default: embedded chDB.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Batches to list.")] = 20,
) -> None:
    """Attested batches (newest first) and the final alerts still waiting for one."""
    from mevwatch.monitor.cli.output import print_attestation_status
    from mevwatch.monitor.store import queries

    with closing(open_store(clickhouse, migrate=True)) as store:
        status = queries.attestation_status(store, limit)
    print_attestation_status(status)
