"""``python -m monitor.cli``: the same as the ``mevwatch`` console script."""

from mevwatch.monitor.cli import app

if __name__ == "__main__":  # pragma: no cover
    app()
