"""The GUI thread's longest stall while the window generates: a 5 ms QTimer probe. Target < 30 ms.

The full window runs a realistic-width random SD 1.x pipeline (bench.realistic) through the worker
thread with a preview every step; the probe records the gap between timer ticks on the GUI thread.
Env: BENCH_SIZE (default 256), BENCH_STEPS (default 6).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from studio.ui.main_window import MainWindow

    size = int(os.environ.get("BENCH_SIZE", 256))
    steps = int(os.environ.get("BENCH_STEPS", 6))

    def engine_factory():
        from bench.realistic import build_random_pipeline
        from studio.engine import Engine

        engine = Engine(device="cpu", preview="linear")
        engine.add_pipeline("random-sd1", build_random_pipeline("sd1"), "sd1")
        return engine

    app = QApplication.instance() or QApplication(sys.argv[:1])
    tmp = Path(tempfile.mkdtemp())
    window = MainWindow(
        model="random-sd1", output_dir=tmp / "out", preferences_file=tmp / "prefs.json",
        engine_factory=engine_factory, qsettings=QSettings(str(tmp / "w.ini"), QSettings.Format.IniFormat),
    )
    window.show()
    p = window.parameters
    p.steps.setValue(steps)
    p.width.setValue(size)
    p.height.setValue(size)
    p.scheduler.setCurrentText("DDIM")
    window.prompt_editor.set_prompts("a lighthouse at dusk")

    gaps: list[float] = []
    last = [time.perf_counter()]
    measuring = [False]
    events: list[tuple[float, str]] = []  # what the GUI thread last heard, to say where a stall happened
    long_gaps: list[tuple[float, str]] = []

    load_gaps: list[float] = []

    def tick() -> None:
        now = time.perf_counter()
        if measuring[0]:
            gap = (now - last[0]) * 1000 - 5.0
            generating = any(e[1].startswith(("status Generating", "step")) for e in events)
            (gaps if generating else load_gaps).append(gap)
            if gap > 30:
                long_gaps.append((gap, events[-1][1] if events else "-"))
        last[0] = now

    for name in ("job_started", "step", "image_saved", "job_finished", "status"):
        getattr(window.service, name).connect(lambda *a, n=name: events.append((time.perf_counter(), f"{n} {a[-1] if n == 'status' else ''}")))

    probe = QTimer(interval=5)
    probe.timeout.connect(tick)
    probe.start()
    step_times: list[float] = []
    window.service.step.connect(lambda *a: step_times.append(time.perf_counter()))
    window.service.job_started.connect(lambda _j: measuring.__setitem__(0, True))
    window.service.job_finished.connect(lambda _j: (measuring.__setitem__(0, False), app.quit()))
    window.service.job_failed.connect(lambda _j, m: (print("failed:", m), app.quit()))
    QTimer.singleShot(100, window.act_generate.trigger)
    app.exec()
    probe.stop()
    window.close()
    if gaps:
        print(f"{size}px, {steps} steps: {len(step_times)} previews shown; probe ticks {len(gaps)}")
        print(f"GUI stall while generating: max {max(gaps):.1f} ms, p99 {sorted(gaps)[int(len(gaps) * 0.99) - 1]:.1f} ms, "
              f"median {statistics.median(gaps):.1f} ms (target max < 30 ms)")
    if load_gaps:
        print(f"GUI stall while the worker builds the random model (not a disk load): max {max(load_gaps):.1f} ms")
        for gap, after in long_gaps:
            print(f"  stall {gap:.0f} ms after: {after}")


if __name__ == "__main__":
    main()
