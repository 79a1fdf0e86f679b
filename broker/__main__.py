"""``python -m broker``: the ``supercloud`` command line."""

from broker.cli import main

main()
