"""The ``mevwatch`` command line (console script ``mevwatch = monitor.cli:app``).

One module per command group; the commands parse options and call library functions.
:mod:`monitor.cli.main` holds the app, the global options and the one error handler
(:func:`~monitor.cli.main.handled`); :mod:`monitor.cli.output` everything that is printed.
Heavy libraries (torch, web3, chDB) are imported inside the commands, so ``--help`` is fast.

The commands are registered here, in the order ``mevwatch --help`` lists them.
"""

from __future__ import annotations

from mevwatch.monitor.cli import attest, daemon, dashboards, demo, doctor, export, model, replay, store, stream, webhooks
from mevwatch.monitor.cli.main import app, version

app.command()(version)
app.command()(replay.replay)
app.add_typer(export.export_app, name="export")
app.command()(stream.ingest)
app.command()(stream.record)
app.command()(stream.tail)
app.command()(demo.demo)
app.command()(daemon.run)
app.command()(doctor.doctor)
app.add_typer(store.db_app, name="db")
app.add_typer(webhooks.wh_app, name="webhooks")
app.command()(attest.verify)
app.add_typer(attest.attest_app, name="attest")
app.add_typer(dashboards.dash_app, name="dashboards")
app.command()(model.train)
app.command("eval")(model.evaluate_cmd)
app.add_typer(demo.sim_app, name="sim")

__all__ = ["app"]
