"""On-chain attestation: ``verify`` and ``mevwatch attest`` (deploy, grant, revoke, revoke-batch, flush, repair, proof, status)."""

from __future__ import annotations

import sys
from contextlib import closing
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from mevwatch.monitor.cli.main import USAGE, OptionError, err, handled, open_existing_store, open_store, state
from mevwatch.monitor.cli.output import esc
from mevwatch.monitor.errors import InputError, MevwatchError

attest_app = typer.Typer(help="On-chain attestation of final alerts: the registry, batches, proofs.", no_args_is_help=True)


def _read_alert_argument(alert: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """``verify``'s ALERT: a file (a proof bundle or an alert record) -> (record, proof); an id -> (None, None)."""
    import orjson

    path = Path(alert)
    if path.exists():
        try:
            doc = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise InputError(f"{path} is not JSON: {exc}") from None
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
        record, proof = (doc["alert"], doc.get("proof")) if isinstance(doc, dict) and "alert" in doc else (doc, None)
        if not isinstance(record, dict) or "alert_id" not in record:
            raise InputError(f"{path} holds neither an alert record nor a proof bundle")
        return record, proof
    if not alert.startswith("0x"):
        raise InputError(f"{alert} is neither a file nor an alert id (0x...)")
    return None, None


@handled(USAGE)
def verify(
    alert: Annotated[str, typer.Argument(help="An alert id (0x...) from the store, or a file: a bundle from `mevwatch attest proof` or an alert record.")],
    rpc: Annotated[Optional[str], typer.Option("--rpc", help="http(s) node of the attestation chain; default: attest.rpc, else the embedded chain.")] = None,
    contract: Annotated[Optional[str], typer.Option("--contract", help="The trusted AttestationRegistry address; default: attest.contract. Never taken from the bundle.")] = None,
    attester: Annotated[Optional[list[str]], typer.Option("--attester", help="A trusted attester address (repeatable); adds to attest.trusted_attesters and the configured key.")] = None,
    model: Annotated[Optional[list[Path]], typer.Option("--model", help="A trusted model file (hashed from its weights) or release record (JSON with model_hash); repeatable. Default: attest.trusted_models, else the shipped model file.")] = None,
    at: Annotated[Optional[str], typer.Option("--at", help="Attestation-chain block to read the registry at: finalized (default: attest.verify_at), safe or latest.")] = None,
    chain_rpc: Annotated[Optional[str], typer.Option("--chain-rpc", help="http(s) node of the monitored chain: also check that the alert's block and transactions are still there.")] = None,
    clickhouse: Annotated[Optional[str], typer.Option("--clickhouse", help="clickhouse://host:9000/db to read the alert and proof from; default: embedded chDB.")] = None,
) -> None:
    """Check an alert against its on-chain attestation; exit 0 only when it verifies.

    Recomputes the alert's leaf from its canonical encoding (evidence included), walks the
    proof to the root, and checks that root as a batch of a trusted attester in the trusted
    registry (address from the settings or --contract, code compared with the shipped
    artifact), and the model against a model you trust. Exit 1: does not verify (or not
    attested yet); 2: could not check (bad input, unknown alert, node unreachable).
    """
    from mevwatch.monitor.attest.chain import open_chain
    from mevwatch.monitor.attest.verify import trust_from_settings, verify_alert
    from mevwatch.monitor.cli.output import print_verdict

    from mevwatch.monitor.attest.verify import check_bundle

    s = state.settings
    if at is not None and at not in ("finalized", "safe", "latest"):
        raise OptionError(f"--at must be finalized, safe or latest, not {at}")
    record, proof = _read_alert_argument(alert)
    if record is not None:
        check_bundle(record, proof)  # malformed fields: exit 2, one line, before any node is asked
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
    chain = open_chain(s, rpc=rpc, contract=contract)
    trust = trust_from_settings(s, chain, contract=contract, attesters=attester, models=model, at=at)
    monitored = None
    if chain_rpc:
        from web3 import HTTPProvider, Web3

        if not chain_rpc.startswith(("http://", "https://")):
            raise OptionError(f"--chain-rpc must be an http(s) URL, got {chain_rpc.split('://')[0]}://...")
        monitored = Web3(HTTPProvider(chain_rpc, request_kwargs={"timeout": 30}))
    verdict = verify_alert(record, proof, chain, trust, monitored)
    print_verdict(verdict)
    for note in verdict.notes:
        err.print(f"[yellow]note:[/yellow] {esc(note)}")
    if not verdict.ok:
        raise typer.Exit(1)


@attest_app.command("deploy")
@handled()
def attest_deploy(
    rpc: Annotated[str, typer.Option("--rpc", help="http(s) node of the attestation chain.")],
    attester: Annotated[Optional[str], typer.Option("--attester", help="The hot key's address that attests (default: none yet; add one with `attest grant`).")] = None,
    owner: Annotated[Optional[str], typer.Option("--owner", help="Who manages attesters: a cold key or a multisig (default: the deploying key).")] = None,
    owner_attests: Annotated[bool, typer.Option("--owner-attests", help="Allow the owner to be the attester too (not recommended).")] = False,
) -> None:
    """Deploy an AttestationRegistry with the configured key; prints its address.

    The deploying key pays; --owner names who manages attesters (by default the deploying
    key: transfer it to a cold key or multisig later). The owner is never made the attester
    unless --owner-attests."""
    from web3 import HTTPProvider, Web3

    from mevwatch.monitor.attest.chain import checked_address, deploy_registry, load_account

    account = load_account(state.settings)
    if account is None:
        raise MevwatchError("no key: set MEVWATCH_ATTEST__PRIVATE_KEY_FILE, attest.private_key or attest.keystore")
    own = checked_address(owner, "--owner") if owner else account.address
    att = checked_address(attester, "--attester") if attester else None
    if att is not None and att == own and not owner_attests:
        raise OptionError(f"--attester {att} is the owner: a leaked hot key could then add attesters; use another key "
                          "(or --owner-attests)")
    address = deploy_registry(Web3(HTTPProvider(rpc)), account, att, own)
    err.print(f"registry deployed by {account.address}; owner {own}; attester {att or 'none yet (mevwatch attest grant ADDRESS)'}")
    typer.echo(address)


def _owner_command(rpc: str | None, contract: str | None, name: str, args: tuple, calldata: bool, what: str) -> None:
    from mevwatch.monitor.attest.chain import load_account, open_chain, owner_call, send_owner_call

    s = state.settings
    chain = open_chain(s, rpc=rpc, contract=contract)
    if calldata:
        typer.echo(f"to: {chain.address}\ndata: 0x{owner_call(chain, name, *args).hex()}")
        return
    account = load_account(s)
    if account is None:
        raise MevwatchError("no key: the owner's key (MEVWATCH_ATTEST__PRIVATE_KEY_FILE, ...) or --calldata for a multisig")
    r = send_owner_call(chain, account, name, *args)
    err.print(f"{what}: tx 0x{bytes(r['transactionHash']).hex()} in block {r['blockNumber']}")


@attest_app.command("grant")
@handled()
def attest_grant(
    address: Annotated[str, typer.Argument(help="The attester's address (its hot key).")],
    rpc: Annotated[Optional[str], typer.Option("--rpc", help="http(s) node of the attestation chain; default: attest.rpc.")] = None,
    contract: Annotated[Optional[str], typer.Option("--contract", help="AttestationRegistry address; default: attest.contract.")] = None,
    calldata: Annotated[bool, typer.Option("--calldata", help="Print the transaction for a multisig instead of sending it.")] = False,
) -> None:
    """Allow an attester (the owner's call: addAttester)."""
    from mevwatch.monitor.attest.chain import checked_address

    a = checked_address(address, "the attester")
    _owner_command(rpc, contract, "addAttester", (a,), calldata, f"{a} may attest")


@attest_app.command("revoke")
@handled()
def attest_revoke(
    address: Annotated[str, typer.Argument(help="The attester's address.")],
    valid_through: Annotated[int, typer.Option("--valid-through", help="Its batches with ids up to this one stay valid; later ones do not (0: none stays valid).")],
    rpc: Annotated[Optional[str], typer.Option("--rpc", help="http(s) node of the attestation chain; default: attest.rpc.")] = None,
    contract: Annotated[Optional[str], typer.Option("--contract", help="AttestationRegistry address; default: attest.contract.")] = None,
    calldata: Annotated[bool, typer.Option("--calldata", help="Print the transaction for a multisig instead of sending it.")] = False,
) -> None:
    """Revoke an attester for good (the owner's call: revokeAttester); verify honours it."""
    from mevwatch.monitor.attest.chain import checked_address

    if valid_through < 0:
        raise OptionError("--valid-through must be 0 or a batch id")
    a = checked_address(address, "the attester")
    _owner_command(rpc, contract, "revokeAttester", (a, valid_through), calldata,
                   f"{a} revoked; its batches through {valid_through} stay valid")


@attest_app.command("revoke-batch")
@handled()
def attest_revoke_batch(
    batch_id: Annotated[int, typer.Argument(help="The batch id.")],
    rpc: Annotated[Optional[str], typer.Option("--rpc", help="http(s) node of the attestation chain; default: attest.rpc.")] = None,
    contract: Annotated[Optional[str], typer.Option("--contract", help="AttestationRegistry address; default: attest.contract.")] = None,
    calldata: Annotated[bool, typer.Option("--calldata", help="Print the transaction for a multisig instead of sending it.")] = False,
) -> None:
    """Revoke one batch (the owner's call: revokeBatch): its alerts no longer verify."""
    if batch_id < 1:
        raise OptionError("batch ids start at 1")
    _owner_command(rpc, contract, "revokeBatch", (batch_id,), calldata, f"batch {batch_id} revoked")


@attest_app.command("repair")
@handled()
def attest_repair(
    clickhouse: Annotated[Optional[str], typer.Option("--clickhouse", help="clickhouse://host:9000/db; default: embedded chDB.")] = None,
    rpc: Annotated[Optional[str], typer.Option("--rpc", help="http(s) node of the attestation chain; default: attest.rpc or embedded.")] = None,
    contract: Annotated[Optional[str], typer.Option("--contract", help="AttestationRegistry address.")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Rewrite the proofs of every batch, not only those missing some.")] = False,
) -> None:
    """Rebuild the proofs of this attester's batches on chain from the store (after a lost write).

    Exit 1 when a batch's alerts cannot be rebuilt from the store (its root does not match)."""
    from mevwatch.monitor.attest.batcher import make_batcher

    with closing(open_store(clickhouse, migrate=True)) as store:
        b = make_batcher(state.settings, store, rpc=rpc, contract=contract)
        results = b.repair(everything=everything)
    bad = 0
    for bid, n, note in results:
        if n:
            err.print(f"batch {bid}: {n} proofs written")
        else:
            bad += 1
            err.print(f"[red]batch {bid}:[/red] {esc(note)}")
    err.print(f"{len(results) - bad} batch(es) repaired" + (f", {bad} could not be" if bad else "")
              + ("" if results else " (every batch of this attester has its proofs)"))
    if bad:
        raise typer.Exit(1)


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

    with closing(open_existing_store(clickhouse, migrate=True)) as store:  # an older store gains the batch tables
        status = queries.attestation_status(store, limit)
    print_attestation_status(status)
