"""What the commands print: progress bars, summary tables and reports.

Strings that come from outside (file names, reasons, URLs, node and receiver answers, values
read from the store) are escaped before rich renders them, so a ``[bold]`` in a token name or
an error text is printed as it is instead of being read as markup.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from mevwatch.monitor.cli.main import err

if TYPE_CHECKING:
    from mevwatch.monitor.store.queries import AttestationStatus, DbStatus


_UNSAFE = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x09), *range(0x0b, 0x20), *range(0x7f, 0xa0))}
_UNSAFE.update({c: f"\\u{c:04x}" for c in (0x061c, 0x200e, 0x200f, *range(0x202a, 0x202f), *range(0x2066, 0x206a))})


def esc(value: Any) -> str:
    """``value`` as text that rich prints verbatim: markup escaped, and control characters (ESC
    sequences, carriage returns, C1 codes) and bidirectional overrides shown as ``\\xNN`` /
    ``\\uNNNN`` instead of reaching the terminal (untrusted file names, reasons, token names)."""
    return escape(str(value).translate(_UNSAFE))


# --- progress bars -----------------------------------------------------------------------------

@contextmanager
def progress(label: str, unit: str, total: int | None, *, show: bool, transient: bool = False,
             remaining: bool = True, **fields: Any) -> Iterator[Callable[..., None]]:
    """A progress bar on stderr; yields ``update(advance=..., completed=..., **fields)``. Hidden unless ``show``."""
    columns = [TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit), TimeElapsedColumn()]
    if remaining:
        columns.append(TimeRemainingColumn())
    with Progress(*columns, console=err, disable=not show, transient=transient) as bar:
        task = bar.add_task(label, total=total, **fields)
        yield functools.partial(bar.update, task)


# --- replay ------------------------------------------------------------------------------------

def print_summary(summary, out_path: str | None, dead_letter: Path | None = None, model: str | None = None) -> None:
    """The replay summary table and the first rejected inputs, on stderr."""
    s = summary
    rate = s.blocks / s.elapsed_s if s.elapsed_s else 0.0
    t = Table(title="mevwatch replay", show_header=False, title_justify="left")
    t.add_row("blocks", f"{s.blocks}" + (f" ({s.first_block}..{s.last_block})" if s.blocks else ""))
    t.add_row("transactions", str(s.transactions))
    if s.pending or s.reverts:
        t.add_row("pending / reverts", f"{s.pending} / {s.reverts}")
    t.add_row("swaps by protocol", esc(", ".join(f"{k} {v}" for k, v in sorted(s.stats.swaps_by_protocol.items())) or "none"))
    t.add_row("alerts by kind", esc(", ".join(f"{k} {v}" for k, v in sorted(s.alerts_by_kind.items())) or "none"))
    if model is not None:
        t.add_row("graph model", esc(model))
    decoded, undecoded, share = s.coverage()
    t.add_row("decode coverage", f"{share:.1%} of swap-like calls ({decoded} decoded, {undecoded} not)" if share is not None else "no swap-like calls")
    t.add_row("undecoded swap-like calls", esc(", ".join(f"{k} {v}" for k, v in s.stats.undecoded_by_selector.most_common(10)) or "none"))
    t.add_row("malformed known calls", esc(", ".join(f"{k} {v}" for k, v in s.stats.malformed_by_selector.most_common(10)) or "none"))
    t.add_row("reverted calls skipped", str(s.stats.reverted_calls))
    t.add_row("time", f"{s.elapsed_s:.2f} s ({rate:,.0f} blocks/s)")
    if out_path:
        t.add_row("alerts written to", esc(out_path))
    t.add_row("rejected inputs", rejected_line(s.rejected, dead_letter))
    err.print(t)
    for p in s.problems[:10]:
        err.print(f"[yellow]rejected:[/yellow] {esc(p.source)}" + (f" at {esc(p.position)}" if p.position else "") + f": {esc(p.reason)}")
    if len(s.problems) > 10:
        err.print(f"[yellow]... and {len(s.problems) - 10} more rejected inputs (see --dead-letter)[/yellow]")


def rejected_line(n: int, dead_letter: Path | None) -> str:
    """How many inputs a replay rejected, and where they all are."""
    if not n:
        return "none"
    return f"{n:,}" + (f" (all in {esc(dead_letter)})" if dead_letter is not None else " (each named below; --dead-letter FILE keeps them all)")


def write_dead_letters(problems, path: Path) -> None:
    """Every rejected input (file, position, reason, raw bytes as text) as one JSON object per line."""
    import orjson

    with open(path, "wb") as fh:
        for p in problems:
            fh.write(orjson.dumps({"source": p.source, "position": p.position, "reason": p.reason,
                                   "raw": p.raw.decode("utf-8", "replace") if p.raw else None}) + b"\n")


# --- demo --------------------------------------------------------------------------------------

DEMO_KIND_LABELS = {"either": "sandwich, pending or included", "sandwich": "sandwich (included)",
                    "sandwich_attempt": "sandwich_attempt (pending)", "arbitrage": "arbitrage or backrun",
                    "displacement": "frontrun_displacement", "jit": "jit_sandwich (CL pool)"}


def print_demo(console: Console, result, out: Path) -> None:
    """The demo's scores against the lab's ground truth, what it wrote and how to look at it."""
    if result.interrupted:
        console.print("[yellow]interrupted[/yellow]; anvil stopped, partial results written")
    t = Table(title="detection against the lab's ground truth", title_justify="left")
    for col in ("alert kind", "landed attacks", "found", "recall", "alerts", "false positives", "precision"):
        t.add_column(col)
    for kind, sc in result.scores.items():
        t.add_row(DEMO_KIND_LABELS[kind], str(sc.attacks), str(sc.found), f"{sc.recall:.2f}", str(sc.alerts),
                  str(sc.false_positives), f"{sc.precision:.2f}")
    console.print(t)
    kinds: dict[str, int] = {}
    for a in result.alerts:
        kinds[a.kind] = kinds.get(a.kind, 0) + 1
    console.print("alerts by kind: " + (", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "none"))
    if result.model is not None:
        det: dict[str, int] = {}
        for a in result.alerts:
            det[a.detector] = det.get(a.detector, 0) + 1
        console.print(f"graph model {esc(result.model[0])} on {esc(result.model[1])}: {det.get('both', 0)} alerts confirmed by "
                      f"rules and model, {det.get('gnn', 0)} attempts only the model saw, {det.get('rules', 0)} rules only",
                      soft_wrap=True)
    else:
        console.print(f"graph model off ({esc(result.model_off or 'not loaded')}): exact rules only", soft_wrap=True)
    o = esc(out)
    console.print(f"written to {o}/: alerts.jsonl (every alert), recording.jsonl (the node's messages), labels.jsonl (ground truth)", soft_wrap=True)
    if result.store_path is not None:
        st = result.stored
        console.print(f"stored in chDB at {esc(result.store_path)}: {st.get('alerts', 0)} alerts (newest stage each), "
                      f"{st.get('swaps', 0)} swaps, {st.get('pending_txs', 0)} pending transactions, {st.get('blocks', 0)} blocks",
                      soft_wrap=True)
    cfg = esc(out / "mevwatch.yaml")
    if result.registry:
        console.print(f"attested {result.attested} final alerts in {result.batches} batches on the embedded chain "
                      f"(registry {esc(result.registry)})", soft_wrap=True)
    console.print(f"replay it:  mevwatch --chain-id 31337 replay {o}/recording.jsonl --out replayed.jsonl", soft_wrap=True)
    console.print(f"query it:   mevwatch --config {cfg} db status", soft_wrap=True)
    console.print(f"            jq -c 'select(.kind==\"sandwich\") | {{block_number, profit, victim_loss}}' {o}/alerts.jsonl", soft_wrap=True)
    if result.example_attested:
        console.print(f"verify one: mevwatch --config {cfg} verify {esc(result.example_attested)}", soft_wrap=True)


# --- store and attestation ---------------------------------------------------------------------

def print_db_status(status: DbStatus) -> None:
    t = Table(title=esc(status.where), title_justify="left")
    t.add_column("table")
    t.add_column("rows (FINAL)", justify="right")
    for name, n in status.rows.items():
        t.add_row(name, f"{n:,}")
    out = Console(soft_wrap=True)  # the whole status on stdout (a pipe gets all of it)
    out.print(t)
    pending = status.pending_migrations
    out.print(f"pending migrations: {pending or 'none'}; last processed block: {status.last_block if not pending else '-'}")


def print_attestation_status(status: AttestationStatus) -> None:
    t = Table(title="attested batches", title_justify="left")
    for col in ("batch", "blocks", "alerts", "root", "tx", "gas", "chain", "registry"):
        t.add_column(col, no_wrap=True)
    for r in status.batches:  # hashes shortened to fit a terminal; `mevwatch attest proof ID` gives them whole
        t.add_row(str(r["batch_id"]), f"{r['from_block']}..{r['to_block']}", str(r["alert_count"]), esc(_short(r["root"])),
                  esc(_short(r["tx_hash"]) if r["tx_hash"] else "(adopted)"), str(r["gas_used"] or "-"), str(r["attest_chain_id"]),
                  esc(_short(r["contract"])))
    out = Console(soft_wrap=True)
    out.print(t)
    w = status.waiting_blocks
    out.print(f"final alerts not attested yet: {status.waiting}" + (f" (blocks {w[0]}..{w[1]})" if w else ""))


def _short(h: object) -> str:
    """A long hex value as its head and tail (0x1234abcd…9f0e)."""
    s = str(h)
    return s if len(s) <= 18 else f"{s[:10]}…{s[-4:]}"


def batch_line(r) -> str:
    """One attested batch of ``attest flush``."""
    return (f"batch {r.attested.batch_id}: {r.plan.count} alerts, blocks {r.plan.from_block}..{r.plan.to_block}, "
            f"root {esc(r.plan.root)}" + (f", tx {esc(r.attested.tx_hash)}" if r.attested.tx_hash else " (already on chain)"))


def print_verdict(verdict) -> None:
    out = Console(soft_wrap=True)
    out.print(f"alert {esc(verdict.alert_id)}")
    for c in verdict.checks:
        out.print(f"  {'[green]ok  [/green]' if c.ok else '[red]FAIL[/red]'} {esc(c.name)}: {esc(c.detail)}")
    if verdict.ok:
        out.print("[bold green]VERIFIED[/bold green]: this alert, byte for byte, is in a batch attested on chain")
    else:
        out.print("[bold red]NOT VERIFIED[/bold red]")


# --- webhooks ----------------------------------------------------------------------------------

def print_outbox(path: Path, summary: dict[str, dict[str, int]], disabled: dict[str, str], dead: list[tuple]) -> None:
    out = Console(soft_wrap=True, width=200)
    t = Table(title=f"webhook outbox {esc(path)}", title_justify="left")
    for col in ("endpoint", "pending", "delivered", "dead", "disabled"):
        t.add_column(col, justify="right" if col != "endpoint" else "left")
    for url, counts in sorted(summary.items()):
        t.add_row(esc(url) + (" [red](disabled)[/red]" if url in disabled else ""),
                  *(f"{counts.get(k, 0):,}" for k in ("pending", "delivered", "dead", "disabled")))
    out.print(t)
    if dead:
        d = Table(title="dead letters (newest first)", title_justify="left")
        for col in ("event id", "endpoint", "type", "attempts", "last status", "last error"):
            d.add_column(col)
        for e, u, ty, n, st, le in dead:
            d.add_row(esc(e), esc(u), esc(ty), str(n), str(st or "-"), esc(le or ""))
        out.print(d)
    for url, why in disabled.items():
        out.print(f"[red]disabled[/red] {esc(url)}: {esc(why)}; resume with: mevwatch webhooks enable {esc(url)}")


# --- dashboards --------------------------------------------------------------------------------

def print_panel_checks(results) -> int:
    """The table of panel query results; returns how many failed or returned nothing."""
    t = Table(title="dashboard panels", title_justify="left")
    for col in ("dashboard", "panel", "source", "series / rows"):
        t.add_column(col)
    bad = 0
    for r in results:
        ok = r.results > 0
        bad += not ok
        t.add_row(esc(r.dashboard), esc(r.panel), esc(r.source), str(r.results) if r.error is None else f"[red]{esc(r.error)}[/red]",
                  style=None if ok else "yellow")
    Console(soft_wrap=True, width=200).print(t)
    return bad


# --- model -------------------------------------------------------------------------------------

def print_eval(rep) -> None:
    t = Table(title="attacks found (landed, lab ground truth)", title_justify="left")
    for col in ("variant", "stage", "landed", "model recall", "rules recall"):
        t.add_column(col)
    for v, st, n, mf, rf in rep.per_variant:
        t.add_row(esc(v), esc(st), str(n), f"{mf / n if n else 1:.3f}", f"{rf / n if n else 1:.3f}")
    Console(soft_wrap=True).print(t)
    err.print("model precision on attacker legs: " + ", ".join(f"{esc(k)} {v:.3f}" for k, v in rep.attacker_precision.items()))


def print_rows(names: list[str], rows: list[list], fmt: str) -> None:
    """Query results on stdout: a table (values escaped: they are data), JSON lines or TSV."""
    import orjson

    if fmt == "json":
        for r in rows:
            sys.stdout.write(orjson.dumps(dict(zip(names, r)), default=str).decode() + "\n")
        return
    if fmt == "tsv":
        def cell(v: object) -> str:
            return str(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
        sys.stdout.write("\t".join(names) + "\n")
        for r in rows:
            sys.stdout.write("\t".join(cell(v) for v in r) + "\n")
        return
    t = Table()
    for n in names:
        t.add_column(esc(n))
    for r in rows:
        t.add_row(*(esc(str(v)) for v in r))
    Console(soft_wrap=True).print(t)
    err.print(f"{len(rows)} row{'s' if len(rows) != 1 else ''}")
