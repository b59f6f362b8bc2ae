"""The studio window driven like a user would: keyboard, real worker thread, real tiny model, real files."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication, QPlainTextEdit

from studio.library.metadata import read_metadata


@pytest.fixture
def make_window(qtbot, tmp_path, tiny_sd1):
    from studio.engine import Engine
    from studio.ui.main_window import MainWindow

    made = []

    def make(model=None, **kw):
        window = MainWindow(
            model=str(model or tiny_sd1),
            output_dir=tmp_path / "out",
            preferences_file=tmp_path / "prefs.json",
            engine_factory=lambda: Engine(device="cpu", preview="linear"),
            qsettings=QSettings(str(tmp_path / "window.ini"), QSettings.Format.IniFormat),
            **kw,
        )
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        made.append(window)
        return window

    yield make
    for window in made:
        window.close()


def fast(window, steps=4, scheduler="DDIM"):
    p = window.parameters
    p.steps.setValue(steps)
    p.width.setValue(64)
    p.height.setValue(64)
    p.scheduler.setCurrentText(scheduler)


def test_type_a_prompt_and_generate_with_ctrl_return(make_window, qtbot, tmp_path):
    window = make_window()
    fast(window, steps=4)
    qtbot.waitUntil(lambda: QApplication.focusWidget() is not None)
    editor = QApplication.focusWidget()
    assert isinstance(editor, QPlainTextEdit), "the prompt editor has keyboard focus when the window opens"
    editor.selectAll()
    qtbot.keyClicks(editor, "a tiny red fox, watercolor")
    steps = []
    window.service.step.connect(lambda job, step, total, image, rate, eta: steps.append((step, total, image.isNull())))
    with qtbot.waitSignal(window.service.job_finished, timeout=60_000):
        qtbot.keyClick(editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert steps == [(1, 4, False), (2, 4, False), (3, 4, False), (4, 4, False)]
    assert window.preview.steps_shown == 4
    assert "\n" not in window.prompt_editor.prompt()  # Ctrl+Return generated, it did not type a newline
    [result] = window.results.results()
    assert result.path.is_file() and result.path.is_relative_to(tmp_path / "out")
    meta = read_metadata(result.path)
    assert meta.prompt == "a tiny red fox, watercolor" and meta.steps == 4
    assert window.prompt_editor.history()[0][0] == "a tiny red fox, watercolor"
    # The status bar says what "Auto" came to, once an image was made.
    assert "Auto (cpu)" in window.status_model.text() and "Auto (float32)" in window.status_model.text()


def test_escape_cancels_the_running_job(make_window, qtbot):
    window = make_window()
    fast(window, steps=200)
    window.prompt_editor.set_prompts("a slow one")

    def on_step(job, step, total, image, rate, eta):
        if step == 2:
            qtbot.keyClick(window, Qt.Key.Key_Escape)

    window.service.step.connect(on_step)
    with qtbot.waitSignal(window.service.job_cancelled, timeout=60_000):
        window.act_generate.trigger()
    assert window.preview.steps_shown < 10
    assert window.results.count() == 0
    assert "Cancelled" in window.preview.progress.format()


def test_a_failing_job_is_reported_and_the_next_one_runs(make_window, qtbot, tmp_path):
    window = make_window()
    fast(window)
    window.parameters.add_local_model(str(tmp_path / "no-such-model"))
    with qtbot.waitSignal(window.service.job_failed, timeout=60_000) as failed:
        window.act_generate.trigger()
    assert "no-such-model" in failed.args[1]
    assert "failed" in window.statusBar().currentMessage()
    assert "no-such-model" in window.preview.caption.text()
    window.parameters.model.setCurrentIndex(window.parameters.model.findData(window.parameters.local_models()[0]))
    fast(window)
    with qtbot.waitSignal(window.service.job_finished, timeout=60_000):
        window.act_generate.trigger()
    assert window.results.count() == 1


def test_reuse_parameters_and_seed_from_a_result(make_window, qtbot):
    window = make_window()
    fast(window, steps=3)
    window.prompt_editor.set_prompts("castle on a hill", "fog")
    with qtbot.waitSignal(window.service.job_finished, timeout=60_000):
        window.act_generate.trigger()
    seed = window.results.current().seed
    window.parameters.steps.setValue(17)
    window.prompt_editor.set_prompts("something else", "")
    window.act_reuse.trigger()
    assert window.parameters.steps.value() == 3
    assert (window.prompt_editor.prompt(), window.prompt_editor.negative_prompt()) == ("castle on a hill", "fog")
    assert window.parameters.seed.text() == str(seed) and window.parameters.seed_mode.currentData() == "fixed"
    window.act_to_canvas.trigger()
    assert window.canvas.has_image()


def test_preferences_and_layout_persist_across_restarts(make_window, tmp_path):
    window = make_window()
    fast(window, steps=9)
    window.parameters.batch.setValue(3)
    window.prompt_editor.set_prompts("kept prompt", "kept negative")
    window.resize(780, 560)  # within the offscreen screen (800x600): restoreGeometry clamps to the screen
    window.splitter.setSizes([250, 300, 230])
    sizes = window.splitter.sizes()
    window.close()
    again = make_window()
    assert again.parameters.steps.value() == 9 and again.parameters.batch.value() == 3
    assert (again.parameters.width.value(), again.parameters.height.value()) == (64, 64)
    assert again.prompt_editor.prompt() == "kept prompt"
    assert again.splitter.sizes() == sizes
    assert again.size() == window.size()


def test_local_sd2_file_defaults_follow_its_prediction_type(make_window, tmp_path):
    """A 768-v file gets 768 px; with a YAML beside it saying eps (512-base), choosing it again gives 512."""
    from studio.engine.tiny import build_tiny_pipeline
    from tests.engine.ldm_export import pipeline_to_ldm, save_safetensors

    path = save_safetensors(pipeline_to_ldm(build_tiny_pipeline("sd2", seed=4), "sd2"), tmp_path / "m.safetensors")
    p = make_window().parameters
    p.add_local_model(str(path))
    assert (p.family(), p.width.value(), p.presets.itemData(1)) == ("sd2", 768, (768, 768))
    (tmp_path / "m.yaml").write_text("parameterization: eps\n", encoding="utf-8")
    p.model.setCurrentIndex(0)
    p.add_local_model(str(path))
    assert (p.family(), p.width.value(), p.presets.itemData(1)) == ("sd2", 512, (512, 512))


def test_model_defaults_and_size_rule(make_window, qtbot):
    window = make_window(model="deci-diffusion-1.0")
    p = window.parameters
    assert (p.steps.value(), p.guidance.value(), p.width.value()) == (30, 7.5, 512)
    p.width.setValue(520)
    assert "multiples of 64" in p.size_problem()
    jobs_before = len(window.service.jobs())
    window.act_generate.trigger()
    assert len(window.service.jobs()) == jobs_before  # refused before queueing
    assert "multiples of 64" in window.statusBar().currentMessage()
    p.model.setCurrentIndex(p.model.findData("sd-2.1"))
    assert p.width.value() == 768


def test_about_lists_versions():
    from studio.ui.main_window import about_text

    text = about_text()
    assert "torch" in text and "diffusers" in text and "Qt " in text


def test_dropping_an_image_with_metadata_offers_to_restore_it(make_window, qtbot, tmp_path):
    from PIL import Image, PngImagePlugin
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent
    from PySide6.QtWidgets import QMessageBox

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a foggy harbour\nNegative prompt: text\nSteps: 23, Sampler: Euler a, CFG scale: 6, "
                  "Seed: 4242, Size: 64x64, Model: someones_model")
    png = tmp_path / "a1111.png"
    Image.new("RGB", (64, 64)).save(png, pnginfo=info)
    window = make_window()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(png))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    box = window.findChild(QMessageBox)
    assert box is not None and "a1111" in box.text()
    box.button(QMessageBox.StandardButton.Yes).click()
    assert window.prompt_editor.prompt() == "a foggy harbour"
    assert window.parameters.steps.value() == 23 and window.parameters.seed.text() == "4242"
    assert window.parameters.model_spec() == str(window.parameters.local_models()[0])  # foreign model not added
    assert "not available here" in window.statusBar().currentMessage()
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    assert window.offer_restore(plain) is None
    assert "no generation parameters" in window.statusBar().currentMessage()


def test_generated_images_appear_in_the_gallery_and_restore_parameters(make_window, qtbot, tmp_path):
    window = make_window(gallery_db=tmp_path / "gallery.sqlite3", thumbnail_dir=tmp_path / "thumbs")
    fast(window, steps=3)
    window.prompt_editor.set_prompts("a copper kettle on a stove", "smoke")
    with qtbot.waitSignal(window.service.job_finished, timeout=60_000):
        window.act_generate.trigger()
    seed = window.results.current().seed
    window.act_gallery.trigger()
    view = window.gallery_view
    assert window.tabs.currentIndex() == 1 and view is not None
    qtbot.waitUntil(lambda: view.model.rowCount() == 1, timeout=20_000)
    view.grid.setCurrentIndex(view.model.index(0, 0))
    window.prompt_editor.set_prompts("something else", "")
    window.parameters.steps.setValue(40)
    view.act_reuse.trigger()
    assert window.prompt_editor.prompt() == "a copper kettle on a stove"
    assert window.parameters.steps.value() == 3 and window.parameters.seed.text() == str(seed)
