"""`python -m perceiver_hf demo`: the same as the `perceiver-hf` command."""

import sys

from .cli import main

sys.exit(main())
