"""The A1111 emphasis syntax: weights, escapes, nesting, unbalanced brackets, BREAK, chunks, speed."""

from __future__ import annotations

import time

import pytest

from studio.library.prompt_syntax import (
    BREAK,
    CHUNK_LENGTH,
    ExtraNetworkTag,
    LoraUse,
    build_chunks,
    extra_network_tags,
    has_weights,
    is_break,
    lora_uses,
    parse_prompt_attention,
    plain_text,
    split_extra_networks,
    strip_extra_networks,
    weight_problem,
)


def assert_parsed(text: str, expected: list[tuple[str, float]]) -> None:
    got = parse_prompt_attention(text)
    assert [t for t, _ in got] == [t for t, _ in expected], got
    for (_, w), (_, e) in zip(got, expected, strict=True):
        assert w == pytest.approx(e, abs=1e-6), got


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", [("", 1.0)]),
        ("a cat", [("a cat", 1.0)]),
        ("(cat)", [("cat", 1.1)]),
        ("[cat]", [("cat", 1 / 1.1)]),
        ("((cat))", [("cat", 1.21)]),
        ("(((cat)))", [("cat", 1.331)]),
        ("[[cat]]", [("cat", 1 / 1.21)]),
        ("(cat:1.5)", [("cat", 1.5)]),
        ("(cat: 0.25 )", [("cat", 0.25)]),
        ("(cat:.5)", [("cat", 0.5)]),
        ("(cat:2.)", [("cat", 2.0)]),
        ("(cat:+1.2)", [("cat", 1.2)]),
        ("(cat:-1)", [("cat", -1.0)]),
        ("(cat:0)", [("cat", 0.0)]),
        ("a (cat:1.5) on a mat", [("a ", 1.0), ("cat", 1.5), (" on a mat", 1.0)]),
        ("((cat:1.5))", [("cat", 1.65)]),
        ("((cat):1.5)", [("cat", 1.65)]),
        ("[(cat:1.5)]", [("cat", 1.5 / 1.1)]),
        ("(a (b [c]) d)", [("a ", 1.1), ("b ", 1.21), ("c d", 1.1)]),  # 1.21 / 1.1 == 1.1: merged
        ("(red:1.2) (car:1.2)", [("red", 1.2), (" ", 1.0), ("car", 1.2)]),
        ("(red:1.2)(car:1.2)", [("redcar", 1.2)]),  # equal neighbours merge
    ],
)
def test_weights(text, expected):
    assert_parsed(text, expected)


def test_weight_syntax_examples_from_the_a1111_docs():
    assert_parsed(
        "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
        [
            ("a ", 1.0),
            ("house", 1.3 * 1.1 * 1.1),
            (" ", 1.1),
            ("on", 1.0),
            (" a ", 1.1),
            ("hill", 0.55),
            (", sun, ", 1.1),
            ("sky", 1.1**4),
            (".", 1.1),
        ],
    )


def test_cancelling_brackets_give_exactly_one():
    assert parse_prompt_attention("[(cat)]") == [("cat", 1.0)]
    assert parse_prompt_attention("([cat])") == [("cat", 1.0)]
    assert parse_prompt_attention("a [(b)] c") == [("a b c", 1.0)]
    assert not has_weights("[(cat)]")
    assert parse_prompt_attention("(cat:1.0)") == [("cat", 1.0)]
    assert parse_prompt_attention("((cat))") == parse_prompt_attention("(cat:1.21)")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"\(cat\)", [("(cat)", 1.0)]),
        (r"\[cat\]", [("[cat]", 1.0)]),
        ("a \\\\ b", [("a \\ b", 1.0)]),
        (r"a \ b", [("a \\ b", 1.0)]),  # any other backslash is literal
        (r"C:\path\to", [("C:\\path\\to", 1.0)]),
        (r"(\(cat\):1.5)", [("(cat)", 1.5)]),
        (r"\((cat)\)", [("(", 1.0), ("cat", 1.1), (")", 1.0)]),
        (r"(smile \:\))", [("smile \\:)", 1.1)]),  # `\:` is no escape; `\)` is a literal paren
        ("\\", [("\\", 1.0)]),
        ("a\\", [("a\\", 1.0)]),
        (r"\\(cat)", [("\\", 1.0), ("cat", 1.1)]),  # an escaped backslash does not escape the paren
        ("time: 5:30", [("time: 5:30", 1.0)]),
        ("ratio 16:9)", [("ratio 16:9)", 1.0)]),
    ],
)
def test_escapes_and_literals(text, expected):
    assert_parsed(text, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(cat", [("cat", 1.1)]),
        ("a (cat on a mat", [("a ", 1.0), ("cat on a mat", 1.1)]),
        ("((cat", [("cat", 1.21)]),
        ("(cat) (dog", [("cat", 1.1), (" ", 1.0), ("dog", 1.1)]),
        ("[cat", [("cat", 1 / 1.1)]),
        ("cat)", [("cat)", 1.0)]),
        ("cat]", [("cat]", 1.0)]),
        ("cat:1.5)", [("cat:1.5)", 1.0)]),  # a weight with no open bracket is text
        ("(cat:1.5", [("cat:1.5", 1.1)]),
        ("(cat:1.2.3)", [("cat:1.2.3", 1.1)]),  # not a number: text, and the `)` closes with 1.1
        ("(cat:abc)", [("cat:abc", 1.1)]),
        ("(cat]", [("cat]", 1.1)]),
        ("[cat)", [("cat)", 1 / 1.1)]),
        ("( a [ b ) c ]", [(" a ", 1.1), (" b ", 1.0), (" c ", 1 / 1.1)]),  # crossed brackets
        (")(", [(")", 1.0)]),
        ("()", [("", 1.0)]),
        ("[]", [("", 1.0)]),
        ("(((", [("", 1.0)]),
    ],
)
def test_unbalanced_brackets_are_tolerated(text, expected):
    assert_parsed(text, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a BREAK b", [("a", 1.0), BREAK, ("b", 1.0)]),
        ("a\nBREAK\nb", [("a", 1.0), BREAK, ("b", 1.0)]),
        ("a,BREAK,b", [("a,", 1.0), BREAK, (",b", 1.0)]),
        ("BREAK", [BREAK]),
        ("BREAK a", [BREAK, ("a", 1.0)]),
        ("a BREAK", [("a", 1.0), BREAK]),
        ("a BREAK BREAK b", [("a", 1.0), BREAK, BREAK, ("b", 1.0)]),  # two BREAKs never merge
        ("(a BREAK b:1.5)", [("a", 1.5), BREAK, ("b", 1.5)]),
        ("(a) BREAK (b)", [("a", 1.1), BREAK, ("b", 1.1)]),  # the spaces around BREAK go
        ("BREAKFAST break Break BREAKs _BREAK", [("BREAKFAST break Break BREAKs _BREAK", 1.0)]),
        ("éBREAK", [("éBREAK", 1.0)]),
    ],
)
def test_break(text, expected):
    assert_parsed(text, expected)
    assert has_weights(text) == any(is_break(f) for f in expected)


def test_break_fragment_is_returned_as_the_marker():
    fragments = parse_prompt_attention("a BREAK b")
    assert fragments[1] == ("BREAK", -1.0)
    assert is_break(fragments[1]) and not is_break(("BREAK", 1.0)) and not is_break(("a", -1.0))


def test_unicode():
    assert_parsed("ça (日本語:1.3) 🐱 [ü]", [("ça ", 1.0), ("日本語", 1.3), (" 🐱 ", 1.0), ("ü", 1 / 1.1)])
    assert plain_text("ça (日本語:1.3) 🐱") == "ça 日本語 🐱"


def test_whitespace_is_kept():
    assert parse_prompt_attention("  a  ") == [("  a  ", 1.0)]
    assert parse_prompt_attention("a\n(b)\tc") == [("a\n", 1.0), ("b", 1.1), ("\tc", 1.0)]


def test_result_types():
    for text, weight in parse_prompt_attention("a (b:2) [c] BREAK d"):
        assert type(text) is str and type(weight) is float


def test_plain_text():
    assert plain_text("") == ""
    assert plain_text("a cat on a mat") == "a cat on a mat"
    assert plain_text("a (cat:1.5) on [a] ((mat))") == "a cat on a mat"
    assert plain_text(r"\(x\) \[y\]") == "(x) [y]"
    assert plain_text("a BREAK b") == "a b"
    assert plain_text("(a:1.0)") == "a"


@pytest.mark.parametrize(
    "text",
    ["", "plain prompt, with commas: and colons", "(cat:1.0)", "[(cat)]", r"\(cat\)", "cat)", "()"],
)
def test_has_weights_false(text):
    assert not has_weights(text)


@pytest.mark.parametrize("text", ["(cat)", "[cat]", "(cat:0.9)", "(cat", "a BREAK b", "(cat:0)"])
def test_has_weights_true(text):
    assert has_weights(text)


def test_text_without_syntax_is_unchanged():
    text = "masterpiece, best quality, a cat: sitting on a mat; 4k, {curly} <angle> |pipe| 'quote' \"dq\""
    assert parse_prompt_attention(text) == [(text, 1.0)]
    assert plain_text(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "(" * 50_000 + "a" + ")" * 50_000,
        "(a" * 50_000,
        "[(" * 25_000,
        "(a:" + "1" * 100_000,
        ":" + " " * 100_000,
        " " * 100_000 + "BREAK",
        "\\" * 100_000,
        "a BREAK " * 12_500,
        "x" * 100_000,
        "(:1" * 33_000,
    ],
)
def test_pathological_input_stays_fast(text):
    start = time.perf_counter()
    parse_prompt_attention(text)
    assert time.perf_counter() - start < 1.0


def test_deep_nesting_weight():
    [(text, weight)] = parse_prompt_attention("(" * 20 + "a" + ")" * 20)
    assert text == "a" and weight == pytest.approx(1.1**20, rel=1e-9)


# ------------------------------------------------------------------------------------------ chunks
def fake_tokenize(texts: list[str]) -> list[list[int]]:
    """One token per whitespace-separated word: its length."""
    return [[len(word) for word in text.split()] for text in texts]


def chunk_shape(text: str) -> list[list[tuple[int, float]]]:
    chunks = build_chunks(parse_prompt_attention(text), fake_tokenize)
    for chunk in chunks:
        assert len(chunk.tokens) == len(chunk.weights) <= CHUNK_LENGTH
    return [list(zip(c.tokens, c.weights, strict=True)) for c in chunks]


def test_chunks_weights_follow_tokens():
    assert chunk_shape("ab (cde:1.5) f") == [[(2, 1.0), (3, 1.5), (1, 1.0)]]


def test_chunks_empty_prompt_is_one_empty_chunk():
    assert chunk_shape("") == [[]]


def test_chunks_split_at_75():
    assert [len(c) for c in chunk_shape("w " * 75)] == [75]
    assert [len(c) for c in chunk_shape("w " * 76)] == [75, 1]
    assert [len(c) for c in chunk_shape("w " * 200)] == [75, 75, 50]


def test_chunks_break():
    assert [len(c) for c in chunk_shape("a b BREAK c")] == [2, 1]
    assert [len(c) for c in chunk_shape("BREAK a")] == [0, 1]  # as A1111: a leading BREAK leaves an empty chunk
    assert [len(c) for c in chunk_shape("a BREAK")] == [1]
    assert [len(c) for c in chunk_shape("a BREAK BREAK b")] == [1, 0, 1]
    assert [len(c) for c in chunk_shape("w " * 75 + "BREAK b")] == [75, 1]  # no empty chunk after a full one


def wrapped(text: str, **kw) -> list[int]:
    """Chunk lengths with word wrap: "," is token 1 in `fake_tokenize`, other words are longer."""
    return [len(c.tokens) for c in build_chunks(parse_prompt_attention(text), fake_tokenize, comma=1, **kw)]


@pytest.mark.parametrize(
    ("text", "lengths"),
    [
        ("ww " * 70 + ", " + "ww " * 10, [71, 10]),  # the words after the comma move on
        ("ww " * 55 + ", " + "ww " * 25, [56, 25]),  # the comma 20 tokens from the end: still wrapped
        ("ww " * 54 + ", " + "ww " * 26, [75, 6]),  # 21 tokens back: cut at the limit
        ("ww " * 74 + ", " + "ww " * 5, [75, 5]),  # a comma that ends the chunk: the plain cut
        ("ww " * 75 + ", " + "ww " * 75, [75, 75, 1]),  # a comma opening a chunk is forgotten (A1111)
        ("ww " * 60 + ", BREAK " + "ww " * 80, [61, 75, 5]),  # BREAK forgets the comma too
        ("ww " * 70 + ", " + "ww " * 70 + ", " + "ww " * 10, [71, 71, 10]),
    ],
)
def test_chunks_wrap_at_the_last_comma_like_a1111(text, lengths):
    assert wrapped(text) == lengths
    assert sum(lengths) == sum(wrapped(text, backtrack=0))  # no token lost or doubled


def test_wrapped_tokens_keep_their_weights():
    chunks = build_chunks(parse_prompt_attention("ww " * 72 + ", (xx yy zz:1.5)"), fake_tokenize, comma=1)
    assert [c.weights for c in chunks] == [[1.0] * 73, [1.5] * 3]
    assert build_chunks(parse_prompt_attention("ww " * 72 + ", (xx yy zz:1.5)"), fake_tokenize)[1].weights == [1.5]


def test_chunks_tokenize_is_called_once():
    calls = []

    def tokenize(texts):
        calls.append(list(texts))
        return fake_tokenize(texts)

    build_chunks(parse_prompt_attention("a (b) BREAK [c]"), tokenize)
    assert calls == [["a ", "b", "c"]]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("(cat:100) (dog:-100) [bird] ((x)) BREAK y", None),  # A1111's range, up to ±100, is accepted
        ("(" * 48 + "cat", None),  # 1.1**48 = 97.0
        ("(" * 49 + "cat", "the weight of 'cat' is 106.7"),
        ("(cat:100.5)", "the weight of 'cat' is 100.5"),
        ("(cat:-1000)", "the weight of 'cat' is -1000"),
        ("(" * 7500 + "cat", "the weight of 'cat' is infinite"),
        ("(" * 7500 + "(cat:0)", "the weight of 'cat' is undefined"),  # infinite x 0
        ("(a  very\nlong  fragment of the prompt text:200)", "the weight of 'a very long fragment of the p…'"),
    ],
)
def test_weight_problem_names_the_fragment_and_the_range(text, problem):
    found = weight_problem(text)
    if problem is None:
        assert found is None
    else:
        assert problem in found and "±100" in found and "\n" not in found


# ------------------------------------------------------------------------------- extra networks
def test_lora_tags_are_split_off_like_a1111():
    """A1111 removes each tag and nothing else (the spaces and commas around it stay)."""
    text, tags = split_extra_networks("a cat, <lora:fluffy_v2:0.8>, on a mat <hypernet:anime:1>")
    assert text == "a cat, , on a mat "
    assert tags == [
        ExtraNetworkTag("lora", "fluffy_v2", ("0.8",), "<lora:fluffy_v2:0.8>"),
        ExtraNetworkTag("hypernet", "anime", ("1",), "<hypernet:anime:1>"),
    ]


@pytest.mark.parametrize(
    ("text", "stripped", "names"),
    [
        ("<lora:a>", "", ["a"]),  # no weight: A1111 reads 1
        ("<lora:a:0.5:0.7>", "", ["a"]),  # text-encoder and UNet weights
        ("<LoRA:Mixed Case Name:1>", "", ["Mixed Case Name"]),
        ("<lyco:old:1>x", "x", ["old"]),
        ("(masterpiece:1.2) <lora:a:1> [b]", "(masterpiece:1.2)  [b]", ["a"]),
        ("<embedding:x:1> <lora:>", "<embedding:x:1> <lora:>", []),  # other kinds and empty tags are text
        ("<lora:unclosed and more", "<lora:unclosed and more", []),
        ("a < b > c", "a < b > c", []),
        ("", "", []),
    ],
)
def test_extra_network_tag_forms(text, stripped, names):
    assert strip_extra_networks(text) == stripped
    assert [tag.name for tag in extra_network_tags(text)] == names


def test_stripped_prompt_parses_as_the_rest():
    assert parse_prompt_attention(strip_extra_networks("(red:1.5) fox <lora:x:0.6>")) == [("red", 1.5), (" fox ", 1.0)]


def test_many_unclosed_tags_still_split(text="<lora:" * 20_000 + "<lora:x:1>"):
    """Every attempt stops at the next "<": the scan is linear, and the one closed tag is still found."""
    rest, tags = split_extra_networks(text)
    assert rest == "<lora:" * 20_000 and [tag.text for tag in tags] == ["<lora:x:1>"]


# ------------------------------------------------------------------------------------------ LoRA uses
@pytest.mark.parametrize(
    ("tag", "te", "unet"),
    [
        ("<lora:x>", 1.0, 1.0),
        ("<lora:x:0.5>", 0.5, 0.5),  # unet follows te
        ("<lora:x:0.5:1>", 0.5, 1.0),
        ("<lora:x: -0.25 : 2 >", -0.25, 2.0),
        ("<lora:x:unet=0.3>", 1.0, 0.3),
        ("<lora:x:te=0.4>", 0.4, 0.4),  # a named te is the default of unet too
        ("<lora:x:te=0:unet=1>", 0.0, 1.0),
        ("<lora:x:unet=1:te=0>", 0.0, 1.0),
        ("<lora:x:0.2:te=0.7>", 0.7, 0.7),  # named beats positional
        ("<lora:x:0.2:0.3:unet=0.9>", 0.2, 0.9),
        ("<lora:x:5>", 5.0, 5.0),
        ("<lora:x:-5:1e-1>", -5.0, 0.1),
        ("<lyco:x:0.6>", 0.6, 0.6),  # the old LyCORIS extension's tag is a LoRA
    ],
)
def test_lora_uses_read_weights_as_a1111(tag, te, unet):
    uses, problems = lora_uses(extra_network_tags(f"a cat {tag}"))
    assert (uses, problems) == ([LoraUse("x", te, unet, tag)], [])


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("<lora:x:abc>", "<lora:x:abc>: the weight 'abc' is not a number"),
        ("<lora:x:1:abc>", "<lora:x:1:abc>: the weight 'abc' is not a number"),
        ("<lora:x:te=>", "the weight '' is not a number"),
        ("<lora:x:nan>", "the weight nan lies outside ±5"),
        ("<lora:x:inf>", "the weight inf lies outside ±5"),
        ("<lora:x:5.01>", "<lora:x:5.01>: the weight 5.01 lies outside ±5"),
        ("<lora:x:1:-8>", "the weight -8 lies outside ±5"),
        ("<lora:x:unet=1e9>", "the weight 1e9 lies outside ±5"),
        ("<lora::1>", "<lora::1>: names no LoRA"),
    ],
)
def test_lora_weights_no_model_can_use_are_refused_with_a_message(tag, expected):
    uses, problems = lora_uses(extra_network_tags(tag))
    assert uses == [] and len(problems) == 1 and expected in problems[0]


def test_lora_arguments_we_do_not_support_are_named_and_the_rest_applies():
    uses, problems = lora_uses(extra_network_tags("<lora:x:0.5:0.6:8> <lora:y:dyn=4:foo=1> <lora:z:1:1:1:2:3>"))
    assert [(u.name, u.te, u.unet) for u in uses] == [("x", 0.5, 0.6), ("y", 1.0, 1.0), ("z", 1.0, 1.0)]
    assert problems == [
        "<lora:x:0.5:0.6:8>: dyn (a rank limit) ignored (not supported)",
        "<lora:y:dyn=4:foo=1>: dyn (a rank limit), foo= ignored (not supported)",
        "<lora:z:1:1:1:2:3>: dyn (a rank limit), 2 more value(s) ignored (not supported)",
    ]


def test_lora_uses_skip_hypernetworks_and_keep_order_and_repeats():
    tags = [
        ExtraNetworkTag("hypernet", "h", ("1",), "<hypernet:h:1>"),
        *extra_network_tags("<lora:b:0.1> <lora:a> <lora:b:0.2>"),
    ]
    uses, problems = lora_uses(tags)
    assert [(u.name, u.te) for u in uses] == [("b", 0.1), ("a", 1.0), ("b", 0.2)] and problems == []
    assert lora_uses([]) == ([], [])
