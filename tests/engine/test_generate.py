"""txt2img / img2img on real tiny diffusers pipelines: sizes, steps, seeds, batches, cancel, safety."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from studio.engine import Cancelled, GenerationRequest, RequestError


def req(model, **kw) -> GenerationRequest:
    base = {"prompt": "a lighthouse at dusk", "steps": 4, "seed": 7, "width": 64, "height": 64, "scheduler": "DDIM"}
    return GenerationRequest(model=str(model), **{**base, **kw})


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_txt2img_size_and_one_preview_per_step(engine, tiny_sd1):
    events = []
    results = engine.generate(req(tiny_sd1, steps=6, width=64, height=128), on_step=events.append)
    assert [r.image.size for r in results] == [(64, 128)]
    assert [e.step for e in events] == [1, 2, 3, 4, 5, 6]
    assert {e.total for e in events} == {6}
    assert all(isinstance(e.preview, Image.Image) and e.preview.size == (8, 16) for e in events)


@pytest.mark.parametrize("scheduler", ["PNDM", "Euler a"])
@pytest.mark.parametrize("steps", [1, 5, 30])
def test_progress_counts_the_users_steps(engine, tiny_sd1, scheduler, steps):
    """PNDM (PLMS) evaluates the UNet steps+1 times; progress still reads 1/steps .. steps/steps, once each."""
    events = []
    engine.generate(req(tiny_sd1, steps=steps, scheduler=scheduler), on_step=events.append)
    assert [e.step for e in events] == list(range(1, steps + 1))
    assert {e.total for e in events} == {steps}


@pytest.mark.parametrize("scheduler", ["PNDM", "DDIM"])
def test_img2img_progress_counts_the_steps_that_run(engine, tiny_sd1, scheduler):
    """img2img runs the schedule's last part: strength 0.5 of 10 steps is 5 steps, PNDM's extra one aside."""
    events = []
    init = Image.new("RGB", (64, 64), (90, 140, 200))
    engine.generate(req(tiny_sd1, steps=10, scheduler=scheduler, init_image=init, strength=0.5), on_step=events.append)
    assert [(e.step, e.total) for e in events] == [(i, 5) for i in range(1, 6)]


def test_same_seed_same_pixels_other_seed_differs(engine, tiny_sd2):
    a = engine.generate(req(tiny_sd2, seed=123))[0].image
    b = engine.generate(req(tiny_sd2, seed=123))[0].image
    c = engine.generate(req(tiny_sd2, seed=124))[0].image
    assert np.array_equal(pixels(a), pixels(b))
    assert np.abs(pixels(a) - pixels(c)).mean() > 1.0


def test_batch_uses_consecutive_seeds(engine, tiny_sd1):
    batch = engine.generate(req(tiny_sd1, seed=40, batch=3))
    assert [r.seed for r in batch] == [40, 41, 42]
    assert [r.metadata["seed"] for r in batch] == [40, 41, 42]
    assert [r.metadata["batch_index"] for r in batch] == [0, 1, 2]
    single = pixels(engine.generate(req(tiny_sd1, seed=41))[0].image)
    # Same noise as the second batch image (a CPU generator per image). Batched maths may round a little
    # differently (by how much depends on the CPU), so only: far closer to its own seed than to another's.
    assert np.abs(single - pixels(batch[1].image)).mean() < np.abs(single - pixels(batch[0].image)).mean() / 4
    assert np.abs(pixels(batch[0].image) - pixels(batch[1].image)).mean() > 1.0


def test_random_seed_is_reported(engine, tiny_sd1):
    result = engine.generate(req(tiny_sd1, seed=None))[0]
    assert 0 <= result.seed < 2**32
    assert result.metadata["request"]["seed"] == result.seed


@pytest.mark.parametrize("cancel_at", [1, 3])
def test_cancel_takes_effect_within_one_step(engine, tiny_sd1, cancel_at):
    cancel = threading.Event()
    seen = []

    def on_step(ev):
        seen.append(ev.step)
        if ev.step == cancel_at:
            cancel.set()

    with pytest.raises(Cancelled):
        engine.generate(req(tiny_sd1, steps=20), on_step=on_step, cancel=cancel)
    assert seen == list(range(1, cancel_at + 1))


def test_cancel_before_start(engine, tiny_sd1):
    cancel = threading.Event()
    cancel.set()
    seen = []
    with pytest.raises(Cancelled):
        engine.generate(req(tiny_sd1), on_step=seen.append, cancel=cancel)
    assert seen == []


def test_engine_still_works_after_a_cancel(engine, tiny_sd1):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        engine.generate(req(tiny_sd1), cancel=cancel)
    assert engine.generate(req(tiny_sd1))[0].image.size == (64, 64)


def test_img2img_size_steps_and_shared_components(engine, tiny_sd1):
    init = Image.new("RGB", (100, 60), (200, 30, 30))  # another size: resized to the request's
    events = []
    results = engine.generate(req(tiny_sd1, steps=10, init_image=init, strength=0.5), on_step=events.append)
    assert results[0].image.size == (64, 64)
    assert len(events) == 5 and events[-1].total == 5  # DDIM: int(10 * 0.5) steps
    meta = results[0].metadata
    assert meta["request"]["strength"] == 0.5
    assert len(meta["request"]["init_image_sha256"]) == 64
    model = engine.load(str(tiny_sd1))
    assert model.img2img.unet is model.txt2img.unet and model.img2img.vae is model.txt2img.vae


def test_img2img_from_a_file_and_a_bad_file(engine, tiny_sd1, tmp_path):
    good = tmp_path / "init.png"
    Image.new("RGB", (64, 64), (10, 200, 10)).save(good)
    assert engine.generate(req(tiny_sd1, init_image=good, strength=0.8))[0].image.size == (64, 64)
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(RequestError, match="init image"):
        engine.generate(req(tiny_sd1, init_image=bad, strength=0.8))


def test_img2img_init_image_matters_less_as_strength_grows(engine, tiny_sd1):
    """Random weights reconstruct nothing, but the init image's influence must shrink with strength."""
    light, dark = Image.new("RGB", (64, 64), (240, 240, 240)), Image.new("RGB", (64, 64), (10, 10, 60))

    def influence(strength: float) -> float:
        a, b = (
            engine.generate(req(tiny_sd1, steps=10, init_image=i, strength=strength))[0].image
            for i in (light, dark)
        )
        return float(np.abs(pixels(a) - pixels(b)).mean())

    assert influence(0.2) > 2 * influence(1.0)


def test_loaded_model_is_cached(engine, tiny_sd1):
    assert engine.load(str(tiny_sd1)) is engine.load(str(tiny_sd1))


def test_safety_checker_flags_for_real_and_blacks_out(engine, tiny_sd1_flagging):
    results = engine.generate(req(tiny_sd1_flagging, batch=2))
    assert [r.nsfw for r in results] == [True, True]
    assert all(pixels(r.image).max() == 0 for r in results)
    assert results[0].metadata["nsfw"] is True


def test_safety_checker_passes_and_can_be_turned_off(engine, tiny_sd1, tiny_sd1_flagging, tiny_sd2):
    assert engine.generate(req(tiny_sd1))[0].nsfw is False
    off = engine.generate(req(tiny_sd1_flagging, safety_checker=False))[0]
    assert off.nsfw is None and pixels(off.image).max() > 0
    assert engine.generate(req(tiny_sd2))[0].nsfw is None  # SD 2.x has no checker


def test_guidance_rescale_and_no_guidance_run(engine, tiny_sd2):
    a = engine.generate(req(tiny_sd2, guidance_rescale=0.7))[0]
    b = engine.generate(req(tiny_sd2, guidance=0.0))[0]
    assert a.metadata["request"]["guidance_rescale"] == 0.7
    assert a.image.size == b.image.size == (64, 64)


def test_long_prompt_is_reported_not_fatal(engine, tiny_sd1):
    """Long prompts never crash; they are read in 75-token chunks now, so nothing is ignored or warned."""
    long_prompt = " ".join(["intricate"] * 100)
    results = engine.generate(req(tiny_sd1, prompt=long_prompt, negative_prompt="blurry"))
    assert results[0].image.size == (64, 64)
    assert not any("ignored" in w for w in results[0].warnings)
    long_negative = engine.generate(req(tiny_sd1, prompt="a cat", negative_prompt=long_prompt))
    assert long_negative[0].image.size == (64, 64)


def test_metadata_records_what_reproduces_the_image(engine, tiny_sd2):
    meta = engine.generate(req(tiny_sd2, scheduler="Euler a", seed=5))[0].metadata
    assert meta["schema"] == 1 and meta["app"] == "latent-studio"
    assert meta["model"]["family"] == "sd2" and meta["model"]["path"] == str(tiny_sd2)
    assert meta["request"]["scheduler"] == "Euler a"
    assert meta["scheduler_config"]["prediction_type"] == "v_prediction"
    # float32 unless STUDIO_AUTO_CPU_DTYPE asks for bfloat16: the metadata says which ran
    assert meta["device"] == "cpu" and meta["dtype"] == engine.placement().dtype_name
    assert meta["dtype"] in {"float32", "bfloat16"}
    assert set(meta["versions"]) == {"torch", "diffusers"}


def test_default_scheduler_is_the_models_own(engine, tiny_sd1):
    meta = engine.generate(req(tiny_sd1, scheduler=None))[0].metadata
    assert meta["request"]["scheduler"] == "PNDM"


def test_a_lora_that_is_not_here_is_removed_with_a_warning_and_kept_in_metadata(engine, tiny_sd1):
    """A tag is never encoded as text: it is removed (as A1111 does); a LoRA no folder holds is reported."""
    tagged = engine.generate(req(tiny_sd1, prompt="a lighthouse <lora:foggy_v2:0.8> at dusk"))[0]
    plain = engine.generate(req(tiny_sd1, prompt="a lighthouse  at dusk"))[0]
    assert np.array_equal(pixels(tagged.image), pixels(plain.image))
    assert "LoRA 'foggy_v2' not found in the LoRA folders: not applied" in tagged.warnings
    assert plain.warnings == []
    assert tagged.metadata["request"]["prompt"] == "a lighthouse <lora:foggy_v2:0.8> at dusk"


def test_tags_in_weighted_and_negative_prompts(engine, tiny_sd2):
    tagged = engine.generate(req(tiny_sd2, prompt="(fox:1.3) <lora:a:1>", negative_prompt="<hypernet:b:0.5>blurry"))[0]
    plain = engine.generate(req(tiny_sd2, prompt="(fox:1.3) ", negative_prompt="blurry"))[0]
    assert np.array_equal(pixels(tagged.image), pixels(plain.image))
    assert tagged.warnings == [
        "ignored (hypernetworks are not supported; tags in the negative prompt are not applied, as in A1111): "
        "<hypernet:b:0.5>",
        "LoRA 'a' not found in the LoRA folders: not applied",
    ]
