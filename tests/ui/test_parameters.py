"""The parameter panel through its view-model: every control bound both ways, wheel guard, wrapped
warnings, devices, scheduler names, guidance rescale, local models (crafted ones included), the inpainting
options (enabled by a mask on the canvas)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QScrollArea
from safetensors.numpy import save_file

from studio.engine.catalog import CATALOG
from studio.engine.devices import device_choices
from studio.ui.parameters import MODEL_DEFAULT, ParametersPanel
from studio.viewmodel.generation_settings import GenerationSettings
from studio.viewmodel.preferences import Preferences
from studio.viewmodel.session import StudioSession

WAIT_MS = 20_000


@pytest.fixture
def settings(qapp) -> GenerationSettings:
    return GenerationSettings()


@pytest.fixture
def panel(qtbot, settings) -> ParametersPanel:
    panel = ParametersPanel(settings)
    qtbot.addWidget(panel)
    return panel


@pytest.fixture
def session(qtbot, tmp_path):
    """A session: it probes the chosen model (its default scheduler) off the GUI thread."""
    session = StudioSession(
        preferences_file=tmp_path / "prefs.json", output_dir=tmp_path / "out", queue_file=tmp_path / "queue.json",
        model_cache_dir=tmp_path / "hub",
    )
    yield session
    session.shutdown()


class Messages(list):
    def __init__(self, settings: GenerationSettings) -> None:
        super().__init__()
        settings.message.connect(self.append)


def wheel(widget, steps: int = -3) -> None:
    """A real wheel event at the widget's centre, sent the way Qt delivers one (to the widget under it)."""
    centre = QPointF(widget.rect().center())
    event = QWheelEvent(
        centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False,
    )
    QApplication.sendEvent(widget, event)


def test_every_control_shows_and_edits_its_property(qtbot, panel, settings):
    settings.model = "deci-diffusion-1.0"
    assert panel.model.currentData() == "deci-diffusion-1.0" and panel.steps.value() == 30
    for widget, name, value in (
        (panel.steps, "steps", 12),
        (panel.guidance, "guidance", 4.5),
        (panel.guidance_rescale, "guidance_rescale", 0.25),
        (panel.width, "width", 640),
        (panel.height, "height", 768),
        (panel.batch, "batch", 3),
        (panel.strength, "strength", 0.4),
    ):
        widget.setValue(value)
        assert getattr(settings, name) == value
        setattr(settings, name, widget.minimum())
        assert widget.value() == widget.minimum()
    for box, name, value in (
        (panel.scheduler, "scheduler", "Euler a"),
        (panel.seed_mode, "seed_mode", "fixed"),
        (panel.device, "device", "cpu"),
        (panel.dtype, "dtype", "float32"),
        (panel.backend, "backend", "torch"),
        (panel.model, "model", "sd-2.1"),
    ):
        box.setCurrentIndex(box.findData(value))
        assert getattr(settings, name) == value
    assert settings.width == 768  # choosing the model in the list applied its defaults
    settings.scheduler = None
    assert panel.scheduler.currentIndex() == 0 and panel.scheduler.currentData() is None
    settings.model = "sd-1.4"
    assert panel.safety.isChecked()
    panel.safety.click()
    assert settings.safety_checker is False
    panel.seed.clear()
    qtbot.keyClicks(panel.seed, "4294967295")  # above a QSpinBox's range: a validated line edit
    assert settings.seed == 4294967295
    settings.seed = 7
    assert panel.seed.text() == "7"


def test_a_new_panel_enables_seed_and_strength_only_where_they_apply(panel, settings):
    assert settings.seed_mode == "random" and not settings.has_init_image
    assert not panel.seed.isEnabled() and not panel.strength.isEnabled()


def test_seed_and_strength_are_enabled_when_they_apply(panel, settings):
    settings.seed_mode = "fixed"
    assert panel.seed.isEnabled()
    settings.has_init_image = True
    assert panel.strength.isEnabled()
    settings.seed_mode = "reuse"
    settings.has_init_image = False
    assert not panel.seed.isEnabled() and not panel.strength.isEnabled()


def test_size_presets_and_swap_follow_the_model(panel, settings):
    settings.model = "sd-2.1"
    presets = [panel.presets.itemData(i) for i in range(1, panel.presets.count())]
    assert presets == [tuple(p) for p in settings.size_presets()] and presets[0] == (768, 768)
    panel.presets.activated.emit(2)
    assert (settings.width, settings.height) == presets[1] and panel.presets.currentIndex() == 0
    settings.set_size(640, 832)
    assert (panel.width.value(), panel.height.value()) == (640, 832)
    settings.swap_size()
    assert (panel.width.value(), panel.height.value()) == (832, 640)


def test_the_safety_switch_is_shown_only_for_a_model_with_a_checker(qtbot, panel, settings):
    panel.show()
    qtbot.waitExposed(panel)
    assert panel.safety.isVisible()
    settings.model = "deci-diffusion-1.0"
    assert not panel.safety.isVisible()


def test_the_wheel_scrolls_the_panel_not_the_field_under_it(qtbot, settings):
    panel = ParametersPanel(settings)
    scroll = QScrollArea(widgetResizable=True)
    scroll.setWidget(panel)  # the scroll area owns it
    scroll.resize(420, 200)  # shorter than the form: it scrolls
    qtbot.addWidget(scroll)
    scroll.show()
    qtbot.waitExposed(scroll)
    panel.guidance.setValue(7.0)
    settings.scheduler = "Euler"
    before = scroll.verticalScrollBar().value()
    wheel(panel.guidance)
    wheel(panel.scheduler)
    assert settings.guidance == 7.0 and settings.scheduler == "Euler" and panel.scheduler.currentData() == "Euler"
    assert scroll.verticalScrollBar().value() > before  # the wheel went to the scroll area
    wheel(panel.threads, steps=3)  # up from Auto, were it not guarded
    assert settings.threads == 0 and panel.threads.value() == 0
    panel.guidance.setFocus()
    qtbot.waitUntil(panel.guidance.hasFocus)
    wheel(panel.guidance, steps=-1)
    assert panel.guidance.value() == 6.5 and settings.guidance == 6.5  # a focused field takes the wheel


def test_size_warning_wraps_instead_of_widening_the_panel(panel, settings):
    settings.model = "deci-diffusion-1.0"
    width = panel.minimumSizeHint().width()
    assert panel.size_note.isHidden()
    panel.width.setValue(520)
    assert "multiples of 64" in panel.size_note.text() and panel.size_note.wordWrap()
    assert not panel.size_note.isHidden() and panel.size_note.text() == settings.size_problem
    assert panel.minimumSizeHint().width() == width
    panel.width.setValue(512)
    assert panel.size_note.isHidden()


def test_devices_this_machine_cannot_run_are_shown_disabled_with_the_reason(panel):
    choices = {c.value: c for c in device_choices()}
    assert panel.device.count() == len(choices)
    for index in range(panel.device.count()):
        value = panel.device.itemData(index)
        item = panel.device.model().item(index)
        assert item.isEnabled() == choices[value].available
        if not choices[value].available:
            assert item.toolTip() == choices[value].reason and "not available" in item.text()


def test_the_backend_list_binds_to_the_settings_and_greys_what_is_not_installed(qtbot, settings, monkeypatch):
    import studio.viewmodel.generation_settings as module

    monkeypatch.setattr(module, "openvino_installed", lambda: False)  # as on a machine without it
    panel = ParametersPanel(settings)
    qtbot.addWidget(panel)
    texts = [panel.backend.itemText(i) for i in range(panel.backend.count())]
    assert texts == ["Auto", "PyTorch", "OpenVINO (CPU) (not available)"]
    item = panel.backend.model().item(2)
    assert not item.isEnabled() and "pip install openvino" in item.toolTip()
    assert panel.backend.model().item(1).isEnabled() and panel.backend.currentData() == "auto"
    settings.backend = "openvino"  # kept from a machine that has it: shown, and the engine says why not
    assert panel.backend.currentData() == "openvino"
    panel.backend.setCurrentIndex(1)
    assert settings.backend == "torch"
    assert panel.dtype.findData("int8") >= 0
    panel.dtype.setCurrentIndex(panel.dtype.findData("int8"))
    assert settings.dtype == "int8" and panel.dtype.currentText() == "int8 (OpenVINO)"
    assert "NNCF" in panel.dtype.itemData(panel.dtype.currentIndex(), Qt.ItemDataRole.ToolTipRole)


def test_the_cpu_threads_box_binds_both_ways_and_says_auto(panel, settings):
    box = panel.threads
    assert box.value() == 0 and box.text() == "Auto" and settings.threads == 0  # all physical cores
    assert box.minimum() == 0 and box.maximum() >= 64
    assert "OpenVINO" in box.toolTip() and "Auto: all physical cores" in box.toolTip()
    box.setValue(3)
    assert settings.threads == 3 and box.text() == "3"
    settings.threads = 1
    assert box.value() == 1
    settings.reset("threads")
    assert box.value() == 0 and box.text() == "Auto"


def test_the_cpu_threads_box_is_enabled_only_where_openvino_may_run(panel, settings):
    assert (settings.backend, settings.device) == ("auto", "auto") and panel.threads.isEnabled()
    settings.backend = "torch"
    assert not panel.threads.isEnabled()
    settings.backend = "openvino"
    assert panel.threads.isEnabled()
    settings.backend, settings.device = "auto", "cpu"
    assert panel.threads.isEnabled()
    panel.backend.setCurrentIndex(panel.backend.findData("torch"))  # the user's choice in the list
    assert not panel.threads.isEnabled()


def test_preferences_from_a_gpu_machine_fall_back_to_auto_where_there_is_none(qtbot, tmp_path, qapp):
    unavailable = [c.value for c in device_choices() if not c.available]
    if not unavailable:
        pytest.skip("every device is available on this machine")
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"device": unavailable[0]}))
    settings = GenerationSettings()
    assert Preferences(path).attach(settings) == ["device"]
    panel = ParametersPanel(settings)
    qtbot.addWidget(panel)
    assert settings.device == "auto" and panel.device.currentData() == "auto"


def test_model_default_names_the_scheduler(qtbot, session, tiny_sd2):
    settings = session.settings
    panel = ParametersPanel(settings)
    qtbot.addWidget(panel)

    def named(scheduler: str) -> None:
        qtbot.waitUntil(lambda: panel.scheduler.itemText(0) == f"{MODEL_DEFAULT} ({scheduler})", timeout=WAIT_MS)

    settings.model = "deci-diffusion-1.0"
    named("DDIM")
    settings.model = "sd-1.4"  # not downloaded: SD 1.x ships PNDM
    named("PNDM")
    assert settings.try_add_local_model(str(tiny_sd2))
    named("DDIM")
    assert panel.scheduler.currentData() is None and settings.scheduler is None
    settings.scheduler = "euler_a"  # any accepted spelling
    assert settings.scheduler == "Euler a" and panel.scheduler.currentData() == "Euler a"
    with pytest.raises(ValueError):
        settings.scheduler = "no such sampler"
    assert panel.scheduler.currentData() == "Euler a"


def test_guidance_rescale_follows_the_model_the_request_and_the_preferences(qtbot, panel, settings, tmp_path):
    settings.model = "deci-diffusion-1.0"
    assert panel.guidance_rescale.value() == pytest.approx(0.7)
    panel.guidance_rescale.setValue(0.35)
    assert settings.to_request("x", "").guidance_rescale == pytest.approx(0.35)
    prefs = Preferences(tmp_path / "p.json")
    prefs.attach(settings)
    prefs.save()
    assert json.loads((tmp_path / "p.json").read_text())["guidance_rescale"] == pytest.approx(0.35)
    again = GenerationSettings()
    Preferences(tmp_path / "p.json").attach(again)
    again_panel = ParametersPanel(again)
    qtbot.addWidget(again_panel)
    assert again_panel.guidance_rescale.value() == pytest.approx(0.35)  # not DeciDiffusion's 0.7
    assert settings.apply({"guidance_rescale": 0.1}) == []
    assert panel.guidance_rescale.value() == pytest.approx(0.1)


def test_a_folder_that_is_not_a_model_is_refused_and_entries_can_be_removed(panel, settings, tiny_sd1, tmp_path):
    messages = Messages(settings)
    (tmp_path / "photos").mkdir()
    assert not settings.try_add_local_model(str(tmp_path / "photos"))
    assert "not a Stable Diffusion folder" in messages[-1] and settings.local_models() == []
    lora = tmp_path / "style.safetensors"
    save_file({"lora_unet_down_blocks_0.lora_down.weight": np.zeros((4, 4), dtype=np.float32)}, str(lora))
    assert not settings.try_add_local_model(str(lora))
    assert "LoRA" in messages[-1] and panel.model.count() == len(CATALOG)
    assert not panel.remove_local_action.isEnabled()
    assert settings.try_add_local_model(str(tiny_sd1))
    assert settings.local_models() == [str(tiny_sd1)] and settings.model == str(tiny_sd1)
    assert panel.model.count() == len(CATALOG) + 1 and panel.model.currentData() == str(tiny_sd1)
    assert panel.model.currentText() == "tiny-sd1  (local)"
    assert panel.remove_local_action.isEnabled()
    panel.remove_local_action.trigger()
    assert settings.local_models() == [] and settings.model != str(tiny_sd1)
    assert panel.model.count() == len(CATALOG) and panel.model.currentData() == settings.model
    assert not panel.remove_local_action.isEnabled()  # a catalogue model is removed in Models, not here


def _safetensors(path, header: bytes) -> str:
    """A file laid out as .safetensors around a (crafted) header, with 4 bytes of data."""
    path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(4))
    return str(path)


def test_crafted_files_and_folders_are_refused_with_one_message(panel, settings, tiny_sd1, tmp_path):
    """What a fuzzer fed the model picker: each is refused in the status bar, nothing else changes."""
    messages = Messages(settings)
    before = settings.model
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
        assert not settings.try_add_local_model(spec)
        assert len(messages) == 1 and messages[0].startswith(f"Not added: {spec}") and reason in messages[0]
        assert "\n" not in messages[0]
    assert settings.local_models() == [] and settings.model == before
    assert panel.model.count() == len(CATALOG) and panel.model.currentData() == before


def test_unchecked_crafted_models_leave_the_form_working(panel, settings, tiny_sd1, tmp_path):
    """--model and restored preferences add a model unchecked: the form then guesses its family from what
    it can read (a crafted header or config reads as nothing), and the load says what is wrong."""
    crafted = _safetensors(
        tmp_path / "infinity.safetensors", b'{"w": {"dtype": "F32", "shape": [Infinity], "data_offsets": [0, 4]}}'
    )
    folder = tmp_path / "nested"
    shutil.copytree(tiny_sd1, folder)
    (folder / "scheduler" / "scheduler_config.json").write_text("[" * 100_000 + "]" * 100_000)
    for spec in (crafted, str(folder)):
        settings.select_model(spec)
        assert settings.model == spec and settings.family() == "sd1"
        assert panel.model.currentData() == spec
        assert panel.scheduler.itemText(0).startswith(MODEL_DEFAULT)
        panel.steps.setValue(21)  # the form still works
        assert settings.steps == 21


# ------------------------------------------------------------------------------------- inpainting (issue 14)
def masked(settings: GenerationSettings) -> None:
    """As the session says it once the canvas holds a picture with a painted mask."""
    settings.has_init_image = True
    settings.has_mask = True


def test_the_inpainting_controls_show_and_edit_their_properties(panel, settings):
    masked(settings)
    panel.mask_blur.setValue(8)
    panel.padding.setValue(16)
    assert (settings.mask_blur, settings.padding) == (8, 16)
    settings.mask_blur, settings.padding = 0, 256
    assert (panel.mask_blur.value(), panel.padding.value()) == (0, 256)
    assert (panel.mask_blur.maximum(), panel.padding.maximum()) == (64, 256) and panel.mask_blur.suffix() == " px"
    for box, name, value, label in (
        (panel.masked_content, "masked_content", "noise", "Latent noise"),
        (panel.inpaint_area, "inpaint_area", "masked", "Only masked"),
        (panel.invert_mask, "invert_mask", True, "Inpaint not masked"),
        (panel.outpaint_fill, "outpaint_fill", "noise", "Noise"),
    ):
        box.setCurrentIndex(box.findText(label))
        assert getattr(settings, name) == value and getattr(settings, name) is not None
        settings.reset(name)
        assert box.currentIndex() == 0 and box.currentData() == getattr(settings, name)
    assert settings.apply({"masked_content": "fill", "invert_mask": True, "mask_blur": 12}) == []
    assert panel.masked_content.currentText() == "Fill" and panel.invert_mask.currentText() == "Inpaint not masked"
    assert panel.mask_blur.value() == 12


def test_the_inpainting_controls_wait_for_a_mask_on_the_canvas(panel, settings):
    controls = [panel.mask_blur, panel.masked_content, panel.inpaint_area, panel.invert_mask, panel.outpaint_fill]
    assert not any(c.isEnabled() for c in [*controls, panel.padding])
    settings.has_init_image = True  # plain img2img
    assert not any(c.isEnabled() for c in [*controls, panel.padding])
    settings.has_mask = True
    assert all(c.isEnabled() for c in controls) and not panel.padding.isEnabled()  # the whole picture: no padding
    panel.inpaint_area.setCurrentIndex(panel.inpaint_area.findData("masked"))
    assert panel.padding.isEnabled()
    settings.inpaint_area = "whole"
    assert not panel.padding.isEnabled()
    settings.inpaint_area = "masked"
    settings.has_mask = False  # the mask was cleared
    assert not any(c.isEnabled() for c in [*controls, panel.padding])
    settings.has_mask, settings.has_init_image = True, False  # the picture was cleared
    assert not any(c.isEnabled() for c in [*controls, panel.padding])


def test_a_restored_only_masked_area_enables_padding_in_a_new_panel(qtbot, settings):
    masked(settings)
    settings.inpaint_area = "masked"
    panel = ParametersPanel(settings)
    qtbot.addWidget(panel)
    assert panel.padding.isEnabled() and panel.inpaint_area.currentText() == "Only masked"


def test_the_inpainting_options_explain_themselves(panel):
    for widget in (panel.mask_blur, panel.masked_content, panel.inpaint_area, panel.padding, panel.invert_mask,
                   panel.outpaint_fill):
        assert widget.toolTip().endswith("Needs a painted mask or an outpaint expansion on the canvas.")
    assert "blend" in panel.mask_blur.toolTip() and "Only masked" in panel.inpaint_area.toolTip()
    tips = [panel.masked_content.itemData(i, Qt.ItemDataRole.ToolTipRole) for i in range(panel.masked_content.count())]
    assert len(tips) == 4 and all(tips) and "strength near 1" in tips[2]


def test_the_inpainting_rows_follow_strength_under_their_title_and_take_no_mnemonic(panel):
    from PySide6.QtWidgets import QFormLayout, QLabel

    form = panel.layout()
    assert isinstance(form, QFormLayout)
    strength_row, _role = form.getWidgetPosition(panel.strength)
    title = form.itemAt(strength_row + 1, QFormLayout.ItemRole.SpanningRole).widget()
    assert isinstance(title, QLabel) and title.text() == "Inpainting" and title.font().bold()
    rows = [form.getWidgetPosition(w)[0] for w in (panel.mask_blur, panel.masked_content, panel.inpaint_area,
                                                   panel.padding, panel.invert_mask, panel.outpaint_fill)]
    assert rows == list(range(strength_row + 2, strength_row + 8))
    labels = [form.labelForField(w).text() for w in (panel.mask_blur, panel.masked_content, panel.invert_mask)]
    assert labels == ["Mask blur", "Masked content", "Mask mode"] and not any("&" in t for t in labels)


def test_the_wheel_passes_over_the_inpainting_controls(qtbot, settings):
    masked(settings)
    panel = ParametersPanel(settings)
    scroll = QScrollArea(widgetResizable=True)
    scroll.setWidget(panel)
    scroll.resize(420, 200)
    qtbot.addWidget(scroll)
    scroll.show()
    qtbot.waitExposed(scroll)
    scroll.ensureWidgetVisible(panel.mask_blur)
    wheel(panel.mask_blur, steps=3)
    wheel(panel.masked_content)
    assert settings.mask_blur == 4 and settings.masked_content == "original"


def test_the_inpainting_rows_keep_the_panel_narrow(panel):
    """The combos may shrink to the column: their longest entries never set the panel's width."""
    for box in (panel.masked_content, panel.inpaint_area, panel.invert_mask, panel.outpaint_fill):
        assert box.minimumSizeHint().width() <= panel.scheduler.minimumSizeHint().width()
