"""The studio window driven like a user would: keyboard, real worker thread, real tiny model, real files."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QTextCursor
from PySide6.QtWidgets import QApplication, QPlainTextEdit

from studio.library.metadata import read_metadata
from studio.viewmodel.session import SavedImage


def saved(path, image: QImage, seed: int | None, metadata: dict | None = None) -> SavedImage:
    """A result as the engine's thread reports it (for tests that put one in the strip directly)."""
    return SavedImage(0, path, image, seed, "cpu", "float32", False, metadata or {})


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
    window.session.queue.step.connect(lambda r: steps.append((r.step, r.total, r.preview.isNull())))
    with qtbot.waitSignal(window.session.queue.job_finished, timeout=60_000):
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
    ran_dtype = result.metadata["dtype"]  # float32 or bfloat16, by this CPU and STUDIO_AUTO_CPU_DTYPE
    assert "Auto (cpu)" in window.status_model.text() and f"Auto ({ran_dtype})" in window.status_model.text()
    assert result.backend == "torch" and window.status_model.text().endswith(" · Auto (PyTorch)")  # STUDIO_AUTO_BACKEND


def test_escape_cancels_the_running_job(make_window, qtbot):
    window = make_window()
    fast(window, steps=200)
    window.prompt_editor.set_prompts("a slow one")

    def on_step(report):
        if report.step == 2:
            qtbot.keyClick(window, Qt.Key.Key_Escape)

    window.session.queue.step.connect(on_step)
    with qtbot.waitSignal(window.session.queue.job_cancelled, timeout=60_000):
        window.act_generate.trigger()
    assert window.preview.steps_shown < 10
    assert window.results.count() == 0
    assert "Cancelled" in window.preview.progress.format()


def test_a_failing_job_is_reported_and_the_next_one_runs(make_window, qtbot, tmp_path):
    window = make_window()
    fast(window)
    window.session.settings.select_model(str(tmp_path / "no-such-model"))
    with qtbot.waitSignal(window.session.queue.job_failed, timeout=60_000) as failed:
        window.act_generate.trigger()
    assert "no-such-model" in failed.args[1]
    assert "failed" in window.statusBar().currentMessage()
    assert window.preview.caption.text() == "Job #1 failed"
    assert "no-such-model" in window.preview.failure.message()  # wrapped in its own panel, never clipped
    assert window.preview.failure.models_button.isVisible()  # a missing model: the model manager helps
    window.parameters.model.setCurrentIndex(window.parameters.model.findData(window.session.settings.local_models()[0]))
    fast(window)
    with qtbot.waitSignal(window.session.queue.job_finished, timeout=60_000):
        window.act_generate.trigger()
    assert window.results.count() == 1


def test_reuse_parameters_and_seed_from_a_result(make_window, qtbot):
    window = make_window()
    fast(window, steps=3)
    window.prompt_editor.set_prompts("castle on a hill", "fog")
    with qtbot.waitSignal(window.session.queue.job_finished, timeout=60_000):
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
    window = make_window()
    p, s = window.parameters, window.session.settings
    s.select_model(str(path))
    assert (s.family(), p.width.value(), p.presets.itemData(1)) == ("sd2", 768, (768, 768))
    (tmp_path / "m.yaml").write_text("parameterization: eps\n", encoding="utf-8")
    p.model.setCurrentIndex(0)
    s.select_model(str(path))
    assert (s.family(), p.width.value(), p.presets.itemData(1)) == ("sd2", 512, (512, 512))


def test_model_defaults_and_size_rule(make_window, qtbot):
    window = make_window(model="deci-diffusion-1.0")
    p = window.parameters
    assert (p.steps.value(), p.guidance.value(), p.width.value()) == (30, 7.5, 512)
    p.width.setValue(520)
    assert "multiples of 64" in window.session.settings.size_problem
    jobs_before = len(window.session.queue.jobs())
    window.act_generate.trigger()
    assert len(window.session.queue.jobs()) == jobs_before  # refused before queueing
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
    assert window.session.settings.model == str(window.session.settings.local_models()[0])  # foreign model not added
    assert "not available here" in window.statusBar().currentMessage()
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    assert window.offer_restore(plain) is None
    assert "no generation parameters" in window.statusBar().currentMessage()


def test_generated_images_appear_in_the_gallery_and_restore_parameters(make_window, qtbot, tmp_path):
    window = make_window(gallery_db=tmp_path / "gallery.sqlite3", thumbnail_dir=tmp_path / "thumbs")
    fast(window, steps=3)
    window.prompt_editor.set_prompts("a copper kettle on a stove", "smoke")
    with qtbot.waitSignal(window.session.queue.job_finished, timeout=60_000):
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


# ------------------------------------------------------------------------------ first-hour fixes (issue 10)
def _mnemonic(text: str) -> str | None:
    i = text.replace("&&", "").find("&")
    return text.replace("&&", "")[i + 1].lower() if i >= 0 and i + 1 < len(text.replace("&&", "")) else None


def visible_mnemonics(window) -> dict[str, list[str]]:
    """Alt+letter -> what it opens or focuses, for everything on screen: menus, labels, buttons."""
    from PySide6.QtWidgets import QAbstractButton, QLabel

    found: dict[str, list[str]] = {}
    for action in window.menuBar().actions():
        key = _mnemonic(action.text())
        if key:
            found.setdefault(key, []).append(f"menu {action.text()}")
    for widget in window.findChildren(QLabel) + window.findChildren(QAbstractButton):
        if not widget.isVisibleTo(window) or widget.window() is not window:
            continue
        key = _mnemonic(widget.text())
        if key:
            found.setdefault(key, []).append(f"{type(widget).__name__} {widget.text()}")
    return found


def test_no_two_mnemonics_collide(make_window):
    """Alt+G and Alt+H open the Generate and Help menus; no label takes a letter twice."""
    window = make_window()
    clashes = {k: v for k, v in visible_mnemonics(window).items() if len(v) > 1}
    assert not clashes
    keys = visible_mnemonics(window)
    assert keys["g"] == ["menu &Generate"] and keys["h"] == ["menu &Help"]


def test_a_damaged_catalogue_is_rebuilt_and_said_once_in_a_box(make_window, qtbot, tmp_path):
    from PySide6.QtWidgets import QMessageBox

    db = tmp_path / "gallery.sqlite3"
    db.write_bytes(b"not a database " * 100)
    window = make_window(gallery_db=db, thumbnail_dir=tmp_path / "thumbs")
    window.act_gallery.trigger()
    qtbot.waitUntil(lambda: window.findChild(QMessageBox, "catalogue-rebuilt") is not None, timeout=30_000)
    box = window.findChild(QMessageBox, "catalogue-rebuilt")
    aside = [p.name for p in tmp_path.iterdir() if p.name.startswith("gallery.sqlite3.damaged-")]
    assert len(aside) == 1 and aside[0] in box.text() and "ratings and favourites" in box.text()
    box.buttons()[0].click()
    with qtbot.waitSignal(window.session.gallery.scan_finished, timeout=30_000):
        window.session.gallery.scan()
    assert len(window.findChildren(QMessageBox, "catalogue-rebuilt")) == 1  # said once


def test_escape_in_the_gallery_search_does_not_cancel_the_generation(make_window, qtbot, tmp_path):
    window = make_window(gallery_db=tmp_path / "g.sqlite3", thumbnail_dir=tmp_path / "thumbs")
    fast(window, steps=200)
    window.prompt_editor.set_prompts("a slow one")
    started = []
    window.session.queue.step.connect(lambda r: started.append(r.step))
    window.act_generate.trigger()
    qtbot.waitUntil(lambda: len(started) >= 1, timeout=60_000)
    window.act_gallery.trigger()
    search = window.gallery_view.filters.search
    search.setFocus()
    qtbot.keyClicks(search, "fox")
    qtbot.keyClick(search, Qt.Key.Key_Escape)
    qtbot.keyClick(search, Qt.Key.Key_Escape)
    qtbot.keyClick(window.gallery_view.grid, Qt.Key.Key_Escape)  # Escape on the gallery page never cancels
    assert search.text() == ""
    job = window.session.queue.running_job()
    assert job is not None and not job.cancel_requested
    window.act_studio.trigger()
    with qtbot.waitSignal(window.session.queue.job_cancelled, timeout=60_000):
        qtbot.keyClick(window.prompt_editor.prompt_edit, Qt.Key.Key_Escape)  # in the studio it cancels


def test_cancelling_a_queued_job_leaves_the_running_one_alone(make_window, qtbot):
    window = make_window()
    fast(window, steps=200)
    window.prompt_editor.set_prompts("running")
    steps = []
    window.session.queue.step.connect(lambda r: steps.append((r.job_id, r.step)))
    window.act_generate.trigger()
    window.prompt_editor.set_prompts("queued one")
    window.act_generate.trigger()
    window.prompt_editor.set_prompts("queued two")
    window.act_generate.trigger()
    qtbot.waitUntil(lambda: len(steps) >= 1, timeout=60_000)
    queue = window.queue_view
    running, first, second = (j.id for j in window.session.queue.jobs())
    assert queue.select_job(first)
    qtbot.mouseClick(queue.cancel_button, Qt.MouseButton.LeftButton)
    assert [j.id for j in window.session.queue.jobs()] == [running, second]
    assert "Cancelled" not in window.preview.progress.format()  # the running job's bar is untouched
    assert queue.selected_job_id() is None and not queue.cancel_button.isEnabled()
    qtbot.mouseClick(queue.cancel_button, Qt.MouseButton.LeftButton)  # a second click cancels nothing
    assert [j.id for j in window.session.queue.jobs()] == [running, second]
    window.session.queue.cancel_all()
    qtbot.waitUntil(lambda: not window.session.queue.jobs(), timeout=60_000)


def test_the_caption_says_what_the_preview_shows(make_window, qtbot):
    window = make_window()
    fast(window, steps=3)
    window.prompt_editor.set_prompts("first image")
    with qtbot.waitSignal(window.session.queue.job_finished, timeout=60_000):
        window.act_generate.trigger()
    first_name = window.results.current().path.name
    assert window.preview.caption.text().startswith(first_name)
    captions = []
    window.session.queue.step.connect(lambda *_: captions.append(window.preview.caption.text()))
    window.prompt_editor.set_prompts("second image")
    with qtbot.waitSignal(window.session.queue.job_finished, timeout=60_000):
        window.act_generate.trigger()
    assert captions and all(c == "Job #2: second image" for c in captions)  # not the previous file's name
    assert window.preview.caption.text().startswith(window.results.current().path.name)


def test_steps_show_the_users_count_and_the_default_scheduler_is_named(make_window, qtbot):
    window = make_window()
    p = window.parameters
    qtbot.waitUntil(lambda: p.scheduler.itemText(0) == "Model default (PNDM)")  # the tiny SD 1.x folder ships PNDM
    fast(window, steps=5)
    p.scheduler.setCurrentIndex(0)
    totals = []
    window.session.queue.step.connect(lambda r: totals.append((r.step, r.total)))
    with qtbot.waitSignal(window.session.queue.job_finished, timeout=60_000):
        window.act_generate.trigger()
    assert {total for _, total in totals} == {5} and totals[-1] == (5, 5)
    assert "Step 5/5" in window.preview.progress.format() or window.preview.progress.format().startswith("Done")


def test_window_fits_small_screens(make_window, qtbot):
    from PySide6.QtCore import QRect

    window = make_window()
    for screen in (QRect(0, 0, 1280, 720), QRect(0, 0, 1024, 640)):
        window.resize(1280, 800)
        window.move(200, 100)
        window.fit_to_screen(screen)
        assert screen.contains(window.frameGeometry()) or (
            window.frameGeometry().width() <= screen.width() and window.frameGeometry().height() <= screen.height()
        )
    hint = window.minimumSizeHint()
    assert hint.width() <= 1024 and hint.height() <= 640
    window.act_left_panel.trigger()
    window.act_right_panel.trigger()
    assert not window.left_panel.isVisible() and not window.right_panel.isVisible()
    qtbot.waitUntil(lambda: window.minimumSizeHint().width() < 400)  # folded panels leave the preview the room
    window.act_left_panel.trigger()
    assert window.left_panel.isVisible()


def test_command_line_output_dir_is_for_that_run_only(make_window, tmp_path):
    import json

    window = make_window()  # made with output_dir=tmp_path / "out"
    assert window.output_path() == tmp_path / "out"
    window.close()
    assert json.loads((tmp_path / "prefs.json").read_text())["output_dir"] is None
    window.set_output_folder(tmp_path / "chosen")  # a choice in the window is remembered
    window.save_state()
    assert json.loads((tmp_path / "prefs.json").read_text())["output_dir"] == str(tmp_path / "chosen")


def test_open_output_folder_says_when_nothing_can_open_it(make_window, monkeypatch):
    from PySide6.QtGui import QDesktopServices

    window = make_window()
    monkeypatch.setattr(QDesktopServices, "openUrl", staticmethod(lambda url: False))  # a desktop without opener
    assert window.open_output_folder() is False
    assert "No file manager could open" in window.statusBar().currentMessage()
    assert QApplication.clipboard().text() == str(window.output_path())


def test_reuse_names_a_missing_model(make_window, tmp_path):
    window = make_window()
    current = window.session.settings.model
    meta = {"request": {"prompt": "a lighthouse", "steps": 12}, "seed": 5, "model": {"id": "gone", "path": str(tmp_path / "gone")}}
    window.reuse_parameters(saved(tmp_path / "x.png", QImage(), 5, meta))
    message = window.statusBar().currentMessage()
    assert str(tmp_path / "gone") in message and "not available" in message
    assert window.session.settings.model == current and window.parameters.steps.value() == 12


def test_quit_with_jobs_asks_and_the_queue_resumes_next_time(make_window, qtbot, tmp_path):
    from PySide6.QtWidgets import QMessageBox

    window = make_window()
    fast(window, steps=200)
    window.prompt_editor.set_prompts("long one")
    window.act_generate.trigger()
    window.prompt_editor.set_prompts("waiting one")
    window.act_generate.trigger()
    window.act_quit.trigger()
    box = window.findChild(QMessageBox, "quitBox")
    assert box is not None and box.isVisible() and window.isVisible()
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert window.isVisible() and len(window.session.queue.jobs()) == 2  # nothing was lost
    window.act_quit.trigger()
    box = [b for b in window.findChildren(QMessageBox, "quitBox") if b.isVisible()][-1]
    next(b for b in box.buttons() if box.buttonRole(b) == QMessageBox.ButtonRole.AcceptRole).click()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=30_000)
    assert (tmp_path / "queue.json").is_file()

    again = make_window()
    qtbot.waitUntil(lambda: again.findChild(QMessageBox, "resumeBox") is not None, timeout=5_000)
    resume = again.findChild(QMessageBox, "resumeBox")
    assert "2 jobs" in resume.text()
    next(b for b in resume.buttons() if resume.buttonRole(b) == QMessageBox.ButtonRole.AcceptRole).click()
    assert [j.request.prompt for j in again.session.queue.jobs()] == ["long one", "waiting one"]
    assert not (tmp_path / "queue.json").exists()
    again.session.queue.cancel_all()
    qtbot.waitUntil(lambda: not again.session.queue.jobs(), timeout=60_000)


def test_a_catalogue_model_not_downloaded_is_a_deliberate_download(make_window, qtbot, tmp_path):
    from PySide6.QtWidgets import QMessageBox

    window = make_window(model="sd-1.4", model_cache_dir=tmp_path / "hub")  # an empty Hugging Face cache
    qtbot.waitUntil(lambda: "Not downloaded yet" in window.parameters.model_note.text())
    window.prompt_editor.set_prompts("a fox")
    window.act_generate.trigger()
    assert window.session.queue.jobs() == []  # nothing queued to fail after a long wait
    box = window.findChild(QMessageBox, "downloadFirstBox")
    assert box is not None and "Stable Diffusion 1.4" in box.text()
    next(b for b in box.buttons() if box.buttonRole(b) == QMessageBox.ButtonRole.AcceptRole).click()
    dialog = window.models_dialog
    assert dialog is not None and dialog.isVisible() and dialog.selected() == "sd-1.4"
    assert dialog.download_button.isEnabled()


def test_theme_choice_applies_and_persists(make_window, tmp_path):
    import json

    from studio.ui.theme import is_dark

    window = make_window()
    try:
        next(a for a in window.theme_actions.actions() if a.data() == "dark").trigger()
        assert is_dark()
        window.save_state()
        assert json.loads((tmp_path / "prefs.json").read_text())["theme"] == "dark"
        next(a for a in window.theme_actions.actions() if a.data() == "light").trigger()
        assert not is_dark()
    finally:
        window.set_theme("system")


def test_help_lists_every_shortcut(make_window, qtbot):
    from studio.ui.shortcuts import ShortcutsDialog

    window = make_window()
    window.act_shortcuts.trigger()
    dialog = window.findChild(ShortcutsDialog)
    assert dialog is not None
    rows = dialog.rows()
    flat = {text: keys for group in rows.values() for text, keys in group}
    assert flat["Generate"].startswith("Ctrl+Return") and flat["Cancel"] == "Esc"
    assert flat["Keyboard shortcuts"] == "F1" and "Queue" in rows
    dialog.close()


# ----------------------------------------------------------------- hostile metadata text (fuzzing issue)
HOSTILE_PROMPT = "p\x1b[31mRED \x1b]0;title\x07 \u202eevil.exe"
HOSTILE_NEGATIVE = "neg\x08\x9b"


def _hostile_png(folder):
    """A real PNG as another tool could write it: terminal escapes, a bell, a bidi override and C1
    controls in the prompts, HTML and an escape in the model name, an escape in the file name."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt(
        "parameters",
        f"{HOSTILE_PROMPT}\nNegative prompt: {HOSTILE_NEGATIVE}\n"
        "Steps: 21, Seed: 77, CFG scale: 6, Size: 64x64, Model: <b>bold</b>\x1b[2J",
    )
    path = folder / "ev\x1bil.png"
    Image.new("RGB", (64, 64)).save(path, pnginfo=info)
    return path


def test_restoring_hostile_metadata_shows_it_harmlessly(make_window, tmp_path):
    from PySide6.QtWidgets import QMessageBox

    window = make_window()
    box = window.offer_restore(_hostile_png(tmp_path))
    assert box is not None
    assert box.textFormat() == Qt.TextFormat.PlainText  # "<b>bold</b>" is shown, not rendered
    shown = box.text()
    assert "\x1b" not in shown and "ev\\x1bil.png" in shown and "model <b>bold</b>\\x1b[2J" in shown
    assert shown.replace("\n", "").isprintable()  # the box's own line break, nothing else unprintable
    box.button(QMessageBox.StandardButton.Yes).click()
    # The prompts keep every character a user could have meant; what acts on a terminal or reorders
    # text is gone (ESC twice, BEL, RLO; BS and the C1 CSI), and the status bar says how many went.
    assert window.prompt_editor.prompt() == "p[31mRED ]0;title evil.exe"
    assert window.prompt_editor.negative_prompt() == "neg"
    assert window.parameters.steps.value() == 21 and window.parameters.seed.text() == "77"
    message = window.statusBar().currentMessage()
    assert "6 control characters removed from the prompts" in message
    assert "\x1b" not in message and "ev\\x1bil.png" in message and "'<b>bold</b>\\x1b[2J'" in message


def test_applied_fields_from_the_gallery_are_cleaned_the_same_way(make_window):
    window = make_window()
    text = window.apply_image_fields({"prompt": "a\u2066b\u2069c\r\nd\x1b", "negative_prompt": 42, "steps": 9}, "the gallery")
    assert window.prompt_editor.prompt() == "abc\nd" and window.prompt_editor.negative_prompt() == ""
    assert window.parameters.steps.value() == 9
    assert text.endswith("; 3 control characters removed from the prompts")
    clean = window.apply_image_fields({"prompt": "plain\ttext"}, "x.png")
    assert clean == "Parameters restored from x.png" and window.prompt_editor.prompt() == "plain\ttext"


def test_captions_and_tooltips_show_file_text_literally(make_window, tmp_path):
    from PySide6.QtGui import QImage

    window = make_window()
    image = QImage(8, 8, QImage.Format.Format_RGB32)
    path = tmp_path / "<b>x</b>\x1b[31m.png"
    window.results.add_result(saved(path, image, 5))
    tip = window.results.item(0).toolTip()
    assert "\x1b" not in tip and "&lt;b&gt;x&lt;/b&gt;\\x1b[31m.png" in tip  # escaped: not rendered as HTML
    window.preview.show_result(image, "<i>caption</i>\x07\u202e\nsecond line")
    caption = window.preview.caption
    assert caption.textFormat() == Qt.TextFormat.PlainText
    assert caption.text() == "<i>caption</i>\\x07\\u202e second line"
    assert "&lt;i&gt;" in caption.toolTip() and "\x07" not in caption.toolTip()
    window.preview.start("Starting…", "Job #1: a\x1b[2Jb")
    assert caption.text() == "Job #1: a\\x1b[2Jb"


HTML_PAYLOAD = '<img src="/dev/null"><b>bold</b>'
"""Rendered as HTML, Qt would read /dev/zero for the image and abort (std::bad_alloc): these tests
check formats and escaping only, formats before the text arrives, and never hover a tooltip."""


def test_html_from_files_is_never_rendered_in_the_window(make_window, tmp_path):
    from PIL import Image, PngImagePlugin
    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QMessageBox

    window = make_window()
    plain = Qt.TextFormat.PlainText
    parameters = window.parameters
    labels = (window.status_model, parameters.model_note, parameters.size_note, window.preview.caption)
    assert all(label.textFormat() == plain for label in labels)

    # A local model whose folder name looks like HTML: the status bar's model label shows it.
    model_dir = tmp_path / "<b>model"
    window.session.settings.select_model(str(model_dir))
    assert window.status_model.text().startswith("<b>model  (local) · ")

    # An image dropped on the window: its prompt and model name are markup.
    info = PngImagePlugin.PngInfo()
    parameters = f"{HTML_PAYLOAD}\nSteps: 9, Seed: 5, CFG scale: 6, Size: 64x64, Model: {HTML_PAYLOAD}"
    info.add_itxt("parameters", parameters)
    png = tmp_path / "<b>page.png"
    Image.new("RGB", (64, 64)).save(png, pnginfo=info)
    box = window.offer_restore(png)
    assert box is not None and box.textFormat() == plain
    assert box.text().startswith("<b>page.png was made with") and f"model {HTML_PAYLOAD}" in box.text()
    box.button(QMessageBox.StandardButton.Yes).click()
    assert window.prompt_editor.prompt() == HTML_PAYLOAD  # a plain-text editor: the text as written
    message = window.statusBar().currentMessage()  # the status bar paints plain text
    assert f"model '{HTML_PAYLOAD}', which is not available here" in message and "\n" not in message

    # A result saved under folders whose names join into markup.
    folder = tmp_path / '<img src="' / "dev" / 'null">'
    window.results.add_result(saved(folder / "r.png", QImage(8, 8, QImage.Format.Format_RGB32), 7))
    item = window.results.item(0)
    tip = item.toolTip()
    assert item.text() == "7" and tip.startswith("<p style='white-space:pre-wrap'>")
    assert "<img" not in tip and "&lt;img src=&quot;/dev/null&quot;&gt;/r.png<br>seed 7" in tip


def test_status_messages_are_one_line_with_control_characters_shown(make_window):
    window = make_window()
    window.show_message("Cannot read a\x1b[2Jb.png:\nno such file\u202e")
    assert window.statusBar().currentMessage() == "Cannot read a\\x1b[2Jb.png: no such file\\u202e"


def test_lora_browser_beside_the_prompt_inserts_and_keeps_its_folders(make_window, qtbot, tmp_path, monkeypatch):
    from studio.library.paths import embeddings_dir, loras_dir
    from tests.viewmodel.test_network_browser import embedding, lora

    monkeypatch.setenv("LATENT_STUDIO_DATA", str(tmp_path / "data"))
    lora(loras_dir() / "watercolor.safetensors")
    embedding(embeddings_dir() / "shiny.safetensors", vectors=3)
    comfy = tmp_path / "ComfyUI" / "models" / "loras"
    lora(comfy / "film.safetensors")
    window = make_window()
    browser = window.network_browser
    assert browser.wait_for_scan() and sorted(i.name for i in browser.all_items()) == ["shiny", "watercolor"]
    assert window.left_tabs.currentIndex() == 0  # the parameters first
    qtbot.keyClick(window, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert window.left_tabs.currentWidget() is window.network_panel
    qtbot.waitUntil(lambda: window.network_panel.search.hasFocus())
    # the token counter counts the embedding's vectors
    window.prompt_editor.set_prompts("a shiny cat")
    qtbot.waitUntil(lambda: window.prompt_editor.prompt_counter.text() == "5 / 75 tokens")
    # a click inserts at the prompt's cursor; Ctrl+Up weights the LoRA
    window.prompt_editor.prompt_edit.moveCursor(QTextCursor.MoveOperation.End)
    grid = window.network_panel.grid
    qtbot.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton, pos=grid.visualRect(grid.model().index(0)).center())
    assert window.prompt_editor.prompt() == "a shiny cat <lora:watercolor:1>"
    qtbot.keyClick(window.prompt_editor.prompt_edit, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    assert window.prompt_editor.prompt() == "a shiny cat <lora:watercolor:1.1>"
    with qtbot.waitSignal(browser.scan_finished, timeout=5000):
        assert browser.add_folder("lora", comfy)
    assert "film" in [i.name for i in browser.all_items()]
    window.close()
    again = make_window()
    assert again.session.app.lora_folders == [str(comfy)]
    assert again.network_browser.wait_for_scan() and "film" in [i.name for i in again.network_browser.all_items()]
