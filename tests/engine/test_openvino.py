"""The OpenVINO backend on real tiny pipelines: every family, txt2img and img2img, previews, cancel, seeds,
the cache reused by a second engine, int8, and the fall back to torch when a part cannot be compiled."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from studio.engine import Cancelled, Engine, GenerationRequest
from studio.engine.openvino_pipeline import folder_identity
from studio.engine.precision import choose_placement
from studio.engine.schedulers import names as scheduler_names
from studio.engine.tiny import make_tiny_model
from studio.library.metadata import read_metadata
from studio.library.openvino_cache import OpenVinoCache


@pytest.fixture(scope="module")
def ov_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("openvino-cache")


@pytest.fixture(scope="module")
def tiny_deci(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-deci", "deci", seed=0)


@pytest.fixture(scope="module")
def ov_engine(ov_cache):
    return Engine(device="cpu", dtype="float32", backend="openvino", max_models=6, preview="linear", openvino_cache=ov_cache)


@pytest.fixture(scope="module")
def sd1_converted(ov_engine, tiny_sd1):
    """tiny_sd1, converted into the module's cache."""
    ov_engine.load(str(tiny_sd1))
    return tiny_sd1


def req(model, **kw) -> GenerationRequest:
    base = {"prompt": "a lighthouse at dusk", "steps": 3, "seed": 7, "width": 64, "height": 64}
    return GenerationRequest(model=str(model), **{**base, **kw})


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


@pytest.fixture(params=["sd1", "sd2", "deci"])
def family_model(request, tiny_sd1, tiny_sd2, tiny_deci):
    return request.param, {"sd1": tiny_sd1, "sd2": tiny_sd2, "deci": tiny_deci}[request.param]


def test_each_family_generates_on_openvino_with_a_preview_per_step(ov_engine, family_model):
    family, model = family_model
    events = []
    results = ov_engine.generate(req(model, batch=2), on_step=events.append)
    assert [r.image.size for r in results] == [(64, 64), (64, 64)]
    assert [e.step for e in events] == [1, 2, 3] and all(e.preview is not None for e in events)
    meta = results[0].metadata
    assert (meta["backend"], meta["device"], meta["dtype"]) == ("openvino", "cpu", "float32")
    assert meta["model"]["family"] == family and meta["versions"]["openvino"]
    assert pixels(results[0].image).std() > 0  # not a blank image


def test_img2img_on_openvino(ov_engine, family_model):
    _family, model = family_model
    init = ov_engine.generate(req(model))[0].image
    results = ov_engine.generate(req(model, init_image=init, strength=0.6, seed=3))
    assert results[0].image.size == (64, 64)
    assert results[0].metadata["request"]["strength"] == 0.6


def test_sizes_that_no_downsampling_divides_work_on_the_traced_unet(ov_engine, tiny_sd1):
    """A 72 px side is a 9-latent side: the UNet was traced on the branch that follows the skip's size."""
    image = ov_engine.generate(req(tiny_sd1, width=72, height=136))[0].image
    assert image.size == (72, 136)


def test_same_seed_same_pixels_and_a_second_engine_reuses_the_cache(ov_engine, ov_cache, tiny_sd1):
    first = ov_engine.generate(req(tiny_sd1, seed=11))[0].image
    again = ov_engine.generate(req(tiny_sd1, seed=11))[0].image
    assert np.array_equal(pixels(first), pixels(again))
    said = []
    second = Engine(device="cpu", dtype="float32", backend="openvino", preview="none", openvino_cache=ov_cache, on_status=said.append)
    image = second.generate(req(tiny_sd1, seed=11))[0]
    assert np.array_equal(pixels(first), pixels(image.image))
    assert not [text for text in said if "Optimising" in text]  # nothing converted again
    assert not [w for w in image.warnings if "optimised" in w]


def test_a_fully_cached_model_loads_without_reading_its_torch_weights(tmp_path, tiny_sd1):
    model = tmp_path / "model"
    shutil.copytree(tiny_sd1, model)
    cache = tmp_path / "cache"
    first = Engine(device="cpu", dtype="float32", backend="openvino", preview="none", openvino_cache=cache)
    before = first.generate(req(model))[0].image
    for name in ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors", "vae/diffusion_pytorch_model.safetensors"):
        _scramble_tensors_keeping_identity(model / name)
    said = []
    second = Engine(device="cpu", dtype="float32", backend="openvino", preview="none", openvino_cache=cache, on_status=said.append)
    result = second.generate(req(model))[0]
    assert np.array_equal(pixels(result.image), pixels(before)) and result.metadata["backend"] == "openvino"
    assert said == [] and not [w for w in result.warnings if "optimised" in w]
    on_torch = Engine(device="cpu", dtype="float32", backend="torch", preview="none").generate(req(model))[0]
    assert not np.array_equal(pixels(on_torch.image), pixels(before))  # the weights on disk are scrambled indeed


def _scramble_tensors_keeping_identity(path) -> None:
    """Every tensor byte replaced (the safetensors header kept), the size and modification time kept: the
    folder's identity for the OpenVINO cache stays, what torch would load does not."""
    stat = path.stat()
    data = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little")
    data[start:] = bytes(np.random.default_rng(0).integers(0, 0x3F, len(data) - start, dtype=np.uint8))
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_every_scheduler_runs_on_openvino(ov_engine, tiny_sd1):
    for name in scheduler_names():
        result = ov_engine.generate(req(tiny_sd1, scheduler=name, steps=2))[0]
        assert result.metadata["request"]["scheduler"] == name


def test_the_safety_checker_still_runs(ov_engine, tiny_sd1_flagging):
    results = ov_engine.generate(req(tiny_sd1_flagging))
    assert results[0].nsfw is True and results[0].metadata["backend"] == "openvino"


def test_a_cancel_during_the_steps_stops_within_one_step(ov_engine, tiny_sd1):
    cancel = threading.Event()
    seen = []

    def on_step(event):
        seen.append(event.step)
        cancel.set()

    with pytest.raises(Cancelled):
        ov_engine.generate(req(tiny_sd1, steps=10), on_step=on_step, cancel=cancel)
    assert seen == [1]


def test_a_cancel_during_conversion_stops_between_parts_and_keeps_what_was_done(tmp_path, tiny_sd2):
    cancel = threading.Event()
    said = []

    def on_status(text):
        said.append(text)
        if len(said) == 2:  # while the UNet converts: the text encoder is done and kept
            cancel.set()

    engine = Engine(device="cpu", dtype="float32", backend="openvino", preview="none", openvino_cache=tmp_path, on_status=on_status)
    with pytest.raises(Cancelled):
        engine.load(str(tiny_sd2), cancel=cancel)
    assert said[:2] == ["Optimising for this CPU: text encoder 1/4…", "Optimising for this CPU: UNet 2/4…"]
    [entry] = OpenVinoCache(tmp_path).entries()
    assert [p.split("-")[0] for p in entry.parts] == ["text_encoder"]
    said.clear()
    engine.on_status = said.append
    engine.load(str(tiny_sd2))  # the next load converts the rest only
    assert said == [f"Optimising for this CPU: {name} {i}/3…" for i, name in enumerate(["UNet", "VAE decoder", "VAE encoder"], 1)]


def test_int8_quantizes_the_unet_calibrated_and_compresses_the_text_encoder(ov_cache, sd1_converted):
    pytest.importorskip("nncf")
    said = []
    engine = Engine(device="cpu", dtype="int8", backend="openvino", preview="none", openvino_cache=ov_cache, on_status=said.append)
    result = engine.generate(req(sd1_converted))[0]
    assert (result.metadata["backend"], result.metadata["dtype"]) == ("openvino", "int8")
    assert pixels(result.image).std() > 0
    parts = next(e.parts for e in OpenVinoCache(ov_cache).entries() if e.label == sd1_converted.name)
    formats = {part.split("-")[0]: part.split("-")[1] for part in parts if "-fp16-" not in part}
    assert formats == {"text_encoder": "int8", "unet": "w8a8"}  # the VAE parts are the float16 ones float32 made
    assert said == [
        "Optimising for this CPU: text encoder 1/2…",
        "Optimising for this CPU: UNet 2/2 (int8: calibrating on 8 steps)…",
        "Optimising for this CPU: UNet 2/2 (int8: quantizing)…",
    ]
    again = Engine(device="cpu", dtype="int8", backend="openvino", preview="none", openvino_cache=ov_cache)
    assert pixels(again.generate(req(sd1_converted))[0].image).tolist() == pixels(result.image).tolist()


@pytest.mark.parametrize("phase", ["calibrating", "quantizing"])
def test_a_cancel_while_calibrating_or_quantizing_caches_no_unet(tmp_path, tiny_sd1, phase):
    pytest.importorskip("nncf")
    cancel = threading.Event()

    def on_status(text):
        if phase in text:
            cancel.set()  # the recording checks it at its next step, NNCF before its next sample

    engine = Engine(device="cpu", dtype="int8", backend="openvino", preview="none", openvino_cache=tmp_path, on_status=on_status)
    with pytest.raises(Cancelled):
        engine.load(str(tiny_sd1), cancel=cancel)
    [entry] = OpenVinoCache(tmp_path).entries()
    assert [p.split("-")[0] for p in entry.parts] == ["text_encoder"]


def test_a_part_that_cannot_compile_falls_back_to_torch_with_one_note(tmp_path, ov_cache, sd1_converted):
    cache = tmp_path / "cache"
    shutil.copytree(ov_cache, cache)
    entry = next(e for e in OpenVinoCache(cache).entries() if e.label == sd1_converted.name)
    unet = next(entry.folder / p for p in entry.parts if p.startswith("unet-fp16"))
    (unet / "openvino_model.xml").write_text("<not a model", encoding="utf-8")  # damaged on disk
    engine = Engine(device="cpu", dtype="float32", backend="openvino", preview="none", openvino_cache=cache)
    result = engine.generate(req(sd1_converted))[0]
    assert result.metadata["backend"] == "torch"
    [note] = [w for w in result.warnings if "OpenVINO" in w]
    torch_auto = choose_placement("cpu", "auto", "torch").dtype_name  # what torch's `auto` is on this CPU
    assert "compiling the UNet failed" in note and f"runs on PyTorch ({torch_auto})" in note


def test_a_folder_rewritten_is_a_new_identity_and_a_copy_another(tmp_path, tiny_sd1):
    model = tmp_path / "model"
    shutil.copytree(tiny_sd1, model)
    before = folder_identity(model)
    assert folder_identity(model) == before and folder_identity(tiny_sd1) != before
    config = model / "unet" / "config.json"
    config.write_text(json.dumps(json.loads(config.read_text())) + " ", encoding="utf-8")
    assert folder_identity(model) != before


def test_the_cli_converts_without_telemetry_or_files_outside_the_cache(tmp_path, tiny_sd1):
    """A fresh process: OpenVINO's telemetry would start at its first import there (a client id and
    counters in ~/intel, events sent) unless our import blocks it."""
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "LATENT_STUDIO_CACHE": str(tmp_path / "cache"),
           "LATENT_STUDIO_CONFIG": str(tmp_path / "config")}
    env.pop("CI", None)  # OpenVINO turns its telemetry off on CI by itself: test what users get
    done = subprocess.run(
        [sys.executable, "-m", "studio", "generate", "--model", str(tiny_sd1), "--prompt", "a fox", "--steps", "2",
         "--width", "64", "--height", "64", "--backend", "openvino", "--output-dir", str(tmp_path / "out")],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "Optimising for this CPU: UNet 2/4" in done.stderr
    assert list(home.iterdir()) == []  # no ~/intel
    [image] = (tmp_path / "out").rglob("*.png")
    assert read_metadata(image).extra["Backend"] == "openvino"
    assert [e.label for e in OpenVinoCache(tmp_path / "cache" / "openvino").entries()] == [tiny_sd1.name]
