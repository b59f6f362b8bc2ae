"""Which backend and precision `auto` and each explicit choice come to."""

from __future__ import annotations

import pytest

from studio.engine.backends import AUTO_BACKEND_ENV, choose_backend, openvino_installed, openvino_precision
from studio.engine.errors import RequestError
from studio.engine.precision import AUTO_CPU_DTYPE_ENV, choose_placement

needs_openvino = pytest.mark.skipif(not openvino_installed(), reason="OpenVINO is not installed")


@needs_openvino
def test_auto_is_openvino_on_the_cpu_and_torch_on_a_gpu(monkeypatch):
    monkeypatch.delenv(AUTO_BACKEND_ENV, raising=False)
    assert choose_backend("auto", "cpu") == "openvino"
    assert choose_backend("auto", "cuda") == "torch"
    assert choose_backend("auto", "mps") == "torch"
    assert choose_placement("cpu", "auto", "auto").backend == "openvino"


def test_the_environment_can_pin_what_auto_means(monkeypatch):
    monkeypatch.setenv(AUTO_BACKEND_ENV, "torch")
    assert choose_backend("auto", "cpu") == "torch"
    assert choose_placement("cpu", "auto", "auto").backend == "torch"


def test_explicit_choices_and_their_refusals():
    assert choose_backend("torch", "cpu") == "torch"
    with pytest.raises(RequestError, match="unknown backend 'tensorrt'"):
        choose_backend("tensorrt", "cpu")
    with pytest.raises(RequestError, match="runs on the CPU"):
        choose_backend("openvino", "cuda")
    with pytest.raises(RequestError, match="int8 runs on the OpenVINO backend only"):
        choose_placement("cpu", "int8", "torch")


@pytest.mark.parametrize(("native", "forced", "expected"), [
    (True, None, "bfloat16"), (False, None, "float32"), (True, "float32", "float32"), (False, "bfloat16", "bfloat16"),
])
def test_auto_precision_follows_the_cpu_and_the_override(monkeypatch, native, forced, expected):
    if forced:
        monkeypatch.setenv(AUTO_CPU_DTYPE_ENV, forced)
    else:
        monkeypatch.delenv(AUTO_CPU_DTYPE_ENV, raising=False)
    assert openvino_precision("auto", native) == expected


def test_explicit_precisions_on_openvino():
    assert openvino_precision("fp32", True) == "float32"
    assert openvino_precision("bf16", False) == "bfloat16"
    with pytest.raises(RequestError, match="float32, bfloat16 or int8"):
        openvino_precision("float16", True)


@needs_openvino
def test_an_openvino_placement_runs_torch_parts_in_float32():
    import torch

    placement = choose_placement("cpu", "bfloat16", "openvino")
    assert (placement.backend, placement.dtype_name, placement.dtype, placement.vae_dtype) == (
        "openvino", "bfloat16", torch.float32, torch.float32,
    )
    assert placement.label == "cpu bfloat16 (OpenVINO)"
