"""Allow ``python -m overlord``."""

from overlord.cli import main

main()
