"""The OpenAPI 3.1 description served at /openapi.json. The request schema lists the request's own fields
(a test checks that no field is missing) with the limits its checks use; the checks themselves are
GenerationRequest.validate's, which stays the authority."""

from __future__ import annotations

from typing import Any

from studio.engine import request as limits
from studio.engine.card_format import PARAMETERS

_FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    "model": {"type": "string", "maxLength": 200,
              "description": "a catalogue id or a model in the server's --model-dir (GET /v1/models)"},
    "prompt": {"type": "string", "description": f"at most {limits.MAX_PROMPT_BYTES} bytes of UTF-8; A1111 syntax: "
               "(word:1.2), [word], <lora:name:w>"},
    "negative_prompt": {"type": "string", "description": f"at most {limits.MAX_PROMPT_BYTES} bytes of UTF-8"},
    "steps": {"type": ["integer", "null"], "minimum": limits.STEPS_RANGE[0], "maximum": limits.STEPS_RANGE[1]},
    "guidance": {"type": ["number", "null"], "minimum": limits.GUIDANCE_RANGE[0], "maximum": limits.GUIDANCE_RANGE[1]},
    "seed": {"type": ["integer", "null"], "minimum": 0, "maximum": limits.MAX_SEED, "description": "null: a random seed"},
    "width": {"type": ["integer", "null"], "minimum": 8, "maximum": limits.MAX_SIDE,
              "description": "a multiple of 8 (64 for DeciDiffusion)"},
    "height": {"type": ["integer", "null"], "minimum": 8, "maximum": limits.MAX_SIDE},
    "scheduler": {"type": ["string", "null"], "description": 'A1111 names: "Euler a", "DPM++ 2M Karras", ...'},
    "batch": {"type": "integer", "minimum": 1, "maximum": limits.MAX_BATCH},
    "init_image": {"type": ["string", "null"], "contentEncoding": "base64", "description": "PNG, JPEG or WebP file: img2img"},
    "strength": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1},
    "guidance_rescale": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
    "safety_checker": {"type": ["boolean", "null"]},
    "mask_image": {"type": ["string", "null"], "contentEncoding": "base64", "description": "white regenerates, black keeps"},
    "mask_blur": {"type": ["integer", "null"], "minimum": 0},
    "masked_content": {"enum": ["original", "fill", "noise", "nothing", None]},
    "inpaint_area": {"enum": ["whole", "masked", None]},
    "padding": {"type": ["integer", "null"], "minimum": 0, "maximum": limits.MAX_SIDE},
    "invert_mask": {"type": "boolean"},
    "expand": {"type": ["array", "null"], "items": {"type": "integer", "minimum": 0}, "minItems": 4, "maxItems": 4,
               "description": "outpainting: px added left, top, right, bottom"},
    "outpaint_fill": {"enum": ["edge", "noise", None]},
    "init_image_sha256": {"type": ["string", "null"], "description": "checked against init_image when both are sent"},
    "mask_image_sha256": {"type": ["string", "null"], "description": "checked against mask_image when both are sent"},
}


def request_schema() -> dict[str, Any]:
    from dataclasses import fields

    names = [f.name for f in fields(limits.GenerationRequest)] + ["init_image_sha256", "mask_image_sha256"]
    return {
        "type": "object",
        "required": ["model", "prompt"],
        "additionalProperties": False,
        "properties": {name: _FIELD_SCHEMAS.get(name, {}) for name in names},
    }


def _error() -> dict[str, Any]:
    return {"description": "refused", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _path_parameter(name: str, kind: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": kind}, "description": description}


JOB_ID = _path_parameter("job_id", "string", "the id POST /v1/jobs answered")
INDEX = _path_parameter("index", "integer", "0 .. the job's images - 1")
AFTER = [
    {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "integer"},
     "description": "resume after this event"},
    {"name": "after", "in": "query", "required": False, "schema": {"type": "integer"},
     "description": "resume after this event (for clients that cannot set headers)"},
]


def openapi_document(version: str) -> dict[str, Any]:
    job_ref = {"$ref": "#/components/schemas/Job"}
    json_of = lambda schema: {"application/json": {"schema": schema}}  # noqa: E731
    errors = {code: _error() for code in ("400", "401", "403", "408", "413", "415", "429", "503")}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Latent Studio server", "version": version,
                 "description": "Text-to-image and image-to-image jobs on the server's models. Send "
                 "'Authorization: Bearer TOKEN' when the server has a token."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "GenerationRequest": request_schema(),
                "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                    "message": {"type": "string"}, "field": {"type": "string"}}, "required": ["message"]}}},
                "Job": {"type": "object", "properties": {
                    "id": {"type": "string"}, "state": {"enum": ["queued", "running", "done", "failed", "cancelled"]},
                    "model": {"type": "string"}, "prompt": {"type": "string"}, "step": {"type": "integer"},
                    "total": {"type": "integer"}, "images": {"type": "array", "items": {"type": "object"}},
                    "warnings": {"type": "array", "items": {"type": "string"}}, "error": {"type": ["object", "null"]},
                    "events": {"type": "string"}}},
                "CardInput": {"type": "object", "required": ["input_data"], "properties": {"input_data": {
                    "type": "object", "required": ["data"], "properties": {
                        "columns": {"type": "array", "items": {"type": "string"}},
                        "data": {"type": "array", "minItems": 1},
                        "index": {"type": "array"},
                        "parameters": {"type": "object", "additionalProperties": False,
                                       "properties": {name: {} for name in PARAMETERS}}}}}},
                "CardOutput": {"type": "array", "items": {"type": "object", "properties": {
                    "prompt": {"type": "string"}, "generated_image": {"type": "string", "contentEncoding": "base64"},
                    "nsfw_content_detected": {"type": ["boolean", "null"]}}}},
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/health": {"get": {"summary": "liveness (no token needed)", "security": [],
                                "responses": {"200": {"description": "up"}}}},
            "/v1/status": {"get": {"summary": "queue counts", "responses": {"200": {"description": "counts"}}}},
            "/v1/models": {"get": {"summary": "the models clients may name", "responses": {"200": {"description": "list"}}}},
            "/v1/jobs": {
                "post": {"summary": "queue a generation", "requestBody": {"required": True, "content": json_of(
                    {"$ref": "#/components/schemas/GenerationRequest"})},
                    "responses": {"202": {"description": "queued", "content": json_of(job_ref)}, **errors}},
                "get": {"summary": "the jobs kept", "responses": {"200": {"description": "list",
                        "content": json_of({"type": "array", "items": job_ref})}}},
            },
            "/v1/jobs/{job_id}": {"parameters": [JOB_ID], "get": {"summary": "a job's state", "responses": {
                "200": {"description": "the job", "content": json_of(job_ref)}, "404": _error()}}},
            "/v1/jobs/{job_id}/events": {"parameters": [JOB_ID], "get": {"parameters": AFTER,
                "summary": "server-sent events: queued, started, status, step (with a base64 JPEG preview), image, "
                "warning, then done, failed or cancelled; resume with Last-Event-ID",
                "responses": {"200": {"description": "an event stream", "content": {"text/event-stream": {}}}, "404": _error()}}},
            "/v1/jobs/{job_id}/cancel": {"parameters": [JOB_ID], "post": {"summary": "cancel (within one step)", "responses": {
                "200": {"description": "the job", "content": json_of(job_ref)}, "404": _error()}}},
            "/v1/jobs/{job_id}/images/{index}": {"parameters": [JOB_ID, INDEX], "get": {"summary": "a result as PNG with its metadata", "responses": {
                "200": {"description": "PNG", "content": {"image/png": {}}}, "404": _error()}}},
            "/score": {"post": {
                "summary": "the model cards' online endpoint (runs the server's --model)",
                "requestBody": {"required": True, "content": json_of({"$ref": "#/components/schemas/CardInput"})},
                "responses": {"200": {"description": "one item per image, in input order",
                                      "content": json_of({"$ref": "#/components/schemas/CardOutput"})}, **errors}}},
            "/openapi.json": {"get": {"summary": "this description", "responses": {"200": {"description": "OpenAPI"}}}},
        },
    }
