"""``mevwatch replay``: recorded blocks, or a node's block range, through decode and detect."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from mevwatch.monitor.cli.main import USAGE, OptionError, err, gnn_device, handled, open_store, state


@handled(USAGE)
def replay(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Files or folders: mev-inspect .json/.json.gz blocks, mevwatch .jsonl/.jsonl.gz recordings, or cryo parquet datasets (a folder of NETWORK__DATASET__START_to_END.parquet files: blocks, transactions, logs and/or traces; docs/cryo.md).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto (by file name), mev-inspect, jsonl or cryo (parquet; needs the embedded extra).")] = "auto",
    out: Annotated[str, typer.Option("--out", "-o", help="Where alerts go, one JSON object per line; '-' for stdout.")] = "-",
    rpc: Annotated[Optional[str], typer.Option("--rpc", help="Replay from a node instead of files (http(s):// or ws(s)://).")] = None,
    from_block: Annotated[Optional[int], typer.Option("--from", help="First block to fetch with --rpc.")] = None,
    to_block: Annotated[Optional[int], typer.Option("--to", help="Last block to fetch with --rpc (inclusive).")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Processes that read and decode inputs in parallel (mev-inspect files; cryo ranges in parts of 16 blocks) (default: CPU count, at most 8); rules-only replays (--no-gnn): the graph model scores in one process.")] = None,
    dead_letter: Annotated[Optional[Path], typer.Option("--dead-letter", help="Write every rejected input (file, position, reason) here as JSONL.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary table.")] = False,
    store: Annotated[bool, typer.Option("--store", help="Also write alerts (every stage; all final at the end of the input), swaps and blocks to the evidence store (embedded chDB unless --clickhouse).")] = False,
    clickhouse: Annotated[Optional[str], typer.Option("--clickhouse", help="clickhouse://host:9000/db to write to (implies --store).")] = None,
    gnn: Annotated[Optional[bool], typer.Option("--gnn/--no-gnn", help="Score with the graph model (batches of blocks per forward pass), or not. Default: as `mevwatch run` does (gnn.enabled, on where the gnn extra is installed).", show_default=False)] = None,
    device: Annotated[str, typer.Option("--device", help="Graph model device: auto, cpu or cuda.")] = "auto",
    decoders: Annotated[Optional[str], typer.Option("--decoders", help="full (every protocol decoder) or transfers (swaps inferred from token transfers only, as for protocols no decoder knows; docs/detection.md). Default: the decoders setting (full).")] = None,
    reexecute: Annotated[str, typer.Option("--reexecute", help="With --rpc: a sandwich victim's loss by re-executing it on the node without the front-run (eth_simulateV1): auto (where no exact pool model exists), all (every pool; the model's number kept beside) or off.")] = "auto",
    shard: Annotated[Optional[str], typer.Option("--shard", help="i/K: replay only shard i (0-based, as a Kubernetes completion index) of K: a contiguous slice of the --from/--to range, or of the input files in order (not JSONL recordings). K shards into one store write exactly one whole run's rows (docs/operations.md, Sharded backfill).")] = None,
    checkpoint: Annotated[Optional[str], typer.Option("--checkpoint", help="With --rpc and the store: record this shard's progress in the store under NAME after every write, and resume where a run with the same NAME, shard and range stopped.", metavar="NAME")] = None,
    explain: Annotated[Optional[Path], typer.Option("--explain", help="With the graph model on: write every scored transaction's role probabilities here (JSONL), for audit.")] = None,
) -> None:
    """Replay recorded blocks (or a node's block range) through decode and detect; write alerts as JSONL.

    With --store or --clickhouse the alerts, decoded swaps and blocks also go to ClickHouse,
    as the dashboards read them. One bad input costs one input: a malformed or out-of-range
    block (or line), one the store refuses, or a file whose worker process dies twice (as by
    the out-of-memory killer) is rejected and named (file, position, field; every one in the
    --dead-letter file); the rest is processed. The summary says how many inputs were rejected (with
    --quiet: one line), and the exit code is 1 when any was; 0 when none; 2 when the replay
    could not start (options, unreadable or unwritable paths).
    """
    from mevwatch.monitor.cli.output import esc, print_summary, progress, write_dead_letters

    if quiet and "log_level" not in state.settings.model_fields_set:  # -q: only warnings and errors (e.g. no "model loaded")
        from mevwatch.monitor.log import configure_logging

        configure_logging("WARNING", state.settings.log_format, quiet_warnings=True)
    decoders = decoders or state.settings.decoders
    if reexecute not in ("auto", "all", "off"):
        raise OptionError(f"--reexecute must be auto, all or off, got {esc(reexecute)}")
    if reexecute == "all" and rpc is None:
        raise OptionError("--reexecute all needs --rpc (a node to re-execute on)")
    if decoders not in ("full", "transfers"):
        raise OptionError(f"--decoders must be full or transfers, got {esc(decoders)}")
    to_store = bool(store or clickhouse)
    the_shard = None
    if shard is not None:
        from mevwatch.monitor.shard import ShardError, parse_shard

        try:
            the_shard = parse_shard(shard)
        except ShardError as exc:
            raise OptionError(str(exc)) from None
    if checkpoint is not None and (rpc is None or not to_store):
        raise OptionError("--checkpoint needs --rpc and the store (--store or --clickhouse): a node range's progress "
                          "is kept in the store; a file shard is replayed whole again (its rows collapse)")
    if checkpoint is not None and (not checkpoint or len(checkpoint) > 200 or not checkpoint.isprintable()):
        raise OptionError("--checkpoint must be a printable name of 1 to 200 characters")
    chain_id = state.settings.chain_id
    if rpc is None and paths and "chain_id" not in state.settings.model_fields_set:
        from mevwatch.streams.files import discover, recording_chain_id

        # no --chain-id (nor config/env): a recording's own chain id, so alert ids match the live run's
        chain_id = recording_chain_id(discover(paths, fmt)) or chain_id
    scorer = None
    off_reason = "--no-gnn" if gnn is False else None
    if gnn is None:  # the setting every entry point follows (models/scorer.py: model_off_reason)
        from mevwatch.models.scorer import model_off_reason

        off_reason = model_off_reason(state.settings)
        gnn = off_reason is None
    if gnn:
        from mevwatch.models.scorer import Scorer

        gnn_settings = state.settings.gnn
        scorer = Scorer(gnn_settings.model, gnn_device(device), gnn_settings.threshold, gnn_settings.window, chain_id=chain_id,
                        model_alerts=gnn_settings.model_alerts)
    if scorer is not None and workers is not None and workers > 1 and not quiet:
        err.print("[yellow]note: with the graph model on, a replay decodes and scores in this process: --workers is "
                  "not used (--no-gnn for parallel rules-only decoding)[/yellow]")
    if explain is not None:  # per-transaction role probabilities for audit (models/scorer.py)
        if scorer is None:
            raise OptionError(f"--explain needs the graph model, which is off ({off_reason})")
        from mevwatch.models.scorer import explain_file

        try:
            scorer.explain = explain_file(explain)
        except OSError as exc:
            raise OptionError(f"--explain {explain}: cannot write: {exc.strerror or exc}") from None
    started: dict[str, Any] = {}  # the progress bar's update, for a resumed range's length
    if rpc is not None:
        from mevwatch.monitor.replay_rpc import replay_rpc
        from mevwatch.monitor.shard import Shard

        if from_block is None or to_block is None:
            raise OptionError("--rpc needs --from and --to")
        if paths:
            raise OptionError("give either files to replay or --rpc, not both")
        if to_block < from_block:
            raise OptionError(f"--to ({to_block}) is before --from ({from_block})")
        span = (the_shard or Shard(0, 1)).block_range(from_block, to_block)
        total: int | None = span[1] - span[0] + 1 if span is not None else 0
        alert_store = open_store(clickhouse, migrate=True) if to_store else None
        traces = state.settings.node.traces  # node.traces, as the daemon reads it (docs/node.md)

        def on_start(first: int, last: int) -> None:  # the blocks this run fetches (a checkpoint may have done some)
            started["range"] = (first, last)
            if not quiet and (first, last) != span and span is not None:
                err.print(f"resuming checkpoint {esc(checkpoint or '')}: blocks {first:,}..{last:,} of this shard's "
                          f"{span[0]:,}..{span[1]:,}" if first <= last else
                          f"checkpoint {esc(checkpoint or '')}: this shard ({span[0]:,}..{span[1]:,}) is already done")
            if "update" in started:
                started["update"](total=max(last - first + 1, 0))

        run = lambda sink, cb: replay_rpc(rpc, from_block, to_block, out=sink, on_block=cb, chain_id=chain_id,  # noqa: E731
                                          scorer=scorer, traces=traces, decoders=decoders, reexecute=reexecute,
                                          store=alert_store, shard=the_shard, checkpoint=checkpoint, on_start=on_start,
                                          native_wrapper=state.settings.native_wrapper)
    else:
        from mevwatch.monitor.replay import replay_files
        from mevwatch.streams.files import discover

        if not paths:
            raise OptionError("give files or folders to replay, or --rpc with --from/--to")
        # the files to read, fixed now: never the run's own output (--out or --dead-letter inside an input folder)
        ours = {Path(x).resolve() for x in (out if out != "-" else None, dead_letter) if x is not None}
        found = [(p, f) for p, f in discover(paths, fmt) if p.resolve() not in ours]
        if not found:
            raise OptionError("nothing to replay: the only input files are this run's own output")
        if the_shard is not None:
            from mevwatch.monitor.replay import shard_units

            if any(f == "jsonl" for _p, f in found):  # this shard's files (and cryo ranges), fixed now
                raise OptionError(f"--shard: {esc(next(str(p) for p, f in found if f == 'jsonl'))} is a JSONL recording, "
                                  "one ordered stream of events (pending transactions, reverts): replay it whole")
            mev_mine, _cryo = shard_units(found, the_shard, chain_id)
            total = len(mev_mine) or None
        else:
            total = sum(1 for _, f in found if f == "mev-inspect") or None
        inputs = [p for p, _f in found]
        _check_writable(out, dead_letter)
        alert_store = open_store(clickhouse, migrate=True) if to_store else None
        run = lambda sink, cb: replay_files(inputs, fmt=fmt, out=sink, workers=workers, on_block=cb,  # noqa: E731
                                            chain_id=chain_id, store=alert_store, scorer=scorer, decoders=decoders,
                                            shard=the_shard, native_wrapper=state.settings.native_wrapper)

    _check_writable(out, dead_letter)
    try:
        sink = sys.stdout.buffer if out == "-" else open(out, "wb")  # noqa: SIM115
    except OSError as exc:
        raise OptionError(f"--out {out}: cannot write: {exc.strerror or exc}") from None
    try:
        with progress("replay", "blocks", total, show=not quiet and err.is_terminal, transient=True) as update:
            started["update"] = update
            summary = run(sink, lambda _n: update(advance=1))
    finally:
        if sink is not sys.stdout.buffer:
            sink.close()
        else:
            sink.flush()
        if alert_store is not None:
            where = alert_store.where
            alert_store.close()
    if dead_letter is not None:
        try:
            write_dead_letters(summary.problems, dead_letter)
        except OSError as exc:  # checked writable before the run; a full disk now
            raise OptionError(f"--dead-letter {dead_letter}: cannot write: {exc.strerror or exc}") from None
    if not quiet:
        model = (f"{scorer.model_hash[:10]}… on {scorer.device}" if scorer is not None
                 else f"off ({off_reason}): exact rules only")
        print_summary(summary, None if out == "-" else out, dead_letter, model=model)
        if alert_store is not None:  # what really reached the store (blocks it refused are among the rejected)
            st = summary.stored
            err.print(f"stored {st['alerts']:,} alert stage events, {st['swaps']:,} swaps and {st['blocks']:,} blocks "
                      f"in {esc(where)}" if any(st.values()) else f"stored nothing in {esc(where)}")
    elif summary.rejected:
        err.print(f"{summary.rejected:,} rejected inputs" + (f", all in {esc(dead_letter)}" if dead_letter is not None else ""))
    if summary.rejected:
        raise typer.Exit(1)


def _check_writable(out: str, dead_letter: Path | None) -> None:
    """Refuse output paths that cannot be written before any work starts."""
    import os

    for opt, target in (("--out", None if out == "-" else Path(out)), ("--dead-letter", dead_letter)):
        if target is None:
            continue
        if target.is_dir():
            raise OptionError(f"{opt} {target}: is a directory")
        parent = target.parent if str(target.parent) else Path(".")
        if not parent.is_dir():
            raise OptionError(f"{opt} {target}: no such directory {parent}")
        if (target.exists() and not os.access(target, os.W_OK)) or (not target.exists() and not os.access(parent, os.W_OK)):
            raise OptionError(f"{opt} {target}: not writable")

