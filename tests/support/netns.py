"""Test-side names for the namespace helpers (they live in ``lab.netns``, shared with the lab)."""

from __future__ import annotations

import os
import shutil

import pytest

from lab.netns import Lab, run

__all__ = ["Lab", "need_root", "run"]


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces and writes kernel routing tables")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2 (`ip`)")
