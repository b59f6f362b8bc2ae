"""The parameter panel: model, scheduler, steps, guidance, seed, size, batch, strength, device.

Choosing a model applies that model's defaults (its authors' recommended steps, guidance, size,
scheduler); everything the user then sets is remembered across restarts by the window.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from PySide6.QtCore import Qt, Signal
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

from studio.engine.catalog import CATALOG, FAMILY_SIZE_MULTIPLE, ModelDefaults, family_defaults
from studio.engine.devices import device_choices
from studio.engine.errors import RequestError, first_line
from studio.engine.loading import local_model_kind
from studio.engine.model_info import check_local_model, default_scheduler_name
from studio.engine.request import MAX_BATCH, MAX_SEED, MAX_SIDE, GenerationRequest
from studio.engine.schedulers import names as scheduler_names
from studio.library.display import printable
from studio.settings import Preferences
from studio.ui.plain_text import plain_label, plain_tooltip
from studio.ui.wheel_guard import guard_wheel

SIZE_PRESETS = {
    "sd1": [(512, 512), (512, 768), (768, 512), (640, 448), (448, 640)],
    "sd2": [(768, 768), (768, 1024), (1024, 768), (512, 512), (896, 640)],
    "deci": [(512, 512), (512, 768), (768, 512), (640, 448), (448, 640)],
}
MODEL_DEFAULT = "Model default"
RESCALE_TIP = (
    "Guidance rescale (0 = off): tames the over-exposed, over-saturated look of high guidance, especially "
    "on v-prediction and zero-terminal-SNR models (DeciDiffusion recommends 0.7)"
)
PRECISIONS = (
    ("Auto", "auto", "float16 on a GPU; on the CPU bfloat16 if it has native bfloat16 (AVX512-BF16, AMX), else float32"),
    ("float32", "float32", "Full precision: the reference result, the most memory"),
    (
        "bfloat16",
        "bfloat16",
        "UNet and text encoder in bfloat16, VAE in float32: half the memory. On the CPU it is only fast "
        "with native bfloat16 (AVX512-BF16 or AMX); elsewhere it is many times slower than float32",
    ),
    ("float16", "float16", "GPU only: half the memory and time; SD 2.1's attention is computed in float32"),
)


class ParametersPanel(QWidget):
    """Builds GenerationRequests from the controls; emits `model_changed` with the new model spec and
    `message` with a one-line refusal (a folder that is not a model) for the status bar."""

    model_changed = Signal(str)
    message = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._last_seed: int | None = None
        self._local_models: list[str] = []
        self._local_kind: tuple[str, tuple[str, str | None]] | None = None  # (spec, its (family, prediction))
        self._cached_snapshot: tuple[str, Path | None] | None = None  # (catalogue id, its downloaded folder)
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
        self.remove_local_action = menu.addAction("Remove this local model from the list", self._remove_current_local)
        add.setMenu(menu)
        add.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.add_button = add
        form.addRow("&Model", _row(self.model, add))
        self.model_note = plain_label(wordWrap=True, accessibleName="Model note")  # never HTML
        self.model_note.setStyleSheet("color: palette(mid);")
        form.addRow("", self.model_note)

        self.scheduler = QComboBox(accessibleName="Scheduler")
        self.scheduler.addItem(MODEL_DEFAULT, None)
        for name in scheduler_names():
            self.scheduler.addItem(name, name)
        form.addRow("S&cheduler", self.scheduler)

        self.steps = QSpinBox(minimum=1, maximum=500, accessibleName="Steps")
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
        self.seed_mode.addItem("Random", "random")
        self.seed_mode.addItem("Fixed", "fixed")
        self.seed_mode.addItem("Reuse last", "reuse")
        self.seed = QLineEdit("0", accessibleName="Seed")
        self.seed.setValidator(_SeedValidator(self.seed))
        dice = QToolButton(text="New", toolTip="Pick a new random seed and fix it")
        dice.clicked.connect(lambda: self.set_seed(secrets.randbelow(MAX_SEED + 1)))
        form.addRow("S&eed", _row(self.seed_mode, self.seed, dice))
        self.seed_mode.currentIndexChanged.connect(self._sync_seed_enabled)

        self.width = QSpinBox(minimum=64, maximum=MAX_SIDE, singleStep=64, accessibleName="Width")
        self.height = QSpinBox(minimum=64, maximum=MAX_SIDE, singleStep=64, accessibleName="Height")
        self.presets = QComboBox(accessibleName="Size presets")
        self.presets.activated.connect(self._apply_preset)
        swap = QToolButton(text="⇄", toolTip="Swap width and height")
        swap.clicked.connect(self._swap_size)
        form.addRow("Si&ze", _row(self.width, QLabel("×"), self.height, swap))
        form.addRow("", self.presets)
        self.size_note = plain_label(wordWrap=True, accessibleName="Size warning")  # wraps: never widens it
        self.size_note.setStyleSheet("color: palette(mid);")
        self.size_note.setVisible(False)
        form.addRow("", self.size_note)

        self.batch = QSpinBox(minimum=1, maximum=min(MAX_BATCH, 16), accessibleName="Batch size")
        form.addRow("&Batch", self.batch)
        self.strength = QDoubleSpinBox(minimum=0.01, maximum=1.0, singleStep=0.05, decimals=2, accessibleName="Strength")
        self.strength.setToolTip("img2img: how much the canvas image may change (1 = ignore it almost entirely)")
        form.addRow("S&trength", self.strength)

        self.device = QComboBox(accessibleName="Device")
        self.device.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.device.setMinimumContentsLength(8)  # "… (not available)" entries must not widen the panel
        for choice in device_choices():
            self.device.addItem(choice.label if choice.available else f"{choice.label} (not available)", choice.value)
            item = self.device.model().item(self.device.count() - 1)
            item.setEnabled(choice.available)
            if choice.reason:
                item.setToolTip(plain_tooltip(choice.reason))  # may quote a driver's error message
        self.dtype = QComboBox(accessibleName="Precision")
        for label, value, tip in PRECISIONS:
            self.dtype.addItem(label, value)
            self.dtype.setItemData(self.dtype.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.dtype.setToolTip("Number format of the model's weights and arithmetic (hover an entry for details)")
        form.addRow("&Device", _row(self.device, self.dtype))

        self.safety = QCheckBox("Safety checker", accessibleName="Safety checker")
        self.safety.setToolTip(
            "Stable Diffusion 1.4 ships a safety checker: images it flags as NSFW are replaced by black "
            "images and marked nsfw in their metadata. Turn it off only if you accept the model card's terms."
        )
        form.addRow("", self.safety)

        self._populate_models()
        self.model.currentIndexChanged.connect(self._on_model_changed)
        self.width.valueChanged.connect(self._check_size)
        self.height.valueChanged.connect(self._check_size)
        self.apply_model_defaults()
        self._sync_seed_enabled()
        self._wheel_guard = guard_wheel(self)

    # --------------------------------------------------------------------------------------- models
    def _populate_models(self, current: str | None = None) -> None:
        """Fill the list; `current` (default: the current model) stays chosen."""
        self.model.blockSignals(True)
        current = current or (self.model_spec() if self.model.count() else None)
        self.model.clear()
        for entry in CATALOG.values():
            self.model.addItem(entry.name, entry.id)
        for spec in self._local_models:
            self.model.addItem(_local_name(spec), spec)
        if current:
            self.select_model(current)
        self.model.blockSignals(False)

    def set_local_models(self, specs: list[str]) -> None:
        self._local_models = [s for s in dict.fromkeys(specs) if s not in CATALOG]
        self._populate_models()

    def local_models(self) -> list[str]:
        return list(self._local_models)

    def add_local_model(self, spec: str) -> None:
        """Add (unchecked: the command line's --model, restored preferences) and select a local model."""
        if spec not in self._local_models and spec not in CATALOG:
            self._local_models.append(spec)
            self._populate_models()
        self.select_model(spec)

    def try_add_local_model(self, spec: str) -> bool:
        """Add a folder or file the user chose, if it is a model; otherwise say why and change nothing.

        The file may be anything, crafted included: `check_local_model` names every problem it knows as a
        RequestError (an InvalidModelError for a malformed header or an absurd config). Anything else it
        raises is still a refusal in the status bar, never a traceback that leaves the window half-updated.
        """
        try:
            check_local_model(spec)
        except RequestError as exc:
            self.message.emit(f"Not added: {exc}")
            return False
        except Exception as exc:  # noqa: BLE001 - an unreadable pick must not take the window down
            self.message.emit(f"Not added: {Path(spec).name}: cannot be read as a model ({first_line(exc)})")
            return False
        self.add_local_model(spec)
        self.message.emit(f"Added {Path(spec).name}")
        return True

    def remove_local_model(self, spec: str) -> bool:
        """Take a local model off the list (its files are not touched); the first model is chosen if it
        was the current one."""
        if spec not in self._local_models:
            return False
        was_current = self.model_spec() == spec
        self._local_models.remove(spec)
        self._populate_models(next(iter(CATALOG)) if was_current else None)
        if was_current:
            self._on_model_changed()
        return True

    def _remove_current_local(self) -> None:
        spec = self.model_spec()
        if self.remove_local_model(spec):
            self.message.emit(f"Removed {Path(spec).name} from the model list (its files are untouched)")
        else:
            self.message.emit("The current model is from the catalogue: remove its download in Models")

    def select_model(self, spec: str) -> None:
        index = self.model.findData(spec)
        if index < 0 and spec:
            self._local_models.append(spec)
            self.model.addItem(_local_name(spec), spec)
            index = self.model.count() - 1
        if index >= 0:
            self.model.setCurrentIndex(index)

    def _add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a diffusers model folder")
        if folder:
            self.try_add_local_model(folder)

    def _add_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add a checkpoint", "", "Safetensors (*.safetensors)")
        if path:
            self.try_add_local_model(path)

    def model_spec(self) -> str:
        return str(self.model.currentData() or "")

    def _kind(self) -> tuple[str, str | None]:
        """(family, prediction type) of the chosen model; a local one's is read once per choice."""
        spec = self.model_spec()
        entry = CATALOG.get(spec)
        if entry:
            return entry.family, None
        if self._local_kind is None or self._local_kind[0] != spec:
            self._local_kind = (spec, local_model_kind(spec))
        return self._local_kind[1]

    def family(self) -> str:
        return self._kind()[0]

    def defaults(self) -> ModelDefaults:
        entry = CATALOG.get(self.model_spec())
        return entry.defaults if entry else family_defaults(*self._kind())

    def set_model_note(self, text: str) -> None:
        self.model_note.setText(text)
        self.model_note.setVisible(bool(text))

    def _on_model_changed(self) -> None:
        self.apply_model_defaults()
        self.model_changed.emit(self.model_spec())

    def set_cached_snapshot(self, model_id: str, folder: Path | None) -> None:
        """Where a catalogue model is downloaded (the window looks it up): its scheduler config names the
        default scheduler exactly."""
        self._cached_snapshot = (model_id, folder)
        self._name_default_scheduler()

    def _name_default_scheduler(self) -> None:
        spec = self.model_spec()
        snapshot = self._cached_snapshot[1] if self._cached_snapshot and self._cached_snapshot[0] == spec else None
        try:
            name = default_scheduler_name(spec, snapshot, family=self.family()) if spec else None
        except (OSError, RequestError):
            name = None
        self.scheduler.setItemText(0, f"{MODEL_DEFAULT} ({name})" if name else MODEL_DEFAULT)

    def apply_model_defaults(self) -> None:
        """The model authors' defaults: steps, guidance, size, scheduler, size rule, safety checker."""
        self._local_kind = None  # chosen again: read again (a YAML config may have been put beside a file)
        d = self.defaults()
        self.steps.setValue(d.steps)
        self.guidance.setValue(d.guidance)
        self.guidance_rescale.setValue(d.guidance_rescale)
        self.scheduler.setCurrentIndex(0)
        self._name_default_scheduler()
        self.width.setValue(d.size)
        self.height.setValue(d.size)
        self.presets.clear()
        self.presets.addItem("Presets…")
        family, prediction = self._kind()
        presets = "sd1" if (family, prediction) == ("sd2", "epsilon") else family  # 512-base: SD 1.x's sizes
        for w, h in SIZE_PRESETS.get(presets, SIZE_PRESETS["sd1"]):
            self.presets.addItem(f"{w} × {h}", (w, h))
        entry = CATALOG.get(self.model_spec())
        self.safety.setVisible(bool(entry and entry.safety_checker))
        self.remove_local_action.setEnabled(entry is None and bool(self.model_spec()))
        self._check_size()

    # ------------------------------------------------------------------------------------------ size
    def _apply_preset(self, index: int) -> None:
        data = self.presets.itemData(index)
        if data:
            self.width.setValue(data[0])
            self.height.setValue(data[1])
        self.presets.setCurrentIndex(0)

    def _swap_size(self) -> None:
        w, h = self.width.value(), self.height.value()
        self.width.setValue(h)
        self.height.setValue(w)

    def size_problem(self) -> str | None:
        multiple = FAMILY_SIZE_MULTIPLE.get(self.family(), 8)
        bad = [f"{n} {v}" for n, v in (("width", self.width.value()), ("height", self.height.value())) if v % multiple]
        if bad:
            return f"{' and '.join(bad)} px: this model needs multiples of {multiple} px"
        return None

    def _check_size(self) -> None:
        problem = self.size_problem()
        self.size_note.setText(problem or "")
        self.size_note.setStyleSheet("color: #c0392b;" if problem else "color: palette(mid);")
        self.size_note.setVisible(bool(problem))

    # ------------------------------------------------------------------------------------------ seed
    def _sync_seed_enabled(self) -> None:
        self.seed.setEnabled(self.seed_mode.currentData() == "fixed")

    def set_seed(self, seed: int, *, fixed: bool = True) -> None:
        self.seed.setText(str(seed))
        if fixed:
            self.seed_mode.setCurrentIndex(self.seed_mode.findData("fixed"))

    def remember_seed(self, seed: int) -> None:
        """The seed of the last generated image, for "Reuse last"."""
        self._last_seed = seed

    def next_seed(self) -> int | None:
        mode = self.seed_mode.currentData()
        if mode == "fixed":
            return int(self.seed.text() or 0)
        if mode == "reuse" and self._last_seed is not None:
            return self._last_seed
        return None  # random: the engine picks one and reports it

    # --------------------------------------------------------------------------------------- request
    def scheduler_choice(self) -> str | None:
        """The chosen scheduler's name; None for the model's own."""
        data = self.scheduler.currentData()
        return str(data) if data else None

    def select_scheduler(self, name: str | None) -> bool:
        """Choose a scheduler by name (any spelling the engine accepts); False (and the model's own) if unknown."""
        from studio.engine.schedulers import resolve_name

        index = 0
        if name:
            try:
                index = max(self.scheduler.findData(resolve_name(str(name))), 0)
            except RequestError:
                index = 0
        self.scheduler.setCurrentIndex(index)
        return index > 0 or not name

    def build_request(self, prompt: str, negative: str, init_image=None) -> GenerationRequest:
        entry = CATALOG.get(self.model_spec())
        safety = self.safety.isChecked() if entry and entry.safety_checker else None
        return GenerationRequest(
            model=self.model_spec(),
            prompt=prompt,
            negative_prompt=negative,
            steps=self.steps.value(),
            guidance=self.guidance.value(),
            guidance_rescale=self.guidance_rescale.value(),
            seed=self.next_seed(),
            width=self.width.value(),
            height=self.height.value(),
            scheduler=self.scheduler_choice(),
            batch=self.batch.value(),
            init_image=init_image,
            strength=self.strength.value() if init_image is not None else None,
            safety_checker=safety,
        )

    def apply_fields(self, fields: dict) -> None:
        """Restore parameters read from an image's metadata (reuse parameters)."""
        if fields.get("model"):
            self.select_model(str(fields["model"]))
        if isinstance(fields.get("steps"), int):
            self.steps.setValue(fields["steps"])
        if isinstance(fields.get("guidance"), int | float):
            self.guidance.setValue(float(fields["guidance"]))
        if isinstance(fields.get("guidance_rescale"), int | float):
            self.guidance_rescale.setValue(float(fields["guidance_rescale"]))
        if isinstance(fields.get("width"), int) and isinstance(fields.get("height"), int):
            self.width.setValue(fields["width"])
            self.height.setValue(fields["height"])
        if fields.get("scheduler"):
            self.select_scheduler(str(fields["scheduler"]))
        if isinstance(fields.get("seed"), int):
            self.set_seed(fields["seed"])
        if isinstance(fields.get("strength"), int | float):
            self.strength.setValue(float(fields["strength"]))

    # ---------------------------------------------------------------------------------- persistence
    def load_preferences(self, prefs: Preferences) -> None:
        self.set_local_models(prefs.local_models)
        self.select_model(prefs.model)
        self.apply_model_defaults()
        if prefs.steps:
            self.steps.setValue(prefs.steps)
        if prefs.guidance is not None:
            self.guidance.setValue(prefs.guidance)
        if prefs.guidance_rescale is not None:
            self.guidance_rescale.setValue(prefs.guidance_rescale)
        if prefs.width and prefs.height:
            self.width.setValue(prefs.width)
            self.height.setValue(prefs.height)
        if prefs.scheduler:
            self.select_scheduler(prefs.scheduler)
        self.batch.setValue(prefs.batch)
        self.strength.setValue(prefs.strength)
        self.seed.setText(str(prefs.seed))
        self.seed_mode.setCurrentIndex(max(self.seed_mode.findData(prefs.seed_mode), 0))
        device = self.device.findData(prefs.device)
        usable = device >= 0 and self.device.model().item(device).isEnabled()
        self.device.setCurrentIndex(device if usable else 0)  # a GPU from another machine's preferences: Auto
        self.dtype.setCurrentIndex(max(self.dtype.findData(prefs.dtype), 0))
        self.safety.setChecked(prefs.safety_checker)

    def store_preferences(self, prefs: Preferences) -> None:
        prefs.model = self.model_spec()
        prefs.scheduler = self.scheduler_choice()
        prefs.steps = self.steps.value()
        prefs.guidance = self.guidance.value()
        prefs.guidance_rescale = self.guidance_rescale.value()
        prefs.width, prefs.height = self.width.value(), self.height.value()
        prefs.batch = self.batch.value()
        prefs.strength = self.strength.value()
        prefs.seed_mode = str(self.seed_mode.currentData())
        prefs.seed = int(self.seed.text() or 0)
        prefs.device = str(self.device.currentData())
        prefs.dtype = str(self.dtype.currentData())
        prefs.safety_checker = self.safety.isChecked()
        prefs.local_models = self.local_models()


def _local_name(spec: str) -> str:
    """A local model as the model list shows it: its folder's or file's name (which may hold anything:
    control characters are shown as escapes; the list itself shows plain text)."""
    return f"{printable(Path(spec).name)}  (local)"


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


def _row(*widgets: QWidget) -> QWidget:
    """Fields side by side; the row's label mnemonic focuses the first of them."""
    box = QWidget()
    layout = QHBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        layout.addWidget(w, 1 if isinstance(w, QComboBox | QLineEdit | QSpinBox) else 0)
    box.setFocusProxy(widgets[0])
    return box

