"""``python -m huntbook``: the same as the ``huntbook`` command."""

from huntbook.cli import main

main()
