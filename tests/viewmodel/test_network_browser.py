"""NetworkBrowser headless: real LoRA and embedding files (safetensors), real previews (Pillow), the scan off the
GUI thread, filters, tags, folders kept in the preferences, the watcher, thumbnails."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from safetensors.numpy import save_file

from studio.library.extra_networks import EMBEDDING, LORA
from studio.library.paths import embeddings_dir, loras_dir
from studio.library.token_counter import TokenCounter
from studio.viewmodel.network_browser import (
    ALL,
    ITEM_ROLE,
    TOOLTIP_ROLE,
    NetworkBrowser,
    NetworkItem,
    describe,
    tag_for,
)
from studio.viewmodel.preferences import MAX_ADDED_FOLDERS, AppSettings, Preferences, clean_folders
from studio.viewmodel.prompt_state import PromptState

UNET_K = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
XL_TE = "lora_te1_text_model_encoder_layers_0_self_attn_q_proj"


def lora(path: Path, width: int = 768, *, tags: dict[str, int] | None = None, xl: bool = False) -> Path:
    """A kohya LoRA of zeros: one UNet cross-attention key projection `width` wide (SDXL: a te1 layer)."""
    key = XL_TE if xl else UNET_K
    shapes = {f"{key}.lora_down.weight": (4, width), f"{key}.lora_up.weight": (320, 4)}
    metadata = {"ss_output_name": path.stem + "_v1"}
    if tags:
        metadata["ss_tag_frequency"] = json.dumps({"10_data": tags})
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: np.zeros(s, np.float16) for k, s in shapes.items()}, str(path), metadata=metadata)
    return path


def embedding(path: Path, vectors: int = 3, width: int = 768) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"emb_params": np.zeros((vectors, width), np.float32)}, str(path))
    return path


def preview(path: Path, colour=(200, 40, 40), size=(300, 200)) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


@pytest.fixture
def app(qapp, tmp_path, monkeypatch) -> AppSettings:
    monkeypatch.setenv("LATENT_STUDIO_DATA", str(tmp_path / "data"))
    return AppSettings()


@pytest.fixture
def browser(app):
    made = []

    def make(**kw) -> NetworkBrowser:
        kw.setdefault("debounce_ms", 50)
        b = NetworkBrowser(app, **kw)
        made.append(b)
        assert b.wait_for_scan()
        return b

    yield make
    for b in made:
        b.shutdown()


def names(browser: NetworkBrowser) -> list[str]:
    return [item.name for item in browser.items()]


def test_scans_the_own_folders_and_added_ones_off_the_gui_thread(app, browser, tmp_path, qtbot):
    lora(loras_dir() / "watercolor.safetensors", tags={"watercolor": 30, "paper": 5})
    lora(loras_dir() / "styles" / "ink.safetensors", xl=True, width=768)
    embedding(embeddings_dir() / "shiny.safetensors", vectors=3)
    a1111 = tmp_path / "stable-diffusion-webui" / "models" / "Lora"
    lora(a1111 / "film.safetensors", width=1024)

    b = browser()
    assert sorted(names(b)) == ["ink", "shiny", "watercolor"]
    assert b.status == "2 LoRAs · 1 embedding"

    with qtbot.waitSignal(b.scan_finished, timeout=5000):
        assert b.add_folder(LORA, a1111)
    assert sorted(names(b)) == ["film", "ink", "shiny", "watercolor"]
    film = b.find(LORA, "film")
    assert film is not None and (film.family, film.family_label) == ("sd2", "SD 2.x")
    water = b.find(LORA, "watercolor")
    assert water.trigger_words == ("watercolor", "paper") and water.family == "sd1" and water.alias == "watercolor_v1"
    assert b.find(LORA, "ink").family == "sdxl"
    shiny = b.find(EMBEDDING, "shiny")
    assert (shiny.vectors, shiny.family, shiny.problem) == (3, "sd1", "")
    assert b.embedding_vectors() == {"shiny": 3}


def test_the_own_folders_are_made_and_watched_new_files_appear(app, browser, qtbot):
    b = browser()
    assert names(b) == [] and "No LoRAs or embeddings yet" in b.status
    assert loras_dir().is_dir() and embeddings_dir().is_dir()  # a place to drop files
    assert str(loras_dir()) in b.watched_folders() and str(embeddings_dir()) in b.watched_folders()
    with qtbot.waitSignal(b.scan_finished, timeout=10_000):
        embedding(embeddings_dir() / "fresh.safetensors", vectors=2)
    assert names(b) == ["fresh"]
    # a new subfolder is watched once scanned, even while empty
    sub = loras_dir() / "characters"
    with qtbot.waitSignal(b.scan_finished, timeout=10_000):
        sub.mkdir()
    qtbot.waitUntil(lambda: str(sub) in b.watched_folders(), timeout=5000)
    with qtbot.waitSignal(b.scan_finished, timeout=10_000):
        lora(sub / "hero.safetensors")
    assert sorted(names(b)) == ["fresh", "hero"]


def test_rescans_do_not_overlap(app, browser, qtbot):
    b = browser(watch=False)
    lora(loras_dir() / "one.safetensors")
    b.rescan()
    b.rescan()  # asked during the scan: runs after it
    b.rescan()
    assert b.scanning
    qtbot.waitUntil(lambda: not b.scanning and names(b) == ["one"], timeout=5000)


def test_filters_by_text_kind_and_family(app, browser):
    lora(loras_dir() / "watercolor.safetensors", tags={"aquarelle": 3})
    lora(loras_dir() / "Ink-Style.safetensors", xl=True)
    lora(loras_dir() / "mystery.safetensors", width=320)  # a width no released family has
    embedding(embeddings_dir() / "shiny.safetensors", vectors=3)
    embedding(embeddings_dir() / "bad-hands.safetensors", vectors=2, width=1024)
    b = browser()
    assert names(b) == ["Ink-Style", "mystery", "watercolor", "bad-hands", "shiny"]  # LoRAs, then embeddings

    b.search = "ink"
    assert names(b) == ["Ink-Style"]  # any case
    b.search = "AQUA"
    assert names(b) == ["watercolor"]  # a trigger word
    b.search = "watercolor_v1"
    assert names(b) == ["watercolor"]  # the alias
    b.search = "style ink"
    assert names(b) == ["Ink-Style"]  # every word, in any order
    b.search = "ink water"
    assert names(b) == []  # every word must appear
    assert b.status == "Nothing matches the filters."
    b.search = ""

    b.kind_filter = EMBEDDING
    assert names(b) == ["bad-hands", "shiny"]
    b.family_filter = "sd2"
    assert names(b) == ["bad-hands"]
    assert b.status == "1 of 5 shown (3 LoRAs · 2 embeddings)"
    b.kind_filter = ALL
    b.family_filter = "unknown"
    assert names(b) == ["mystery"]
    b.family_filter = "sdxl"
    assert names(b) == ["Ink-Style"]
    with pytest.raises(ValueError):
        b.family_filter = "flux"
    b.clear_filters()
    assert len(names(b)) == 5


def test_tag_for_writes_a1111s_tags():
    item = NetworkItem(LORA, "watercolor", Path("/x/watercolor.safetensors"))
    assert tag_for(item) == "<lora:watercolor:1>"
    assert tag_for(item, 0.8) == "<lora:watercolor:0.8>"
    assert tag_for(NetworkItem(EMBEDDING, "shiny", Path("/x/shiny.pt"))) == "shiny"


def test_items_in_the_model_with_thumbnails_and_plain_tooltips(app, browser, qtbot):
    path = lora(loras_dir() / "watercolor.safetensors", tags={"<b>bold</b>": 2})
    preview(loras_dir() / "watercolor.preview.png")
    embedding(embeddings_dir() / "shiny.safetensors")
    preview(embeddings_dir() / "shiny.png", size=(64, 512))
    (loras_dir() / "broken.safetensors").write_bytes(b"\x00" * 4)
    b = browser()
    model = b.model
    assert model.rowCount() == 3
    rows = {model.index(r).data(Qt.ItemDataRole.DisplayRole): model.index(r) for r in range(3)}
    water = rows["watercolor"]
    item = water.data(ITEM_ROLE)
    assert item.preview == path.with_name("watercolor.preview.png")
    assert water.data(Qt.ItemDataRole.DecorationRole) is None  # asked for: decoded in the background
    qtbot.waitUntil(lambda: isinstance(water.data(Qt.ItemDataRole.DecorationRole), QImage), timeout=5000)
    image = water.data(Qt.ItemDataRole.DecorationRole)
    assert max(image.width(), image.height()) == 128 and image.pixelColor(5, 5).red() > 150
    shiny = rows["shiny"]
    shiny.data(Qt.ItemDataRole.DecorationRole)
    qtbot.waitUntil(lambda: isinstance(shiny.data(Qt.ItemDataRole.DecorationRole), QImage), timeout=5000)
    assert rows["broken"].data(Qt.ItemDataRole.DecorationRole) is None  # no preview: the view's placeholder

    tip = water.data(TOOLTIP_ROLE)
    assert tip.splitlines()[:3] == ["watercolor", "LoRA · SD 1.x · kohya format", "Also called: watercolor_v1"]
    assert "Trigger words: <b>bold</b>" in tip and "<lora:watercolor:1>" in tip  # the view escapes it
    broken = rows["broken"].data(ITEM_ROLE)
    assert broken.problem and "Problem: " in rows["broken"].data(TOOLTIP_ROLE)
    assert "3 vectors" in describe(shiny.data(ITEM_ROLE))
    assert b.embedding_vectors() == {"shiny": 3}


def test_embedding_vectors_reach_the_token_counter(app, browser, qtbot):
    embedding(embeddings_dir() / "shiny.safetensors", vectors=3)
    (embeddings_dir() / "old.pt").write_bytes(b"a pickle: its vectors unknown")
    counter = TokenCounter()
    prompt = PromptState(counter=counter)
    assert counter.count("a shiny cat") == 3
    b = NetworkBrowser(app, watch=False, scan_now=False)
    b.embedding_vectors_changed.connect(prompt.set_embeddings)
    with qtbot.waitSignal(prompt.embeddings_changed, timeout=5000):
        b.rescan()
    assert b.embedding_vectors() == {"old": None, "shiny": 3}
    assert counter.count("a shiny cat") == 5  # "a", 3 vectors, "cat"
    assert counter.count("a SHINY, old cat") == 7  # any case; a pickle counts as 1
    b.shutdown()


def test_added_folders_persist_but_the_own_ones_are_never_stored(app, browser, tmp_path, qtbot):
    prefs_path = tmp_path / "prefs.json"
    prefs = Preferences(prefs_path)
    prefs.attach(app)
    b = browser(watch=False)
    prefs.attach(b)
    comfy = tmp_path / "ComfyUI" / "models" / "loras"
    comfy.mkdir(parents=True)
    webui = tmp_path / "webui" / "embeddings"
    webui.mkdir(parents=True)
    assert b.add_folder(LORA, comfy) and b.add_folder(EMBEDDING, webui)
    assert not b.add_folder(LORA, comfy)  # already scanned
    assert not b.add_folder(LORA, str(comfy) + "/")
    assert not b.add_folder(LORA, loras_dir())  # the own folder always is
    assert not b.add_folder(LORA, tmp_path / "missing")
    b.kind_filter = EMBEDDING
    b.wait_for_scan()
    prefs.save()

    stored = json.loads(prefs_path.read_text())
    assert stored["lora_folders"] == [str(comfy)] and stored["embedding_folders"] == [str(webui)]
    assert stored["networks_kind"] == EMBEDDING

    again = AppSettings()
    Preferences(prefs_path).attach(again)
    assert again.network_folders() == ([loras_dir(), comfy], [embeddings_dir(), webui])
    assert again.remove_network_folder(LORA, comfy) and again.network_folders()[0] == [loras_dir()]
    assert not again.remove_network_folder(LORA, loras_dir())


def test_hand_edited_folder_lists_are_cleaned():
    assert clean_folders(["/a", "/a", 3, "", "relative/path", "/b\n/c", "/nul\0", "  /d  ", "~/e"]) == ["/a", "/d", "~/e"]
    assert len(clean_folders([f"/f{i}" for i in range(200)])) == MAX_ADDED_FOLDERS
    with pytest.raises(TypeError):
        clean_folders("/a")
