"""The parameter panel: model, scheduler, steps, guidance, seed, size, batch, strength, the inpainting
options, device, backend, threads.

Every control is bound to its property of :class:`~studio.viewmodel.generation_settings.GenerationSettings`
in one line; the panel holds no state of its own. Choosing a model applies that model's defaults there.
"""

from __future__ import annotations

import os

from PySide6.QtCore import Qt
from PySide6.QtGui import QIntValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QSpinBox,
    QToolButton,
    QWidget,
)

from studio.ui.bind import bind, show_text
from studio.ui.plain_text import plain_label, plain_tooltip
from studio.ui.wheel_guard import guard_wheel
from studio.viewmodel.generation_settings import (
    INPAINT_AREA_CHOICES,
    MASK_MODES,
    MASKED_CONTENT_CHOICES,
    MAX_PANEL_BATCH,
    MAX_PANEL_MASK_BLUR,
    MAX_PANEL_PADDING,
    MAX_SEED,
    MAX_SIDE,
    MAX_STEPS,
    MAX_THREADS,
    MIN_SIDE,
    OUTPAINT_FILL_CHOICES,
    PRECISIONS,
    SEED_MODES,
    GenerationSettings,
)

MODEL_DEFAULT = "Model default"
RESCALE_TIP = (
    "Guidance rescale (0 = off): tames the over-exposed, over-saturated look of high guidance, especially "
    "on v-prediction and zero-terminal-SNR models (DeciDiffusion recommends 0.7)"
)
THREADS_TIP = (
    "CPU threads for the OpenVINO backend. Auto: all physical cores. Fewer leave the computer responsive while it renders"
)
NEEDS_MASK = "Needs a painted mask or an outpaint expansion on the canvas."
INPAINT_TIPS = {
    "mask_blur": "Mask blur: how many pixels the mask's edge is blurred, so the new part blends into the picture",
    "masked_content": "Masked content: what the masked area starts from before it is regenerated (hover an entry)",
    "inpaint_area": "Inpaint area. Whole picture: the model redraws the whole picture at the output size and only "
    "the masked part is kept. Only masked: the masked part (plus padding) is upscaled to the output size, "
    "redrawn there and pasted back: more detail for a small mask",
    "padding": "Only masked padding: pixels of the picture around the mask that the model sees, for context",
    "invert_mask": "Mask mode. Inpaint masked: regenerate what is painted. Inpaint not masked: regenerate "
    "everything else and keep what is painted",
    "outpaint_fill": "Outpaint fill: what an outpaint expansion starts as. Stretch edges: the picture's edge "
    "pixels stretched outwards; Noise: random colours",
}
"""The inpainting options' tooltips, in A1111's words; each ends with :data:`NEEDS_MASK`."""
PANEL_MAX_THREADS = min(max(os.cpu_count() or 1, 64), MAX_THREADS)
"""The threads box's top: this machine's logical CPUs, at least 64 (preferences from a bigger machine)."""


class ParametersPanel(QWidget):
    """The controls of a :class:`GenerationSettings`, bound both ways."""

    def __init__(self, settings: GenerationSettings | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = settings if settings is not None else GenerationSettings(self)
        s = self.settings
        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        # Mnemonics (Alt+letter) are unique across the window: the menus take F, G, I, V, H, the prompt
        # editor P and N; tests/ui check that no two visible ones collide.

        self.model = QComboBox(accessibleName="Model")
        self.model.setToolTip("Catalogue models are downloaded in Models (File menu); local folders and files load offline")
        self.model.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model.setMinimumContentsLength(12)
        add = QToolButton(text="Add…", toolTip="Add a local diffusers folder or .safetensors file, or remove one")
        menu = QMenu(add)
        menu.addAction("Folder (diffusers layout)…", self._add_folder)
        menu.addAction("Single file (.safetensors)…", self._add_file)
        menu.addSeparator()
        self.remove_local_action = menu.addAction("Remove this local model from the list", s.remove_current_local_model)
        add.setMenu(menu)
        add.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.add_button = add
        form.addRow("&Model", _row(self.model, add))
        self.model_note = plain_label(wordWrap=True, accessibleName="Model note")  # never HTML
        self.model_note.setStyleSheet("color: palette(mid);")
        form.addRow("", self.model_note)

        self.scheduler = QComboBox(accessibleName="Scheduler")
        self.scheduler.addItem(MODEL_DEFAULT, None)
        for name in s.scheduler_choices():
            self.scheduler.addItem(name, name)
        form.addRow("S&cheduler", self.scheduler)

        self.steps = QSpinBox(minimum=1, maximum=MAX_STEPS, accessibleName="Steps")
        form.addRow("&Steps", self.steps)
        self.guidance = QDoubleSpinBox(minimum=0.0, maximum=50.0, singleStep=0.5, decimals=1, accessibleName="Guidance")
        self.guidance.setToolTip("Classifier-free guidance: how strongly the image follows the prompt")
        form.addRow("G&uidance", self.guidance)
        self.guidance_rescale = QDoubleSpinBox(
            minimum=0.0, maximum=1.0, singleStep=0.05, decimals=2, accessibleName="Guidance rescale"
        )
        self.guidance_rescale.setToolTip(RESCALE_TIP)
        form.addRow("Resc&ale", self.guidance_rescale)

        self.seed_mode = QComboBox(accessibleName="Seed mode")
        for label, value in SEED_MODES:
            self.seed_mode.addItem(label, value)
        self.seed = QLineEdit("0", accessibleName="Seed")
        self.seed.setValidator(_SeedValidator(self.seed))
        dice = QToolButton(text="New", toolTip="Pick a new random seed and fix it")
        dice.clicked.connect(s.new_seed)
        form.addRow("S&eed", _row(self.seed_mode, self.seed, dice))

        self.width = QSpinBox(minimum=MIN_SIDE, maximum=MAX_SIDE, singleStep=64, accessibleName="Width")
        self.height = QSpinBox(minimum=MIN_SIDE, maximum=MAX_SIDE, singleStep=64, accessibleName="Height")
        self.presets = QComboBox(accessibleName="Size presets")
        self.presets.activated.connect(self._apply_preset)
        swap = QToolButton(text="⇄", toolTip="Swap width and height")
        swap.clicked.connect(s.swap_size)
        form.addRow("Si&ze", _row(self.width, QLabel("×"), self.height, swap))
        form.addRow("", self.presets)
        self.size_note = plain_label(wordWrap=True, accessibleName="Size warning")  # wraps: never widens it
        self.size_note.setStyleSheet("color: #c0392b;")
        form.addRow("", self.size_note)

        self.batch = QSpinBox(minimum=1, maximum=MAX_PANEL_BATCH, accessibleName="Batch size")
        form.addRow("&Batch", self.batch)
        self.strength = QDoubleSpinBox(minimum=0.01, maximum=1.0, singleStep=0.05, decimals=2, accessibleName="Strength")
        self.strength.setToolTip("img2img: how much the canvas image may change (1 = ignore it almost entirely)")
        form.addRow("S&trength", self.strength)
        self._add_inpainting_rows(form)

        self.device = _choice_box("Device", s.device_choices())
        self.dtype = QComboBox(accessibleName="Precision")
        for label, value, tip in PRECISIONS:
            self.dtype.addItem(label, value)
            self.dtype.setItemData(self.dtype.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.dtype.setToolTip("Number format of the model's weights and arithmetic (hover an entry for details)")
        form.addRow("&Device", _row(self.device, self.dtype))
        self.backend = _choice_box("Backend", s.backend_choices())
        self.backend.setToolTip(
            "What runs the model: PyTorch, or OpenVINO on the CPU (faster there; a model is optimised for this "
            "CPU on its first use, then cached). Images differ slightly between backends"
        )
        form.addRow("Bac&kend", self.backend)
        self.threads = QSpinBox(minimum=0, maximum=PANEL_MAX_THREADS, specialValueText="Auto", accessibleName="CPU threads")
        self.threads.setToolTip(THREADS_TIP)
        form.addRow("CPU th&reads", self.threads)  # T is Strength's

        self.safety = QCheckBox("Safety checker", accessibleName="Safety checker")
        self.safety.setToolTip(
            "Stable Diffusion 1.4 ships a safety checker: images it flags as NSFW are replaced by black "
            "images and marked nsfw in their metadata. Turn it off only if you accept the model card's terms."
        )
        form.addRow("", self.safety)

        self._fill_models()
        s.user_models_changed.connect(self._fill_models)
        s.server_models_changed.connect(self._fill_models)
        bind(self.model, s, "model")
        bind(self.scheduler, s, "scheduler")
        bind(self.steps, s, "steps")
        bind(self.guidance, s, "guidance")
        bind(self.guidance_rescale, s, "guidance_rescale")
        bind(self.seed_mode, s, "seed_mode")
        bind(self.seed, s, "seed", to_widget=str, from_widget=int)
        bind(self.width, s, "width")
        bind(self.height, s, "height")
        bind(self.batch, s, "batch")
        bind(self.strength, s, "strength")
        for name in INPAINT_TIPS:
            bind(getattr(self, name), s, name)
        bind(self.device, s, "device")
        bind(self.dtype, s, "dtype")
        bind(self.backend, s, "backend")
        bind(self.threads, s, "threads")
        bind(self.safety, s, "safety_checker")
        show_text(self.model_note, s, "model_note")
        show_text(self.size_note, s, "size_problem")
        s.default_scheduler_changed.connect(self._name_default_scheduler)
        s.seed_mode_changed.connect(self._sync_enabled)
        s.has_init_image_changed.connect(self._sync_enabled)
        s.has_mask_changed.connect(self._sync_enabled)
        s.inpaint_area_changed.connect(self._sync_enabled)
        s.backend_changed.connect(self._sync_enabled)
        s.device_changed.connect(self._sync_enabled)
        s.model_changed.connect(self._on_model_changed)
        self._on_model_changed()
        self._sync_enabled()
        self._wheel_guard = guard_wheel(self)

    def _add_inpainting_rows(self, form: QFormLayout) -> None:
        """A1111's inpainting options under a section title. No mnemonics: the canvas's mask tools take
        letters too, and these are set once, not reached for while typing a prompt."""
        title = QLabel("Inpainting", accessibleName="Inpainting options")
        title.setToolTip(NEEDS_MASK)
        font = title.font()
        font.setBold(True)
        title.setFont(font)
        form.addRow(title)
        self.mask_blur = QSpinBox(minimum=0, maximum=MAX_PANEL_MASK_BLUR, suffix=" px", accessibleName="Mask blur")
        form.addRow("Mask blur", self.mask_blur)
        self.masked_content = _combo("Masked content", MASKED_CONTENT_CHOICES)
        form.addRow("Masked content", self.masked_content)
        self.inpaint_area = _combo("Inpaint area", INPAINT_AREA_CHOICES)
        form.addRow("Inpaint area", self.inpaint_area)
        self.padding = QSpinBox(minimum=0, maximum=MAX_PANEL_PADDING, singleStep=8, suffix=" px", accessibleName="Padding")
        form.addRow("Padding", self.padding)
        self.invert_mask = _combo("Mask mode", MASK_MODES)
        form.addRow("Mask mode", self.invert_mask)
        self.outpaint_fill = _combo("Outpaint fill", OUTPAINT_FILL_CHOICES)
        form.addRow("Outpaint fill", self.outpaint_fill)
        for name, tip in INPAINT_TIPS.items():
            getattr(self, name).setToolTip(f"{tip}. {NEEDS_MASK}")

    # --------------------------------------------------------------------------------------- models
    def _fill_models(self, *_args) -> None:
        """The model list from the settings; the current model stays chosen."""
        blocked = self.model.blockSignals(True)
        self.model.clear()
        for choice in self.settings.model_choices():
            self.model.addItem(choice.label, choice.spec)
        index = self.model.findData(self.settings.model)
        self.model.setCurrentIndex(max(index, 0))
        self.model.blockSignals(blocked)

    def show_add_menu(self) -> None:
        """Open the Add menu (the failure panel's "Add local model…")."""
        self.add_button.showMenu()

    def _add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a diffusers model folder")
        if folder:
            self.settings.try_add_local_model(folder)

    def _add_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add a checkpoint", "", "Safetensors (*.safetensors)")
        if path:
            self.settings.try_add_local_model(path)

    def _on_model_changed(self, *_args) -> None:
        """What follows the model: its size presets, the safety switch, the remove action."""
        self.presets.clear()
        self.presets.addItem("Presets…")
        for w, h in self.settings.size_presets():
            self.presets.addItem(f"{w} × {h}", (w, h))
        self.safety.setVisible(self.settings.safety_available())
        self.remove_local_action.setEnabled(self.settings.catalogue_entry() is None and bool(self.settings.model))
        self._name_default_scheduler(self.settings.default_scheduler)

    def _name_default_scheduler(self, name: str) -> None:
        self.scheduler.setItemText(0, f"{MODEL_DEFAULT} ({name})" if name else MODEL_DEFAULT)

    def _apply_preset(self, index: int) -> None:
        data = self.presets.itemData(index)
        if data:
            self.settings.set_size(*data)
        self.presets.setCurrentIndex(0)

    def _sync_enabled(self, *_args) -> None:
        self.seed.setEnabled(self.settings.seed_mode == "fixed")
        self.strength.setEnabled(self.settings.has_init_image)
        masked = self.settings.has_init_image and self.settings.has_mask
        for name in INPAINT_TIPS:
            getattr(self, name).setEnabled(masked)
        self.padding.setEnabled(masked and self.settings.inpaint_area == "masked")
        self.threads.setEnabled(self.settings.may_run_openvino())


class _SeedValidator(QIntValidator):
    """Seeds go up to 2**32 - 1, beyond QSpinBox's signed 32-bit range: a validated line edit instead."""

    def __init__(self, parent=None):
        super().__init__(parent)

    def validate(self, text: str, pos: int):
        if text == "":
            return (QIntValidator.State.Intermediate, text, pos)
        if not text.isdigit():
            return (QIntValidator.State.Invalid, text, pos)
        state = QIntValidator.State.Acceptable if int(text) <= MAX_SEED else QIntValidator.State.Invalid
        return (state, text, pos)


def _choice_box(name: str, choices) -> QComboBox:
    """A combo of (value, label, available, reason) choices: the unavailable ones greyed, with the reason
    as their tooltip, so the list says what this machine could run and why not."""
    box = QComboBox(accessibleName=name)
    box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.setMinimumContentsLength(8)  # "… (not available)" entries must not widen the panel
    for choice in choices:
        box.addItem(choice.label if choice.available else f"{choice.label} (not available)", choice.value)
        item = box.model().item(box.count() - 1)
        item.setEnabled(choice.available)
        if choice.reason:
            item.setToolTip(plain_tooltip(choice.reason))  # may quote a driver's error message
    return box


def _combo(name: str, choices) -> QComboBox:
    """A combo of (label, value) or (label, value, tooltip) choices, kept narrow: the panel scrolls
    vertically, never sideways."""
    box = QComboBox(accessibleName=name)
    box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.setMinimumContentsLength(10)
    for label, value, *tip in choices:
        box.addItem(label, value)
        if tip:
            box.setItemData(box.count() - 1, tip[0], Qt.ItemDataRole.ToolTipRole)
    return box


def _row(*widgets: QWidget) -> QWidget:
    """Fields side by side; the row's label mnemonic focuses the first of them."""
    box = QWidget()
    layout = QHBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        layout.addWidget(w, 1 if isinstance(w, QComboBox | QLineEdit | QSpinBox) else 0)
    box.setFocusProxy(widgets[0])
    return box

