"""``python -m monitor.cli``: the same as the ``mevwatch`` console script."""

from monitor.cli import app

if __name__ == "__main__":  # pragma: no cover
    app()
