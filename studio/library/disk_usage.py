"""How much disk a folder takes: the model manager's sizes (the Hugging Face cache, OpenVINO conversions)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["disk_usage"]


def disk_usage(folder: Path) -> int:
    """Bytes of the regular files under `folder`, each file counted once (hard links, and the snapshot
    symlinks that point at blobs, add nothing); partial `.incomplete` files count too."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, _dirs, files in os.walk(folder):  # os.walk does not follow symlinked folders
        for name in files:
            try:
                info = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            total += info.st_size
    return total
