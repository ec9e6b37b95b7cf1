"""``mevwatch export``: recorded blocks in other formats (``export parquet``: a cryo dataset)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mevwatch.monitor.cli.main import USAGE, OptionError, err, handled, state

export_app = typer.Typer(help="Convert recorded blocks to other formats (parquet: a cryo dataset).", no_args_is_help=True)


@export_app.command("parquet")
@handled(USAGE)
def parquet(
    inputs: Annotated[list[Path], typer.Argument(help="Files or folders: mev-inspect .json/.json.gz blocks or mevwatch .jsonl/.jsonl.gz recordings (their blocks; pending transactions and reverts are not part of cryo).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the dataset (created; must not hold .parquet files yet).")],
    fmt: Annotated[str, typer.Option("--format", help="auto (by file name), mev-inspect or jsonl.")] = "auto",
    chain: Annotated[str, typer.Option("--chain", help="Network name that starts the file names, as cryo's (ethereum__blocks__...).")] = "ethereum",
    chunk_size: Annotated[int, typer.Option("--chunk-size", help="Block numbers per file (aligned ranges, as cryo's --chunk-size).")] = 1000,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary.")] = False,
) -> None:
    """Write recorded blocks as a cryo parquet dataset (blocks, transactions, logs, traces), which
    `mevwatch replay DIR` reads back with the same alerts (docs/cryo.md).

    Inputs should be in block order (a folder of mev-inspect files named by block number is). A
    block given twice (a reorganisation in a recording) is written once, the later one. One bad
    input costs one input: a file or line that cannot be read, or a block whose values do not fit
    cryo's columns, is named and skipped; the exit code is then 1 (2: could not start).
    """
    from mevwatch.monitor.cli.output import esc, progress
    from mevwatch.monitor.errors import EnvelopeError, InputError
    from mevwatch.monitor.types import Block
    from mevwatch.streams.cryo import CryoWriter
    from mevwatch.streams.files import discover, iter_jsonl, read_mev_inspect

    if fmt == "cryo":
        raise OptionError("--format cryo: the inputs of export are mev-inspect or jsonl files")
    found = discover(inputs, fmt)
    cryo_inputs = [p for p, f in found if f == "cryo"]
    if cryo_inputs:
        raise OptionError(f"{cryo_inputs[0]}: already parquet; export reads mev-inspect and jsonl files")
    if out.exists() and not out.is_dir():
        raise OptionError(f"--out {out}: not a folder")
    if out.is_dir() and any(p.name.lower().endswith(".parquet") for p in out.iterdir()):
        raise OptionError(f"--out {out}: already holds .parquet files; choose an empty folder")
    try:
        writer = CryoWriter(out, chain, chunk_size)
    except OSError as exc:
        raise OptionError(f"--out {out}: cannot create: {exc.strerror or exc}") from None
    except InputError as exc:
        raise OptionError(str(exc)) from None
    chain_id = state.settings.chain_id
    problems: list[str] = []
    skipped = 0  # pending transactions and revert events of recordings (not part of cryo)
    total = sum(1 for _, f in found if f == "mev-inspect") or None

    def add(block: Block, source: str, position: str | None) -> None:
        try:
            writer.add(block)
        except InputError as exc:
            problems.append(f"{source}" + (f" at {position}" if position else "") + f": {exc}")

    with progress("export", "blocks", total, show=not quiet and err.is_terminal, transient=True) as update:
        for path, f in found:
            if f == "mev-inspect":
                try:
                    block = read_mev_inspect(path, chain_id)
                except InputError as exc:
                    problems.append(str(exc))
                else:
                    add(block, str(path), None)
                update(advance=1)
                continue
            n = 0
            try:
                for n, msg in iter_jsonl(path):
                    if isinstance(msg, EnvelopeError):
                        problems.append(str(msg))
                    elif isinstance(msg, Block):
                        add(msg, str(path), f"line {n}")
                        update(advance=1)
                    else:
                        skipped += 1
            except InputError as exc:  # the rest of this file is unreadable: the lines before it stand
                problems.append(f"{exc} (after line {n})")
        try:
            summary = writer.close()
        except InputError as exc:
            raise OptionError(str(exc)) from None
    if not quiet:
        err.print(f"wrote {summary.blocks:,} blocks in {len(summary.files):,} files to {esc(out)}"
                  + (f"; {summary.replaced:,} blocks given twice (the later kept)" if summary.replaced else "")
                  + (f"; {skipped:,} pending transactions and reverts left out" if skipped else ""))
    for p in problems[:10]:
        err.print(f"[yellow]rejected:[/yellow] {esc(p)}")
    if len(problems) > 10:
        err.print(f"[yellow]... and {len(problems) - 10} more rejected inputs[/yellow]")
    if problems:
        if quiet:
            err.print(f"{len(problems):,} rejected inputs")
        raise typer.Exit(1)
