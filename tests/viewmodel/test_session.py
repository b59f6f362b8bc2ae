"""StudioSession without a window: restoring parameters from images, generating (up to the engine, which
here refuses to start: no model is ever loaded), the queue kept across a quit, the preferences."""

from __future__ import annotations

import copy
import json
import threading
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from studio.engine.catalog import CATALOG
from studio.viewmodel.session import SavedImage, StudioSession, caption, shown
from tests.library import samples

WAIT_MS = 20_000


class NoEngine(RuntimeError):
    pass


def refusing_engine():
    """The engine factory of these tests: a job gets as far as making an engine, then fails."""
    raise NoEngine("no engine in these tests")


class Gate:
    """An engine factory that holds the first job until opened (then refuses): jobs stay pending."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def __call__(self):
        self.entered.set()
        self.opened.wait(WAIT_MS / 1000)
        raise NoEngine("no engine in these tests")


@pytest.fixture
def make_session(qtbot, tmp_path):
    sessions: list[StudioSession] = []

    def make(**kwargs) -> StudioSession:
        kwargs.setdefault("preferences_file", tmp_path / "prefs.json")
        kwargs.setdefault("output_dir", tmp_path / "out")
        kwargs.setdefault("queue_file", tmp_path / "queue.json")
        kwargs.setdefault("model_cache_dir", tmp_path / "hub")
        kwargs.setdefault("engine_factory", refusing_engine)
        session = StudioSession(**kwargs)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.shutdown()


@pytest.fixture
def session(make_session) -> StudioSession:
    return make_session()


class Messages(list):
    def __init__(self, session: StudioSession) -> None:
        super().__init__()
        session.message.connect(self.append)


def saved_image(path: Path, metadata: dict, seed: int | None = None, **kwargs) -> SavedImage:
    values = {"job_id": 1, "path": path, "image": QImage(), "seed": seed, "device": "", "dtype": "", "nsfw": False}
    return SavedImage(**{**values, **kwargs, "metadata": metadata})


def our_metadata(**request) -> dict:
    """Our metadata dict, as the engine writes it (see studio.engine.generate.build_metadata)."""
    meta = copy.deepcopy(samples.STUDIO_META)
    entry = CATALOG["deci-diffusion-1.0"]
    meta["model"].update(id=entry.id, repo=entry.repo, revision=entry.revision, family=entry.family)
    meta["request"].update(
        model=entry.id, prompt="a fox\x1b[2J", negative_prompt="blurry\x07", steps=22, guidance=6.0,
        guidance_rescale=0.35, seed=1000, width=576, height=640, scheduler="Euler a", strength=None, batch=2,
    )
    meta["request"].update(request)
    meta["seed"] = 1001
    return meta


# --------------------------------------------------------------------------------------------- reuse
def test_reuse_parameters_restores_what_made_an_image(session, tmp_path):
    messages = Messages(session)
    text = session.reuse_parameters(saved_image(tmp_path / "fox-1001.png", our_metadata(), seed=1001))
    s = session.settings
    assert (s.model, s.steps, s.guidance, s.guidance_rescale, s.scheduler) == ("deci-diffusion-1.0", 22, 6.0, 0.35, "Euler a")
    assert (s.width, s.height, s.seed, s.seed_mode) == (576, 640, 1001, "fixed")  # the image's own seed
    assert (session.prompt.prompt, session.prompt.negative_prompt) == ("a fox[2J", "blurry")
    assert text == "Parameters restored from fox-1001.png; 2 control characters removed from the prompts"
    assert messages[-1] == text


def test_reuse_parameters_of_a_local_model_uses_its_path(session, tmp_path):
    folder = tmp_path / "my-model"
    folder.mkdir()
    meta = our_metadata()
    meta["model"].update(id="my-model", repo=None, path=str(folder), family="sd1")
    session.reuse_parameters(saved_image(tmp_path / "x.png", meta))
    assert session.settings.model == str(folder) and session.settings.local_models() == [str(folder)]
    assert session.settings.steps == 22  # restored over the local model's defaults


def test_reuse_of_a_model_that_is_gone_keeps_the_current_one(session, tmp_path):
    meta = our_metadata(prompt="a cat", negative_prompt="")
    meta["model"].update(id="moved", repo=None, path=str(tmp_path / "moved-away"))
    text = session.reuse_parameters(saved_image(tmp_path / "x.png", meta))
    assert session.settings.model == "sd-1.4" and session.settings.local_models() == []
    assert f"it was made with model '{tmp_path / 'moved-away'}', which is not available here" in text
    assert text.endswith("kept Stable Diffusion 1.4")
    assert session.settings.steps == 22 and session.prompt.prompt == "a cat"  # the rest is restored


def test_apply_image_fields_from_another_tool(session):
    messages = Messages(session)
    session.settings.steps = 40
    text = session.apply_image_fields(
        {
            "model": "dreamshaper_8",  # another tool's name: not here
            "prompt": "a \u202eknight\x00",
            "negative_prompt": None,
            "steps": "many",  # bad types are skipped, not half-applied
            "guidance": 8,
            "seed": -3,
            "width": 832,
            "height": 1216,
            "scheduler": "k_dpmpp_2m",
        },
        "the gallery",
    )
    s = session.settings
    assert s.model == "sd-1.4" and s.steps == 40 and s.guidance == 8.0 and (s.width, s.height) == (832, 1216)
    assert s.seed_mode == "random" and s.scheduler == "DPM++ 2M"
    assert session.prompt.prompt == "a knight" and session.prompt.negative_prompt == ""
    assert text.startswith("Parameters restored from the gallery; it was made with model 'dreamshaper_8'")
    assert "; 2 control characters removed from the prompts" in text
    assert text.endswith("; not restored (unusable values): steps, seed")
    assert messages == [text]


def test_apply_image_fields_says_one_control_character_and_shows_hostile_names(session):
    text = session.apply_image_fields({"prompt": "a\x07b", "model": "evil\x1b[31m" + "x" * 500})
    assert "1 control character removed" in text
    assert "\x1b" not in text and len(text) < 400  # the name is made visible and cut short
    assert shown("x" * 300).endswith("…") and len(shown("x" * 300)) == 200
    for name in ("y" * 600, "a\x00b", "~no_such_user_here/model"):  # no path, yet must not raise
        assert "which is not available here" in session.apply_image_fields({"model": name})
    assert session.settings.model == "sd-1.4"
    assert session.apply_image_fields({"steps": 20}) == "Parameters restored"  # no prompts: kept as they are
    assert session.prompt.prompt == "ab"


def test_reuse_seed(session):
    messages = Messages(session)
    session.reuse_seed(77)
    assert session.settings.seed == 77 and session.settings.seed_mode == "fixed" and messages == ["Seed 77 fixed"]
    session.reuse_seed(None)
    assert session.settings.seed == 77 and len(messages) == 1


def test_a_dropped_file_offers_its_parameters(session, tmp_path):
    messages = Messages(session)
    a1111 = tmp_path / "a1111.png"
    a1111.write_bytes(samples.png_bytes(samples.text_chunk("parameters", samples.A1111_CLASSIC)))
    offer = session.restore_offer(a1111)
    assert offer is not None and offer.name == "a1111.png" and offer.fields["seed"] == 2179987202
    assert "seed 2179987202" in offer.summary and "a1111.png was made with" in offer.question()
    session.apply_image_fields(offer.fields, offer.name)
    assert session.settings.seed == 2179987202 and (session.settings.width, session.settings.height) == (512, 768)

    plain = tmp_path / "plain.png"
    plain.write_bytes(samples.png_bytes())
    assert session.restore_offer(plain) is None and "carries no generation parameters" in messages[-1]
    assert session.restore_offer(tmp_path / "missing.png") is None and messages[-1]


# ---------------------------------------------------------------------------------------- generate
def test_generate_refuses_a_size_the_model_cannot_make(session):
    messages = Messages(session)
    session.settings.model = "deci-diffusion-1.0"
    session.settings.width = 520
    assert session.generate() is None and messages[-1] == session.settings.size_problem
    assert session.queue.jobs() == [] and session.prompt.history == []


def test_generate_offers_the_download_of_a_catalogue_model(qtbot, session):
    session.prompt.prompt = "a fox"
    with qtbot.waitSignal(session.download_needed, timeout=1000) as offered:
        assert session.generate() is None
    assert offered.args[0] is CATALOG["sd-1.4"] and session.queue.jobs() == []


def test_generate_refuses_an_invalid_request_with_its_message(session, tmp_path):
    messages = Messages(session)
    session.settings.select_model(str(tmp_path / "local"))
    session.prompt.prompt = "fox " * 20_000  # 80 KB: refused before it is queued
    assert session.generate() is None and messages[-1].startswith("the prompt is 80,000 bytes long")
    assert session.queue.jobs() == [] and session.prompt.history == []


def test_a_generated_job_runs_up_to_the_engine_and_its_failure_is_reported(qtbot, session, tmp_path):
    messages = Messages(session)
    failures, ended = [], []
    session.failure.connect(lambda text, model: failures.append((text, model)))
    session.preview_ended.connect(lambda state, text: ended.append((state, text)))
    session.settings.select_model(str(tmp_path / "local"))  # local models need no download
    session.prompt.set_prompts("a fox", "blurry")
    session.settings.set_seed(5)
    session.settings.backend, session.settings.threads = "torch", 2
    with qtbot.waitSignal(session.preview_started, timeout=WAIT_MS) as started:
        job = session.generate()
    assert job is not None and messages[0] == f"Queued job #{job.id}"
    session.settings.threads = 1
    assert (job.device, job.dtype, job.backend, job.threads) == ("auto", "auto", "torch", 2)  # fixed when queued
    assert job.request.prompt == "a fox" and job.request.seed == 5 and job.output_dir == tmp_path / "out"
    assert session.prompt.history == [("a fox", "blurry")]
    assert started.args == ["Starting…", f"Job #{job.id}: a fox"]
    qtbot.waitUntil(lambda: bool(failures), timeout=WAIT_MS)
    text, model_problem = failures[0]
    assert text.startswith(f"Job #{job.id} failed: ") and not model_problem
    assert ended == [("Failed", f"Job #{job.id} failed")] and text in messages
    assert not session.cancel_current()  # nothing runs any more


def test_an_image_saved_tells_what_auto_came_to_and_the_seed_to_reuse(qtbot, session, tmp_path):
    results, previews = [], []
    session.result_added.connect(results.append)
    session.preview_image.connect(lambda image, text: previews.append(text))
    assert session.status_line == "Stable Diffusion 1.4 · Auto · Auto · Auto"
    session.settings.seed_mode = "reuse"
    image = saved_image(
        tmp_path / "out" / "fox.png", our_metadata(), seed=1234, device="cpu", dtype="float32", nsfw=True, backend="torch"
    )
    session.queue.image_saved.emit(image)
    assert results == [image] and previews == [caption(image)]
    assert caption(image) == "fox.png · seed 1234 · 22 steps · flagged by the safety checker"
    assert session.status_line == "Stable Diffusion 1.4 · Auto (cpu) · Auto (float32) · Auto (PyTorch)"
    assert session.settings.to_request("p", "").seed == 1234  # "Reuse last"
    session.settings.dtype = "float32"
    assert session.status_line == "Stable Diffusion 1.4 · Auto · float32 · Auto"  # a new choice: not known yet


def test_the_status_line_says_which_backend_auto_came_to_and_a_fallback(qtbot, session, tmp_path):
    def saved(**kwargs) -> SavedImage:
        return saved_image(tmp_path / "out" / "fox.png", our_metadata(), seed=1, device="cpu", **kwargs)

    session.queue.image_saved.emit(saved(dtype="bfloat16", backend="openvino"))
    assert session.status_line == "Stable Diffusion 1.4 · Auto (cpu) · Auto (bfloat16) · Auto (OpenVINO)"
    session.settings.backend, session.settings.dtype = "openvino", "int8"
    assert session.status_line == "Stable Diffusion 1.4 · Auto · int8 (OpenVINO) · OpenVINO (CPU)"
    session.queue.image_saved.emit(saved(dtype="int8", backend="openvino"))
    assert session.status_line == "Stable Diffusion 1.4 · Auto (cpu) · int8 (OpenVINO) · OpenVINO (CPU)"
    session.queue.image_saved.emit(saved(dtype="float32", backend="torch"))  # OpenVINO could not run it
    assert session.status_line == "Stable Diffusion 1.4 · Auto (cpu) · int8 (OpenVINO) · OpenVINO (CPU) (ran on PyTorch)"
    session.settings.backend = "auto"
    session.queue.image_saved.emit(saved(dtype="float32", backend=""))  # an engine that does not say
    assert session.status_line == "Stable Diffusion 1.4 · Auto (cpu) · int8 (OpenVINO) · Auto"


# --------------------------------------------------------------------------------------- the model
def test_the_model_note_says_whether_the_model_is_downloaded(qtbot, session):
    settings = session.settings
    qtbot.waitUntil(lambda: settings.default_scheduler == "PNDM", timeout=WAIT_MS)  # SD 1.x ships PNDM
    assert settings.model_note.startswith("Not downloaded yet: download CompVis/stable-diffusion-v1-4 in Models")
    settings.model = "deci-diffusion-1.0"
    assert settings.default_scheduler == ""  # until the new model's probe answers
    qtbot.waitUntil(lambda: settings.default_scheduler == "DDIM", timeout=WAIT_MS)
    assert session.status_line == "DeciDiffusion 1.0 · Auto · Auto · Auto"


# ---------------------------------------------------------------------------------- preferences
def test_preferences_are_saved_at_shutdown_and_restored(make_session, tmp_path):
    first = make_session()
    first.settings.model = "sd-2.1"
    first.settings.steps = 17
    first.prompt.set_prompts("a fox", "")
    first.app.theme = "dark"
    first.shutdown()
    first.shutdown()  # runs once
    stored = json.loads((tmp_path / "prefs.json").read_text())
    assert stored["model"] == "sd-2.1" and stored["steps"] == 17 and stored["theme"] == "dark"
    assert "output_dir" in stored and stored["output_dir"] is None  # --output-dir is for one run only
    again = make_session()
    assert (again.settings.model, again.settings.steps, again.prompt.prompt, again.app.theme) == (
        "sd-2.1", 17, "a fox", "dark",
    )
    assert again.output_path() == tmp_path / "out"


def test_the_output_folder_chosen_is_kept(make_session, tmp_path):
    session = make_session()
    session.set_output_folder(tmp_path / "chosen")
    assert session.output_path() == tmp_path / "chosen" and session.queue.output_dir == tmp_path / "chosen"
    session.shutdown()
    assert make_session(output_dir=None).output_path() == tmp_path / "chosen"


def test_a_preferences_file_that_cannot_be_written_is_a_message(make_session, tmp_path):
    (tmp_path / "prefs.json").mkdir()
    session = make_session()
    messages = Messages(session)
    session.save()
    assert messages[-1].startswith("Could not save preferences")


# ------------------------------------------------------------------------------------ the queue
def test_pending_jobs_are_kept_at_quit_and_offered_again(qtbot, make_session, tmp_path):
    gate = Gate()
    first = make_session(engine_factory=gate)
    first.settings.select_model(str(tmp_path / "local"))
    for prompt in ("first", "second"):
        first.prompt.prompt = prompt
        assert first.generate() is not None
    assert gate.entered.wait(WAIT_MS / 1000)  # the first one runs (stuck making its engine)
    assert first.cancel_current()
    first.prompt.prompt = "third"
    assert first.generate() is not None
    gate.opened.set()
    first.shutdown()
    assert (tmp_path / "queue.json").is_file()

    second = make_session()
    saved = second.saved_queue()
    assert [r.prompt for r in saved.requests] == ["second", "third"] and saved.skipped == 0  # not the cancelled one
    messages = Messages(second)
    second.resume(saved, run=False)
    assert not (tmp_path / "queue.json").exists() and second.queue.jobs() == [] and messages == []
    assert second.saved_queue().requests == []


def test_resumed_jobs_run_with_todays_device(qtbot, make_session, tmp_path):
    gate = Gate()
    first = make_session(engine_factory=gate)
    first.settings.select_model(str(tmp_path / "local"))
    first.prompt.prompt = "kept"
    first.generate()
    assert gate.entered.wait(WAIT_MS / 1000)
    gate.opened.set()
    first.shutdown()

    opened = Gate()
    opened.opened.set()  # refuses at once
    second = make_session(engine_factory=opened)
    second.settings.dtype, second.settings.backend, second.settings.threads = "float32", "openvino", 4
    messages = Messages(second)
    second.resume(second.saved_queue(), run=True)
    jobs = second.queue.jobs()
    assert [j.request.prompt for j in jobs] == ["kept"]
    assert (jobs[0].dtype, jobs[0].backend, jobs[0].threads) == ("float32", "openvino", 4)
    assert messages == ["Resumed 1 job"] and not (tmp_path / "queue.json").exists()
    second.discard_unreadable_queue()
    assert "could not be read" in messages[-1]


def test_a_canvas_image_makes_the_job_img2img_at_the_output_size(qtbot, session, tmp_path):
    from PIL import Image

    settings = session.settings
    settings.select_model(str(tmp_path / "local"))
    settings.set_size(320, 256)
    settings.strength = 0.45
    session.prompt.prompt = "a fox"
    assert not settings.has_init_image
    session.canvas.set_image(Image.new("RGB", (100, 60), "red"), "red.png")
    assert settings.has_init_image
    job = session.generate()
    assert job is not None and job.request.strength == 0.45 and job.request.init_image.size == (320, 256)
    session.canvas.clear()
    assert not settings.has_init_image
    job = session.generate()
    assert job is not None and job.request.init_image is None and job.request.strength is None


def test_queue_status_reaches_the_status_bar_and_the_busy_bar(session):
    messages, busy, ended = Messages(session), [], []
    session.preview_busy.connect(busy.append)
    session.preview_ended.connect(lambda state, text: ended.append((state, text)))
    session.queue.status.emit("Loading model tiny…")
    assert messages == ["Loading model tiny…"] and busy == ["Loading model tiny…"]
    session.queue.status.emit("Ready")
    assert messages[-1] == "Ready" and len(busy) == 1
    session.queue.status.emit("Optimising for this CPU: UNet 2/4…")  # minutes on a model's first use
    assert messages[-1] == busy[-1] == "Optimising for this CPU: UNet 2/4…"
    session.queue.job_started.emit(4)  # the preview follows the job started last
    session.queue.job_cancelled.emit(3)  # another job: the preview is left alone
    session.queue.job_cancelled.emit(4)
    session.queue.job_finished.emit(4)
    assert ended == [("Cancelled", "Job #4 cancelled"), ("Done", "")]
    session.queue.job_failed.emit(9, "out of memory")
    assert messages[-1] == "Job #9 failed: out of memory"
    session.queue.status.emit("Ready")  # the failure stays readable
    assert messages[-1] == "Job #9 failed: out of memory"


def test_reuse_says_which_loras_of_the_prompt_are_not_here(session, tmp_path):
    folder = tmp_path / "my-loras"
    folder.mkdir()
    (folder / "present.safetensors").write_bytes(b"")  # listed by name, whatever it holds
    session.app.lora_folders = [str(folder)]
    text = session.apply_image_fields({"prompt": "a fox <lora:present:0.5> <lora:ghost> <lyco:gone:1>"}, "fox.png")
    assert "LoRAs not found here: ghost, gone" in text
    assert session.prompt.prompt == "a fox <lora:present:0.5> <lora:ghost> <lyco:gone:1>"  # the references are kept
