"""Output naming: templates, sanitising, containment (symlinks included), lengths, uniqueness."""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from studio.library import DEFAULT_TEMPLATE, load_image, output_path
from studio.library.images import save_new_image
from studio.library.naming import (
    MAX_COMPONENT_BYTES,
    MAX_FORMAT_WIDTH,
    plan_output,
    render_template,
    sanitize_component,
    slugify_prompt,
)

NOW = datetime(2025, 6, 1, 14, 5, 9)
FIELDS = {
    "seed": 1234,
    "prompt": "A watercolor fox, autumn forest!",
    "model": "sd-1.4",
    "steps": 30,
    "width": 512,
    "height": 512,
    "index": 0,
}


def _all_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _image(value: int = 0) -> Image.Image:
    return Image.new("RGB", (4, 4), (value, 6, 7))


def _save(folder: Path, fields: dict = FIELDS, value: int = 0, **options: object) -> Path:
    """Save a tiny image under the first free name the plan offers (what save_result does)."""
    return save_new_image(_image(value), plan_output(folder, fields, now=NOW, **options).candidates())


def test_default_template(tmp_path: Path) -> None:
    assert DEFAULT_TEMPLATE == "{date}/{time}-{seed}-{prompt}"
    path = output_path(tmp_path, FIELDS, now=NOW)
    assert path == tmp_path / "2025-06-01" / "140509-1234-a_watercolor_fox_autumn_forest.png"
    assert _all_files(tmp_path) == ["2025-06-01"]  # the folder is made; no placeholder file is left


def test_all_placeholders_and_format_specs(tmp_path: Path) -> None:
    template = "{model}/{width}x{height}/{steps}-{index:03d}-{seed:08d}-{date}_{time}"
    path = output_path(tmp_path, {**FIELDS, "index": 7}, template=template, ext=".webp", now=NOW)
    assert path.relative_to(tmp_path).as_posix() == "sd-1.4/512x512/30-007-00001234-2025-06-01_140509.webp"


def test_fields_can_override_date_and_time(tmp_path: Path) -> None:
    path = output_path(tmp_path, {**FIELDS, "date": "day-one", "time": "t"}, now=NOW)
    assert path.relative_to(tmp_path).as_posix() == "day-one/t-1234-a_watercolor_fox_autumn_forest.png"


def test_never_overwrites(tmp_path: Path) -> None:
    first = output_path(tmp_path, FIELDS, now=NOW)
    first.write_bytes(b"image one")
    assert output_path(tmp_path, FIELDS, now=NOW).name == first.stem + "-1.png"  # the first free name
    second = _save(tmp_path, value=2)
    third = _save(tmp_path, value=3)
    assert second.name == first.stem + "-1.png"
    assert third.name == first.stem + "-2.png"
    assert first.read_bytes() == b"image one"
    assert load_image(third).getpixel((0, 0)) == (3, 6, 7)


def test_candidates_are_numbered_in_one_folder(tmp_path: Path) -> None:
    plan = plan_output(tmp_path, FIELDS, template="{seed}", ext=".webp", now=NOW)
    names = [path.name for path, _ in zip(plan.candidates(), range(3), strict=False)]
    assert names == ["1234.webp", "1234-1.webp", "1234-2.webp"]
    assert {path.parent for path in plan.candidates()} == {tmp_path}
    assert list(tmp_path.iterdir()) == []  # planning creates no file


def test_parallel_saves_are_unique(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        paths = list(pool.map(lambda value: _save(tmp_path, value=value), range(24)))
    assert len(set(paths)) == 24
    assert sorted(load_image(path).getpixel((0, 0))[0] for path in paths) == list(range(24))
    assert len(_all_files(tmp_path / "2025-06-01")) == 24  # nothing else: no placeholders, no temp files


def test_saved_name_is_the_planned_one(tmp_path: Path) -> None:
    path = _save(tmp_path, value=5)
    assert path == output_path(tmp_path, FIELDS, now=NOW).with_name(path.name)
    assert load_image(path).getpixel((0, 0)) == (5, 6, 7)
    assert _all_files(tmp_path) == ["2025-06-01", f"2025-06-01/{path.name}"]


# --------------------------------------------------------------------------------------------------
# Hostile values
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt",
    [
        "../../x",
        "/etc/passwd",
        "C:\\x",
        "..\\..\\windows\\system32",
        "a\x00b",
        "\u202egnp.exe",
        "..",
        ".",
        "",
        "🦊🎉",
    ],
)
def test_hostile_prompts_stay_inside(tmp_path: Path, prompt: str) -> None:
    folder = tmp_path / "out"
    path = _save(folder, {**FIELDS, "prompt": prompt})
    assert path.resolve().parent == (folder / "2025-06-01").resolve()
    assert "\x00" not in str(path) and "\u202e" not in str(path)
    assert _all_files(tmp_path) == ["out", "out/2025-06-01", f"out/2025-06-01/{path.name}"]


@pytest.mark.parametrize(
    "model", ["../../etc", "/abs/path", "C:\\models\\x.safetensors", "..", "a/../../b", "CON"]
)
def test_hostile_values_in_folder_components(tmp_path: Path, model: str) -> None:
    folder = tmp_path / "out"
    path = output_path(folder, {**FIELDS, "model": model}, template="{model}/{seed}", now=NOW)
    relative = path.relative_to(folder)
    assert len(relative.parts) == 2
    assert relative.parts[0] not in ("..", ".", "") and not relative.parts[0].startswith(".")
    assert path.resolve().is_relative_to(folder.resolve())


@pytest.mark.parametrize(
    "template",
    [
        "../{seed}",
        "/etc/{seed}",
        "\\{seed}",
        "C:\\x\\{seed}",
        "c:{seed}",
        "..\\..\\{seed}",
        "a/../{seed}",
        "./{seed}",
        "~/{seed}",
        "{seed}\x00",
        "",
        "   ",
        "//",
    ],
)
def test_hostile_templates_are_refused(tmp_path: Path, template: str) -> None:
    with pytest.raises(ValueError):
        output_path(tmp_path / "out", FIELDS, template=template, now=NOW)
    assert not (tmp_path / "out").exists() or _all_files(tmp_path / "out") == []


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{nope}", "unknown placeholder {nope}"),
        ("{seed}-{Prompt}", "unknown placeholder {Prompt}"),
        ("{}", "unknown placeholder {}"),
        ("{0}", "unknown placeholder {0}"),
        ("{seed.__class__}", "{seed.__class__} in file name template: attribute and index access"),
        ("{prompt[0]}", "{prompt[0]} in file name template: attribute and index access"),
        ("{seed[0]}", "{seed[0]} in file name template: attribute and index access"),
        ("{nope.real}", "unknown placeholder {nope.real}"),
        ("{seed!r}", "conversions"),
        ("{seed:{width}}", "nested"),
        ("{seed", "bad file name template"),
        ("seed}", "bad file name template"),
        ("{prompt:05d}", "cannot format"),
        ("{seed:999999999999}", "{seed:999999999999} in file name template: width 999999999999 is too large"),
        ("{prompt:>99999}", "{prompt:>99999} in file name template: width 99999 is too large"),
        ("{seed:=^65}", "width 65 is too large (at most 64)"),
        ("{prompt:.999999999}", "{prompt:.999999999} in file name template: precision 999999999"),
        ("{seed:0999999999999999999999d}", "width 999999999999999999999 is too large"),
        ("{date:%Y}", "{date:%Y} in file name template: invalid format spec '%Y'"),
        ("{seed:dd}", "invalid format spec 'dd'"),
        ("{seed:٣}", "invalid format spec"),  # a non-ASCII digit
        ("{model:x}", "placeholder {model:x} cannot format 'sd-1.4'"),
        ("{prompt:,}", "cannot format"),
        ("{seed:.3d}", "cannot format 1234"),
        ("{seed!s}", "conversions"),
        ("{seed:{seed}}", "nested"),
        ("{seed:>{width}}", "nested"),
        ("{seed!r", "bad file name template"),
        ("{seed:/>6}", "bad file name template"),  # a separator as fill splits the template
        ("{seed:\\>6}", "bad file name template"),
    ],
)
def test_template_errors_are_clear(tmp_path: Path, template: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        output_path(tmp_path, FIELDS, template=template, now=NOW)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("template", "fields", "expected"),
    [
        ("{seed:,}", {"seed": 1234567}, "1,234,567"),
        ("{seed:_}", {"seed": 1234567}, "1_234_567"),
        ("{seed:x}-{seed:#X}", {"seed": 255}, "ff-0XFF"),
        ("{seed:_>8}", {"seed": 1234}, "____1234"),
        ("{seed:c}", {"seed": 0x263A}, "\u263a"),
        ("{seed:c}", {"seed": 0}, "_"),  # a NUL character is dropped, leaving nothing
        ("{seed:+}", {"seed": 5}, "+5"),
        ("{index:.2f}", {"index": 3}, "3.00"),
        ("{index:%}", {"index": 1}, "100.000000%"),
        ("{prompt:.5}", {"prompt": "watercolor"}, "water"),
        ("{prompt:-^9}", {"prompt": "fox"}, "fox---"),  # leading dashes are dropped (read as options)
        ("{prompt:*^9}", {"prompt": "fox"}, "___fox___"),  # "*" is not allowed on Windows
        (f"{{seed:0{MAX_FORMAT_WIDTH}d}}", {"seed": 7}, "0" * (MAX_FORMAT_WIDTH - 1) + "7"),
    ],
)
def test_format_specs_that_work(template: str, fields: dict, expected: str) -> None:
    assert render_template(template, fields, now=NOW) == [expected]


def test_big_seed_as_character_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=re.escape("placeholder {seed:c} cannot format")):
        render_template("{seed:c}", {"seed": 2**40})  # OverflowError inside format()
    with pytest.raises(ValueError, match="cannot format"):
        render_template("{seed:c}", {"seed": -1})
    with pytest.raises(ValueError, match="cannot format"):
        render_template("{seed}", {"seed": 10**5000})  # beyond Python's int-to-text digit limit


# --------------------------------------------------------------------------------------------------
# Lengths
# --------------------------------------------------------------------------------------------------


def test_too_long_path_is_a_value_error(tmp_path: Path) -> None:
    fields = {**FIELDS, "model": "m" * 300}  # each {model} folder is cut to MAX_COMPONENT_BYTES
    with pytest.raises(ValueError, match="path too long for the file system"):
        output_path(tmp_path, fields, template="{model}/" * 40 + "{seed}", now=NOW)
    assert list(tmp_path.iterdir()) == []  # refused before any folder was made
    assert len(output_path(tmp_path, fields, template="{model}/{model}/{seed}", now=NOW).parts) > 3


def test_too_long_output_folder_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="too long for the file system"):
        output_path(tmp_path / ("x" * 300), FIELDS, now=NOW)
    with pytest.raises(ValueError, match="too long for the file system"):
        output_path(tmp_path.joinpath(*["y" * 200] * 30), FIELDS, now=NOW)


def test_longest_names_can_be_saved(tmp_path: Path) -> None:
    """A component at the byte limit, in a three-byte script, still leaves room for "-N" and the
    saver's hidden temporary name."""
    fields = {**FIELDS, "model": "漢" * 200}
    first = _save(tmp_path, fields, template="{model}/{model}")
    second = _save(tmp_path, fields, template="{model}/{model}")
    assert len(first.name.encode()) == MAX_COMPONENT_BYTES // 3 * 3 + len(".png")
    assert second.name == first.stem + "-1.png"
    assert load_image(second).size == (4, 4)


@pytest.mark.parametrize("ext", ["png", ".p/ng", "./../x", ".", ".png\x00", "", ".toolongextension"])
def test_bad_extensions(tmp_path: Path, ext: str) -> None:
    with pytest.raises(ValueError, match="extension"):
        output_path(tmp_path, FIELDS, ext=ext, now=NOW)


def test_symlinked_folder_pointing_outside_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "2025-06-01").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="outside the output folder"):
        output_path(folder, FIELDS, now=NOW)
    with pytest.raises(ValueError, match="outside the output folder"):
        output_path(folder, FIELDS, template="2025-06-01/sub/{seed}", now=NOW)
    assert list(outside.iterdir()) == []


def test_dangling_symlinks_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "2025-06-01").symlink_to(tmp_path / "nowhere", target_is_directory=True)
    with pytest.raises(ValueError, match="outside the output folder"):
        output_path(folder, FIELDS, now=NOW)
    (folder / "inside").symlink_to(folder / "missing", target_is_directory=True)
    with pytest.raises(ValueError, match="not a folder"):
        output_path(folder, FIELDS, template="inside/{seed}", now=NOW)
    assert not (tmp_path / "nowhere").exists() and not (folder / "missing").exists()


def test_symlink_within_the_folder_is_fine(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    (folder / "real").mkdir(parents=True)
    (folder / "2025-06-01").symlink_to(folder / "real", target_is_directory=True)
    path = output_path(folder, FIELDS, now=NOW)
    assert path.resolve().parent == (folder / "real").resolve()


def test_symlinked_output_root_is_the_users_choice(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    path = output_path(link, FIELDS, now=NOW)
    assert path.parent.parent == link  # returned in the user's terms
    assert path.resolve().is_relative_to(real.resolve())


def test_existing_symlink_file_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "victim.txt"
    outside.write_text("do not touch")
    folder = tmp_path / "out" / "2025-06-01"
    folder.mkdir(parents=True)
    (folder / "140509-1234-a_watercolor_fox_autumn_forest.png").symlink_to(outside)
    path = output_path(tmp_path / "out", FIELDS, now=NOW)
    assert path.name.endswith("-1.png")
    assert outside.read_text() == "do not touch"


def test_file_where_a_folder_is_needed(tmp_path: Path) -> None:
    (tmp_path / "2025-06-01").write_text("a file")
    with pytest.raises(ValueError, match="not a folder"):
        output_path(tmp_path, FIELDS, now=NOW)


# --------------------------------------------------------------------------------------------------
# Sanitising helpers
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("nul", "_nul"),
        ("COM1", "_COM1"),
        ("LPT9.png", "_LPT9.png"),
        ("console", "console"),
        ('a<b>c:d"e|f?g*h', "a_b_c_d_e_f_g_h"),
        ("...hidden", "hidden"),
        ("..", "_"),
        ("name. ", "name"),
        ("-rf", "rf"),
        ("tab\there\nnew", "tabherenew"),
        ("\u202egnp.exe", "gnp.exe"),
        ("", "_"),
    ],
)
def test_sanitize_component(raw: str, expected: str) -> None:
    assert sanitize_component(raw) == expected


def test_long_components_are_cut_by_bytes() -> None:
    cut = sanitize_component("漢" * 200)
    assert len(cut.encode("utf-8")) <= MAX_COMPONENT_BYTES
    assert cut == "漢" * (MAX_COMPONENT_BYTES // 3)


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("A watercolor fox, autumn forest!", "a_watercolor_fox_autumn_forest"),
        ("(masterpiece:1.2), <lora:x:0.5> cat", "masterpiece_1_2_lora_x_0_5_cat"),
        ("日本語 の プロンプト", "日本語_の_プロンプト"),
        ("🦊🎉", "untitled"),
        ("", "untitled"),
        (None, "untitled"),
        ("Ｆｕｌｌｗｉｄｔｈ", "fullwidth"),
    ],
)
def test_slugify_prompt(prompt: str | None, expected: str) -> None:
    assert slugify_prompt(prompt) == expected


def test_slug_is_cut_near_48_characters_at_a_word() -> None:
    slug = slugify_prompt("a very long prompt about many things " * 10)
    assert len(slug) <= 48
    assert not slug.endswith("_")
    assert slug == "a_very_long_prompt_about_many_things_a_very_long"
    assert slugify_prompt("x" * 100) == "x" * 48


def test_render_template_returns_components() -> None:
    assert render_template("{date}/{time}", {}, now=NOW) == ["2025-06-01", "140509"]
    assert render_template("{seed}-{model}", {"model": None}) == ["_"]
    assert render_template("{model}", {"model": "CompVis/stable-diffusion-v1-4"}) == [
        "CompVis_stable-diffusion-v1-4"
    ]


def test_output_folder_is_created_and_must_be_a_folder(tmp_path: Path) -> None:
    path = output_path(tmp_path / "new" / "deep", FIELDS, template="{seed}", now=NOW)
    assert path == tmp_path / "new" / "deep" / "1234.png"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError):
        output_path(blocker, FIELDS, now=NOW)
    assert os.path.isfile(blocker)
