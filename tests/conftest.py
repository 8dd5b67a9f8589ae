from __future__ import annotations

import sys
from pathlib import Path

# The project root on sys.path so tests can import tests.support.* without installing it.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
