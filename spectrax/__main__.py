"""``python -m spectrax``: the ``spectrax`` command without its console script."""

from spectrax.cli import main

raise SystemExit(main())
