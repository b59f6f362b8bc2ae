"""The parameter panel on its own: wheel guard, wrapped warnings, devices, scheduler names, local models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QScrollArea
from safetensors.numpy import save_file

from studio.engine.devices import device_choices
from studio.settings import Preferences
from studio.ui.parameters import ParametersPanel


@pytest.fixture
def panel(qtbot):
    panel = ParametersPanel()
    qtbot.addWidget(panel)
    return panel


def wheel(widget, steps: int = -3) -> None:
    """A real wheel event at the widget's centre, sent the way Qt delivers one (to the widget under it)."""
    centre = QPointF(widget.rect().center())
    event = QWheelEvent(
        centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False,
    )
    QApplication.sendEvent(widget, event)


def test_the_wheel_scrolls_the_panel_not_the_field_under_it(qtbot):
    panel = ParametersPanel()
    scroll = QScrollArea(widgetResizable=True)
    scroll.setWidget(panel)  # the scroll area owns it
    scroll.resize(420, 200)  # shorter than the form: it scrolls
    qtbot.addWidget(scroll)
    scroll.show()
    qtbot.waitExposed(scroll)
    panel.guidance.setValue(7.0)
    panel.select_scheduler("Euler")
    before = scroll.verticalScrollBar().value()
    wheel(panel.guidance)
    wheel(panel.scheduler)
    assert panel.guidance.value() == 7.0 and panel.scheduler_choice() == "Euler"
    assert scroll.verticalScrollBar().value() > before  # the wheel went to the scroll area
    panel.guidance.setFocus()
    qtbot.waitUntil(panel.guidance.hasFocus)
    wheel(panel.guidance, steps=-1)
    assert panel.guidance.value() == 6.5  # a focused field takes the wheel


def test_size_warning_wraps_instead_of_widening_the_panel(panel):
    panel.select_model("deci-diffusion-1.0")
    width = panel.minimumSizeHint().width()
    panel.width.setValue(520)
    assert "multiples of 64" in panel.size_note.text() and panel.size_note.wordWrap()
    assert panel.minimumSizeHint().width() == width


def test_devices_this_machine_cannot_run_are_shown_disabled_with_the_reason(panel):
    choices = {c.value: c for c in device_choices()}
    for index in range(panel.device.count()):
        value = panel.device.itemData(index)
        item = panel.device.model().item(index)
        assert item.isEnabled() == choices[value].available
        if not choices[value].available:
            assert item.toolTip() == choices[value].reason and "not available" in item.text()


def test_preferences_from_a_gpu_machine_fall_back_to_auto_where_there_is_none(panel):
    unavailable = [c.value for c in device_choices() if not c.available]
    if not unavailable:
        pytest.skip("every device is available on this machine")
    panel.load_preferences(Preferences(device=unavailable[0]))
    assert panel.device.currentData() == "auto"


def test_model_default_names_the_scheduler(panel, tiny_sd1, tiny_sd2):
    panel.select_model("deci-diffusion-1.0")
    assert panel.scheduler.itemText(0) == "Model default (DDIM)"
    panel.select_model("sd-1.4")  # not downloaded: SD 1.x ships PNDM
    assert panel.scheduler.itemText(0) == "Model default (PNDM)"
    panel.add_local_model(str(tiny_sd2))
    assert panel.scheduler.itemText(0) == "Model default (DDIM)"
    assert panel.scheduler_choice() is None
    assert panel.select_scheduler("euler_a") and panel.scheduler_choice() == "Euler a"  # any accepted spelling
    assert not panel.select_scheduler("no such sampler") and panel.scheduler_choice() is None


def test_guidance_rescale_follows_the_model_and_the_request(qtbot, panel, tmp_path):
    panel.select_model("deci-diffusion-1.0")
    assert panel.guidance_rescale.value() == pytest.approx(0.7)
    panel.guidance_rescale.setValue(0.35)
    assert panel.build_request("x", "").guidance_rescale == pytest.approx(0.35)
    prefs = Preferences()
    panel.store_preferences(prefs)
    prefs.save(tmp_path / "p.json")
    assert json.loads((tmp_path / "p.json").read_text())["guidance_rescale"] == pytest.approx(0.35)
    again = ParametersPanel()
    qtbot.addWidget(again)
    again.load_preferences(Preferences.load(tmp_path / "p.json"))
    assert again.guidance_rescale.value() == pytest.approx(0.35)
    panel.apply_fields({"guidance_rescale": 0.1})
    assert panel.guidance_rescale.value() == pytest.approx(0.1)


def test_a_folder_that_is_not_a_model_is_refused_and_entries_can_be_removed(panel, tiny_sd1, tmp_path):
    messages = []
    panel.message.connect(messages.append)
    (tmp_path / "photos").mkdir()
    assert not panel.try_add_local_model(str(tmp_path / "photos"))
    assert "not a Stable Diffusion folder" in messages[-1] and panel.local_models() == []
    lora = tmp_path / "style.safetensors"
    save_file({"lora_unet_down_blocks_0.lora_down.weight": np.zeros((4, 4), dtype=np.float32)}, str(lora))
    assert not panel.try_add_local_model(str(lora))
    assert "LoRA" in messages[-1]
    assert panel.try_add_local_model(str(tiny_sd1))
    assert panel.local_models() == [str(tiny_sd1)] and panel.model_spec() == str(tiny_sd1)
    assert panel.remove_local_action.isEnabled()
    panel.remove_local_action.trigger()
    assert panel.local_models() == [] and panel.model_spec() != str(tiny_sd1)
    assert not panel.remove_local_action.isEnabled()  # a catalogue model is removed in Models, not here


def _safetensors(path, header: bytes) -> str:
    """A file laid out as .safetensors around a (crafted) header, with 4 bytes of data."""
    path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(4))
    return str(path)


def test_crafted_files_and_folders_are_refused_with_one_message(panel, tiny_sd1, tmp_path):
    """What a fuzzer fed the model picker: each is refused in the status bar, nothing else changes."""
    import shutil

    messages = []
    panel.message.connect(messages.append)
    before = panel.model_spec()
    infinity = _safetensors(
        tmp_path / "infinity.safetensors", b'{"w": {"dtype": "F32", "shape": [Infinity], "data_offsets": [0, 4]}}'
    )
    deep = _safetensors(tmp_path / "deep.safetensors", b'{"w": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    absurd = tmp_path / "absurd"
    shutil.copytree(tiny_sd1, absurd)
    unet_config = absurd / "unet" / "config.json"
    unet_config.write_text(json.dumps({**json.loads(unet_config.read_text()), "block_out_channels": [1e9, 64]}))
    for spec, reason in (
        (infinity, "its header holds Infinity"),
        (deep, "its header is nested more than 8 levels deep"),
        (str(absurd), "unet/config.json: block_out_channels[0] = 1000000000 is out of range (1..8192)"),
    ):
        messages.clear()
        assert not panel.try_add_local_model(spec)
        assert len(messages) == 1 and messages[0].startswith(f"Not added: {spec}") and reason in messages[0]
        assert "\n" not in messages[0]
    assert panel.local_models() == [] and panel.model_spec() == before


def test_unchecked_crafted_models_leave_the_form_working(panel, tiny_sd1, tmp_path):
    """--model and restored preferences add a model unchecked: the form then guesses its family from what
    it can read (a crafted header or config reads as nothing), and the load says what is wrong."""
    import shutil

    crafted = _safetensors(
        tmp_path / "infinity.safetensors", b'{"w": {"dtype": "F32", "shape": [Infinity], "data_offsets": [0, 4]}}'
    )
    folder = tmp_path / "nested"
    shutil.copytree(tiny_sd1, folder)
    (folder / "scheduler" / "scheduler_config.json").write_text("[" * 100_000 + "]" * 100_000)
    for spec in (crafted, str(folder)):
        panel.add_local_model(spec)
        assert panel.model_spec() == spec and panel.family() == "sd1"
        assert panel.scheduler.itemText(0).startswith("Model default")
