"""The open gallery on a 10,000-image library: first grid page shown, and memory. Targets < 300 ms, < 300 MB.

The catalogue is scanned beforehand (bench.gallery's generated set); the timer runs from creating the
service and view to the first page of rows being laid out and painted with the view on screen.
Memory is the process's resident size (VmRSS) after scrolling through the whole grid once, thumbnails
made, as an artist would.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from bench.gallery import dataset
    from studio.library.gallery import Gallery
    from studio.ui.gallery_view import GalleryView
    from studio.worker.gallery import GalleryService

    n = int(os.environ.get("BENCH_N", 10_000))
    folder = dataset(n)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory(prefix="latent-studio-bench-ui-") as tmp:
        db = Path(tmp) / "gallery.sqlite3"
        with Gallery(db) as gallery:
            gallery.add_folder(folder)
            gallery.scan()
        before = rss_mb()
        start = time.perf_counter()
        service = GalleryService(db, Path(tmp) / "thumbs")
        view = GalleryView(service)
        view.resize(1200, 800)
        view.show()
        while view.model.rowCount() == 0 and time.perf_counter() - start < 10:
            app.processEvents()
        view.grid.viewport().repaint()
        first_page = (time.perf_counter() - start) * 1000
        rows = view.model.rowCount()
        # Scroll through everything once, fetching pages and requesting thumbnails as they are painted.
        bar = view.grid.verticalScrollBar()
        scroll_start = time.perf_counter()
        while view.model.canFetchMore():
            view.model.fetchMore()
            bar.setValue(bar.maximum())
            app.processEvents()
        for value in range(0, bar.maximum() + 1, max(1, view.grid.viewport().height())):
            bar.setValue(value)
            view.grid.viewport().repaint()
            app.processEvents()
        scrolled = time.perf_counter() - scroll_start
        deadline = time.perf_counter() + 120
        while time.perf_counter() < deadline:  # let the thumbnail pool drain
            app.processEvents()
            time.sleep(0.01)
            if not getattr(service, "_thumb_pending", None):
                break
        after = rss_mb()
        print(f"gallery of {n} images: first grid page shown in {first_page:.0f} ms ({rows} rows; target < 300 ms)")
        print(f"scrolled through all {view.model.rowCount()} rows in {scrolled:.1f} s")
        print(f"memory: {after:.0f} MB resident with the gallery open after a full scroll "
              f"({after - before:+.0f} MB for the gallery; target < 300 MB)")
        view.close()
        service.shutdown()


if __name__ == "__main__":
    main()
