"""`studio batch --ray`'s Ray half (studio.server.ray_batch) on a real local Ray cluster of 2 CPUs.

One cluster for the module (starting Ray costs seconds) and one pool of 2 workers kept across tests (a
worker's start, importing torch and diffusers, costs seconds too); run_ray_batch starts its own once.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys

import pytest

ray = pytest.importorskip("ray")

from studio.engine.card_format import parse_card  # noqa: E402
from studio.engine.errors import RequestError  # noqa: E402
from studio.server.ray_batch import (  # noqa: E402
    RAY_MISSING,
    Checkpoint,
    CheckpointError,
    RayBatchPool,
    RayMissingError,
    requests_digest,
    run_ray_batch,
)

PROMPTS = ["a red cube", "a blue sphere", "a green cone", "a lighthouse", "a cat", "a quiet lake"]
OPTIONS = {"device": "cpu", "dtype": "float32", "backend": "torch"}


def card_requests(model, prompts=PROMPTS, seed=5):
    card = parse_card({"input_data": {"data": prompts, "parameters": {
        "num_inference_steps": 2, "width": 64, "height": 64, "guidance_scale": 5.0}}})
    return card.requests(str(model), seed)


def pixels(row: dict) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(row["generated_image"]))) as image:
        return image.convert("RGB").tobytes()


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=150 << 20)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def local(tiny_sd1):
    """The same requests run by a local Engine, as `studio batch` without --ray does: prompts and pixels.

    With torch on one thread, as each worker of 1 CPU runs: on the CPU the thread count changes how
    reductions split, and with it the last bits and now and then a pixel level."""
    import torch

    from studio.engine import Engine

    engine = Engine(device="cpu", dtype="float32", backend="torch", preview="none")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = []
        for request in card_requests(tiny_sd1):
            results = engine.generate(request)
            out.append([(request.prompt, r.image.convert("RGB").tobytes()) for r in results])
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="module")
def pool(cluster, tiny_sd1):
    """Two workers with the tiny model loaded; `pool.on_status` is each test's to set."""
    with RayBatchPool(OPTIONS, workers=2) as pool:
        pool.warm(card_requests(tiny_sd1)[0])
        assert all(slot.ready for slot in pool.slots)
        yield pool


def as_pairs(batch: list[list[dict]]) -> list[list[tuple[str, bytes]]]:
    return [[(row["prompt"], pixels(row)) for row in rows] for rows in batch]


def test_two_workers_give_the_local_pixels_in_input_order(cluster, tiny_sd1, local):
    progress, status = [], []
    batch = run_ray_batch(card_requests(tiny_sd1), OPTIONS, workers=2, on_progress=lambda d, t: progress.append((d, t)),
                          on_status=status.append)
    assert as_pairs(batch) == local
    assert progress == [(n, 6) for n in range(1, 7)]
    assert sum("started on" in s for s in status) == 2, status
    row = batch[0][0]
    assert set(row) == {"prompt", "generated_image", "nsfw_content_detected"}
    assert not [n for n in ray.util.list_named_actors() if n.startswith("studio-batch-")]  # workers released


def test_studio_batch_ray_writes_the_local_batchs_output(cluster, tiny_sd1, local, tmp_path, capsys):
    """Before the module's pool takes the cluster's two CPUs (its workers would leave none for this run)."""
    from studio.cli import main

    source = tmp_path / "in.json"
    source.write_text(json.dumps({"input_data": {"columns": ["prompt"], "index": list(range(len(PROMPTS))), "data": PROMPTS,
                                                 "parameters": {"num_inference_steps": 2, "width": 64, "height": 64,
                                                                "guidance_scale": 5.0, "seed": 5}}}))
    out = tmp_path / "out.json"
    assert main(["batch", str(source), "--ray", "--workers", "2", "--model", str(tiny_sd1), "--device", "cpu",
                 "--dtype", "float32", "--backend", "torch", "-o", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [[(row["prompt"], pixels(row))] for row in rows] == local
    err = capsys.readouterr().err
    assert "studio: 6/6 done" in err and "Traceback" not in err
    assert main(["batch", str(source), "--workers", "2"]) == 2  # --workers goes with --ray


def test_a_killed_worker_costs_a_retry_not_the_batch(pool, tiny_sd1, local):
    status, killed = [], []
    pool.on_status = status.append

    def kill_one(done, total):
        if not killed:  # after the first item: one of the two workers dies (the busy or the idle one)
            name = sorted(n for n in ray.util.list_named_actors() if n.startswith("studio-batch-"))[0]
            ray.kill(ray.get_actor(name), no_restart=True)
            killed.append(name)

    batch = pool.run(card_requests(tiny_sd1), on_progress=kill_one)
    assert as_pairs(batch) == local
    assert any(f"worker {killed[0]} lost" in s and "starting another" in s for s in status), status
    assert any("retrying" in s for s in status), status


def test_checkpoint_resume_skips_finished_items(pool, tiny_sd1, local, tmp_path):
    path = tmp_path / "run.ckpt.jsonl"
    requests = card_requests(tiny_sd1)

    class Stop(Exception):
        pass

    def stop_after_three(done, total):
        if done == 3:
            raise Stop

    with pytest.raises(Stop):
        pool.run(requests, checkpoint=path, on_progress=stop_after_three)
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["sha256"] == requests_digest(requests)
    first = {json.loads(line)["index"] for line in lines[1:]}
    assert len(first) == 3

    progress, status = [], []
    pool.on_status = status.append
    batch = pool.run(requests, checkpoint=path, on_progress=lambda d, t: progress.append(d))
    assert as_pairs(batch) == local
    assert progress == [4, 5, 6]  # only the three items the checkpoint did not hold ran
    assert any("3 of 6 items already done" in s for s in status)
    lines = path.read_text().splitlines()
    assert sorted(json.loads(line)["index"] for line in lines[1:]) == list(range(6))

    # A finished checkpoint: nothing runs, no worker starts (run_ray_batch does not even connect).
    status.clear()
    again = run_ray_batch(requests, OPTIONS, workers=2, checkpoint=path, on_status=status.append,
                          on_progress=lambda d, t: progress.append(d))
    assert again == batch and progress == [4, 5, 6]
    assert not any("started on" in s for s in status)


def test_a_request_error_in_a_worker_is_not_retried(pool, tiny_sd1, local, tmp_path):
    status = []
    pool.on_status = status.append
    requests = card_requests(tmp_path / "no-such-model", prompts=["x"])
    with pytest.raises(RequestError) as caught:
        pool.run(requests)
    assert "no-such-model" in str(caught.value)
    assert not any("retrying" in s or "lost" in s for s in status), status
    assert as_pairs(pool.run(card_requests(tiny_sd1))) == local  # the workers are fine for the next batch


def test_an_item_failing_otherwise_is_retried_on_another_worker_then_given_up(pool, tiny_sd1):
    """A failure that is not the user's RequestError (here a TypeError from inside the engine) is run again
    on the other worker; after max_attempts the batch stops with the item's message."""
    from dataclasses import replace

    from studio.server.ray_batch import RayBatchError

    good = card_requests(tiny_sd1)
    pool.warm(good[0])  # both workers up (one may be a replacement still starting after the kill test)
    status = []
    pool.on_status = status.append
    bad = replace(good[1], init_image=42)  # not validated by the driver: the engine's load_image refuses it
    with pytest.raises(RayBatchError, match=r"item 1 \(prompt 'a blue sphere'\) failed 2 times") as caught:
        pool.run([good[0], bad, good[2]], max_attempts=2)
    assert "last: TypeError: load_image() needs a path" in str(caught.value)
    workers = str(caught.value).split("(on ")[1].split(")")[0].split(", ")
    assert len(workers) == 2 and workers[0] != workers[1], caught.value  # retried on the other worker
    assert [s for s in status if s.startswith("item 1 failed on")] == [
        f"item 1 failed on {workers[0]} (TypeError: load_image() needs a path, bytes or a binary file object, not int); retrying"
    ]
    assert not any("lost" in s for s in status), status  # a failing item does not cost its worker


def test_a_checkpoint_of_other_requests_is_refused(tiny_sd1, tmp_path):
    path = tmp_path / "other.jsonl"
    Checkpoint(path, requests_digest(card_requests(tiny_sd1, seed=1)), len(PROMPTS)).close()
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match="belongs to another batch"):
        run_ray_batch(card_requests(tiny_sd1, seed=2), OPTIONS, checkpoint=path)
    assert path.read_bytes() == before

    foreign = tmp_path / "out.json"
    foreign.write_text('[{"prompt": "x"}]')
    with pytest.raises(CheckpointError, match="not a studio batch checkpoint"):
        run_ray_batch(card_requests(tiny_sd1), OPTIONS, checkpoint=foreign)
    assert foreign.read_text() == '[{"prompt": "x"}]'


def test_a_torn_last_line_is_cut_off_and_a_damaged_one_refused(tiny_sd1, tmp_path):
    requests = card_requests(tiny_sd1)
    path = tmp_path / "torn.jsonl"
    store = Checkpoint(path, requests_digest(requests), len(requests))
    store.add(4, [{"prompt": PROMPTS[4], "generated_image": "", "nsfw_content_detected": False}])
    store.close()
    good = path.read_bytes()
    path.write_bytes(good + b'{"index": 5, "rows": [{"pro')  # a crash mid-write
    store = Checkpoint(path, requests_digest(requests), len(requests))
    assert list(store.done) == [4]
    store.close()
    assert path.read_bytes() == good

    path.write_bytes(good + b"garbage\n")
    with pytest.raises(CheckpointError, match="line 3 is damaged"):
        Checkpoint(path, requests_digest(requests), len(requests))


def test_without_ray_the_message_says_how_to_get_it(monkeypatch, tiny_sd1):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(RayMissingError) as caught:
        run_ray_batch(card_requests(tiny_sd1), OPTIONS)
    assert str(caught.value) == RAY_MISSING == "studio batch --ray needs Ray: pip install 'latent-studio[cluster]'"


def test_importing_the_module_imports_no_ray():
    code = "import sys, studio.cli, studio.server.ray_batch; assert 'ray' not in sys.modules, 'ray imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_an_address_nothing_answers_is_refused_in_seconds():
    import socket

    from studio.server.ray_batch import RayBatchError, _check_reachable

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    with pytest.raises(RayBatchError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}"):
        _check_reachable(f"127.0.0.1:{port}")
    _check_reachable("ray://head:10001")  # Ray client addresses are Ray's to check

