"""The simulation lab: ``demo`` (the lab monitored live) and ``sim export`` (a labelled dataset)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mevwatch.monitor.cli.main import err, handled
from mevwatch.monitor.cli.output import esc

sim_app = typer.Typer(help="The simulation lab: real AMM contracts and attack bots on anvil, with ground truth.",
                      no_args_is_help=True)


@handled()
def demo(
    blocks: Annotated[int, typer.Option("--blocks", help="Blocks to simulate.", min=1)] = 60,
    block_time: Annotated[float, typer.Option("--block-time", help="Seconds per block (0: as fast as the lab can go).", min=0)] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the lab's market and traders.")] = 5,
    out: Annotated[Path, typer.Option("--out", help="Folder for alerts, the recording, the ground truth, the chDB store and the embedded chain.")] = Path(".mevwatch/demo"),
    no_attest: Annotated[bool, typer.Option("--no-attest", help="Do not attest final alerts on the embedded chain.")] = False,
) -> None:
    """Run the simulation lab on a local anvil and monitor it live; then score the alerts against the ground truth.

    Honest traders, a sandwich bot (some attacks split over two accounts), an arbitrageur
    between two venues and a copier that front-runs bounty claims act on the real mempool; mevwatch follows the node, raises pending alerts (exposed swaps, sandwich
    attempts) and included sandwiches, stores every stage in embedded chDB, attests the
    final alerts on an embedded chain, and finally prints precision and recall. Ctrl-C
    stops it cleanly; anvil is always shut down.
    """
    from rich.console import Console

    from mevwatch.monitor.cli.output import print_demo
    from mevwatch.monitor.demo import run_demo

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # piped or logged: no wrapping of table rows
    result = run_demo(blocks=blocks, seed=seed, out_dir=out, console=console, block_time=block_time, attest=not no_attest)
    print_demo(console, result, out)
    if result.interrupted:
        raise typer.Exit(130)


@sim_app.command("export")
@handled()
def sim_export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for recording.jsonl, labels.jsonl and manifest.json.")],
    blocks: Annotated[int, typer.Option("--blocks", help="Blocks to simulate.", min=1)] = 30,
    seed: Annotated[int, typer.Option("--seed", help="Seed: the same seed gives the same transactions and labels.")] = 0,
    honest_only: Annotated[bool, typer.Option("--honest-only", help="No attack bots (a control run).")] = False,
    family: Annotated[list[str], typer.Option("--family", help="Lab v2: bot families and honest look-alikes to run (repeat or comma-separate; 'train' and 'heldout' name the default sets; see docs/lab.md). Without it: the classic lab.")] = [],  # noqa: B006
    ranges: Annotated[str, typer.Option("--ranges", help="Lab v2: draw the families' parameters from their 'train' or 'heldout' ranges (held-out ranges lie outside the training ones).")] = "train",
) -> None:
    """Run the lab on a fresh anvil and export a labelled dataset, replayable with `mevwatch replay`."""
    from mevwatch.monitor.cli.output import progress
    from mevwatch.monitor.errors import InputError
    from mevwatch.sim.export import export
    from mevwatch.sim.families import parse_families

    families = parse_families(family)
    if ranges not in ("train", "heldout"):
        raise InputError(f"--ranges must be train or heldout, not {ranges!r}")
    if family and not any(f.role == "attack" for f in families) and not honest_only:
        err.print("note: no attack family named: an honest-only run")
    with progress("simulating", "blocks", blocks, show=err.is_terminal, transient=True, remaining=False) as update:
        result = export(out, blocks=blocks, seed=seed, attacks=not honest_only, on_round=lambda _r, _m: update(advance=1),
                        families=families or None, ranges=ranges)
    landed = sum(1 for a in result.attacks if a.outcome == "landed")
    err.print(f"exported {blocks} blocks, {result.honest_txs} honest swaps, {len(result.attacks)} attacks "
              f"({landed} landed) to {esc(out)}; replay with: mevwatch replay {esc(out / 'recording.jsonl')}")
