"""The LoRA and embedding browser with real widgets: a click inserts at the prompt's cursor, Ctrl+Up then adjusts
the LoRA's multiplier, Enter inserts, the negative prompt when it had the focus, embeddings counted as vectors."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QHBoxLayout, QWidget

from studio.library.paths import embeddings_dir, loras_dir
from studio.library.token_counter import TokenCounter
from studio.ui.network_browser import NetworkBrowserPanel
from studio.ui.prompt_editor import PromptEditor, spaced_insertion
from studio.viewmodel.network_browser import TOOLTIP_ROLE, NetworkBrowser
from studio.viewmodel.preferences import AppSettings
from studio.viewmodel.prompt_state import PromptState
from tests.viewmodel.test_network_browser import embedding, lora, preview

CTRL = Qt.KeyboardModifier.ControlModifier


@pytest.fixture
def studio(qtbot, tmp_path, monkeypatch):
    """A prompt editor (with a counter of its own) and the browser panel beside it, over real files."""
    monkeypatch.setenv("LATENT_STUDIO_DATA", str(tmp_path / "data"))
    lora(loras_dir() / "watercolor.safetensors", tags={"watercolor": 3})
    preview(loras_dir() / "watercolor.preview.png")
    embedding(embeddings_dir() / "shiny.safetensors", vectors=3)
    state = PromptState(counter=TokenCounter())
    editor = PromptEditor(state)
    browser = NetworkBrowser(AppSettings(), watch=False)
    browser.embedding_vectors_changed.connect(state.set_embeddings)
    panel = NetworkBrowserPanel(browser, editor)
    window = QWidget()
    layout = QHBoxLayout(window)
    layout.addWidget(editor)
    layout.addWidget(panel)
    window.resize(900, 500)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert browser.wait_for_scan()
    qtbot.waitUntil(lambda: browser.model.rowCount() == 2)
    yield editor, panel, browser
    browser.shutdown()


def click(qtbot, panel: NetworkBrowserPanel, name: str) -> None:
    grid = panel.grid
    row = next(r for r in range(grid.model().rowCount()) if grid.model().index(r).data() == name)
    rect = grid.visualRect(grid.model().index(row))
    qtbot.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def put_cursor(editor: PromptEditor, text: str, position: int, field=None) -> None:
    field = field or editor.prompt_edit
    field.setFocus()
    field.setPlainText(text)
    cursor = field.textCursor()
    cursor.setPosition(position)
    field.setTextCursor(cursor)


def test_click_inserts_the_lora_tag_at_the_cursor_and_ctrl_up_weights_it(qtbot, studio):
    editor, panel, _browser = studio
    put_cursor(editor, "a cat, by the sea", len("a cat,"))
    click(qtbot, panel, "watercolor")
    assert editor.prompt() == "a cat, <lora:watercolor:1> by the sea"
    assert editor.prompt_edit.hasFocus()  # back in the prompt: the weight keys work at once
    cursor = editor.prompt_edit.textCursor()
    assert cursor.position() == len("a cat, <lora:watercolor:1>")
    qtbot.keyClick(editor.prompt_edit, Qt.Key.Key_Up, CTRL)
    assert editor.prompt() == "a cat, <lora:watercolor:1.1> by the sea"
    qtbot.keyClick(editor.prompt_edit, Qt.Key.Key_Up, CTRL)
    qtbot.keyClick(editor.prompt_edit, Qt.Key.Key_Down, CTRL)
    assert editor.prompt() == "a cat, <lora:watercolor:1.1> by the sea"
    assert editor.state.prompt == editor.prompt()
    editor.prompt_edit.undo()
    editor.prompt_edit.undo()
    editor.prompt_edit.undo()
    assert editor.prompt() == "a cat, <lora:watercolor:1> by the sea"  # one undo step per press
    editor.prompt_edit.undo()
    assert editor.prompt() == "a cat, by the sea"  # and one for the insertion


def test_click_at_the_end_and_into_an_empty_prompt(qtbot, studio):
    editor, panel, _browser = studio
    put_cursor(editor, "", 0)
    click(qtbot, panel, "watercolor")
    assert editor.prompt() == "<lora:watercolor:1>"
    editor.prompt_edit.moveCursor(QTextCursor.MoveOperation.Start)
    click(qtbot, panel, "shiny")
    assert editor.prompt() == "shiny, <lora:watercolor:1>"  # before a word: apart from it too
    editor.prompt_edit.moveCursor(QTextCursor.MoveOperation.End)
    click(qtbot, panel, "watercolor")
    assert editor.prompt() == "shiny, <lora:watercolor:1> <lora:watercolor:1>"


def test_the_field_focused_last_gets_the_tag_and_enter_inserts(qtbot, studio):
    editor, panel, _browser = studio
    put_cursor(editor, "blurry", len("blurry"), field=editor.negative_edit)
    click(qtbot, panel, "shiny")
    assert editor.negative_prompt() == "blurry, shiny" and editor.prompt() == ""
    assert editor.last_field() is editor.negative_edit

    put_cursor(editor, "a cat", 5)
    panel.grid.setFocus()
    panel.grid.setCurrentIndex(panel.grid.model().index(1, 0))  # shiny: LoRAs come first
    qtbot.keyClick(panel.grid, Qt.Key.Key_Return)
    assert editor.prompt() == "a cat, shiny"
    assert panel.grid.hasFocus()  # Enter stays in the grid: insert more


def test_an_embedding_counts_its_vectors_in_the_token_counter(qtbot, studio):
    editor, _panel, browser = studio
    assert browser.embedding_vectors() == {"shiny": 3}
    editor.set_prompts("a shiny cat")
    assert editor.prompt_counter.text() == "5 / 75 tokens"  # a, 3 vectors, cat
    editor.set_prompts("a glossy cat")
    assert editor.prompt_counter.text() == "3 / 75 tokens"


def test_the_counts_follow_a_rescan(qtbot, studio):
    editor, _panel, browser = studio
    editor.set_prompts("a velvet cat")
    assert editor.prompt_counter.text() == "3 / 75 tokens"
    embedding(embeddings_dir() / "velvet.safetensors", vectors=8)
    with qtbot.waitSignal(editor.state.embeddings_changed, timeout=5000):
        browser.rescan()
    assert editor.prompt_counter.text() == "10 / 75 tokens"


def test_search_and_filters_are_bound(qtbot, studio):
    _editor, panel, browser = studio
    qtbot.keyClicks(panel.search, "aqua")
    assert browser.search == "aqua" and browser.model.rowCount() == 0
    assert panel.status.text() == "Nothing matches the filters." and panel.status.isVisible()
    panel.search.clear()
    browser.search = ""
    panel.kind.setCurrentIndex(panel.kind.findData("embedding"))
    assert browser.kind_filter == "embedding" and browser.model.rowCount() == 1
    browser.kind_filter = "all"
    assert panel.kind.currentData() == "all"
    panel.family.setCurrentIndex(panel.family.findData("sdxl"))
    assert browser.model.rowCount() == 0


def test_thumbnails_and_placeholders_are_painted(qtbot, studio):
    _editor, panel, browser = studio
    water, shiny = browser.model.index(0), browser.model.index(1)
    qtbot.waitUntil(lambda: water.data(Qt.ItemDataRole.DecorationRole) is not None)
    image = panel.grid.grab().toImage()
    assert not image.isNull()
    cell = panel.grid.visualRect(water)
    centre = cell.center()
    picture = image.pixelColor(centre.x(), cell.top() + 30)
    assert picture.red() > 150 and picture.green() < 100  # the preview, drawn
    assert shiny.data(Qt.ItemDataRole.DecorationRole) is None  # no preview: a plain tile
    assert "Trigger words: watercolor" in water.data(TOOLTIP_ROLE)


def test_folders_menu_lists_what_can_be_done(qtbot, studio, tmp_path):
    _editor, panel, browser = studio
    extra = tmp_path / "ComfyUI" / "models" / "loras"
    extra.mkdir(parents=True)
    browser.add_folder("lora", extra)
    panel.folders_menu.aboutToShow.emit()
    texts = [a.text() for a in panel.folders_menu.actions()]
    assert texts[:2] == ["Add a LoRA folder…", "Add an embeddings folder…"]
    assert "Open the LoRA folder" in texts and "Rescan" in texts
    remove = next(a.menu() for a in panel.folders_menu.actions() if a.menu() is not None)
    [entry] = remove.actions()
    assert str(extra) in entry.text()
    entry.trigger()
    assert browser.added_folders("lora") == []


@pytest.mark.parametrize(
    ("before", "after", "text", "separator", "inserted"),
    [
        ("", "", "<lora:x:1>", " ", "<lora:x:1>"),
        ("a cat", "", "<lora:x:1>", " ", " <lora:x:1>"),
        ("a cat, ", "", "shiny", ", ", "shiny"),
        ("a cat,", "", "shiny", ", ", " shiny"),
        ("a cat", "", "shiny", ", ", ", shiny"),
        ("a cat", " dog", "shiny", ", ", ", shiny"),
        ("a cat", "dog", "<lora:x:1>", " ", " <lora:x:1> "),
        ("(", ":1.2)", "shiny", ", ", "shiny"),
        ("a\n", "", "shiny", ", ", "shiny"),
        ("a cat", ", dog", "shiny", ", ", ", shiny"),
    ],
)
def test_spaced_insertion(before, after, text, separator, inserted):
    assert spaced_insertion(before, after, text, separator) == (inserted, inserted.index(text) + len(text))


def test_no_point_is_a_click_on_nothing(qtbot, studio):
    editor, panel, _browser = studio
    put_cursor(editor, "a cat", 5)
    qtbot.mouseClick(panel.grid.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(panel.grid.viewport().width() - 3, panel.grid.viewport().height() - 3))
    assert editor.prompt() == "a cat"
