"""PromptState without a widget: the prompts, the history as kept, untrusted prompts, the tokenizer warm-up."""

from __future__ import annotations

import threading

import pytest

from studio.library.token_counter import TokenCounter
from studio.viewmodel.prompt_state import HISTORY_LIMIT, PromptState, clean_history
from studio.viewmodel.properties import persisted_values, properties, restore_values


@pytest.fixture
def state(qapp):
    state = PromptState(counter=TokenCounter())
    yield state
    state.shutdown()


def test_every_property_is_text_or_a_history_and_persists(state):
    assert {name: prop.persist for name, prop in properties(PromptState).items()} == {
        "prompt": True, "negative_prompt": True, "history": True,
    }
    assert (state.prompt, state.negative_prompt, state.history) == ("", "", [])
    for name in ("prompt", "negative_prompt"):
        seen = []
        getattr(state, f"{name}_changed").connect(seen.append)
        setattr(state, name, "a fox")
        setattr(state, name, "a fox")
        assert getattr(state, name) == "a fox" and seen == ["a fox"]
        for bad in (None, 3, ["a"]):
            with pytest.raises(TypeError):
                setattr(state, name, bad)
        assert getattr(state, name) == "a fox"
    with pytest.raises(TypeError):
        state.history = "a fox"
    with pytest.raises(TypeError):
        state.history = None


def test_history_is_newest_first_without_duplicates_or_empty_pairs(state):
    seen = []
    state.history_changed.connect(seen.append)
    state.add_to_history("a fox", "")
    state.add_to_history("a cat", "blurry")
    state.add_to_history("  ", "\n")  # nothing to remember: no change, no signal
    assert state.history == [("a cat", "blurry"), ("a fox", "")] and len(seen) == 2
    state.add_to_history("a fox", "")  # again: moves to the front
    assert state.history == [("a fox", ""), ("a cat", "blurry")]
    state.add_to_history("a fox", "")  # already newest: nothing changes
    assert len(seen) == 3
    state.clear_history()
    assert state.history == [] and seen[-1] == []


def test_history_is_limited(state):
    for i in range(HISTORY_LIMIT + 5):
        state.add_to_history(f"prompt {i}", "")
    assert len(state.history) == HISTORY_LIMIT and state.history[0] == (f"prompt {HISTORY_LIMIT + 4}", "")


def test_a_hand_edited_history_keeps_only_well_formed_pairs(state):
    items = [
        ["a fox", "blurry"],  # JSON has lists, not tuples
        ("a fox", "blurry"),  # duplicate
        ["", " "],  # empty
        "a string",
        ["one"],
        ["a", "b", "c"],
        [1, "x"],
        None,
        {"prompt": "a"},
        ("a cat", ""),
    ]
    state.set_history(items)
    assert state.history == [("a fox", "blurry"), ("a cat", "")]
    assert clean_history(items) == state.history
    assert clean_history([("p", "n")] * 3 + [(f"{i}", "") for i in range(HISTORY_LIMIT)])[:2] == [("p", "n"), ("0", "")]


def test_history_round_trips_through_persisted_values(state, qapp):
    state.set_prompts("a fox", "blurry")
    state.add_to_history("a fox", "blurry")
    values = persisted_values(state)
    assert values == {"prompt": "a fox", "negative_prompt": "blurry", "history": [("a fox", "blurry")]}
    again = PromptState(counter=state.counter)
    assert restore_values(again, {**values, "history": [list(pair) for pair in values["history"]]}) == []
    assert (again.prompt, again.negative_prompt, again.history) == ("a fox", "blurry", [("a fox", "blurry")])
    assert restore_values(again, {"history": {"not": "a list"}, "prompt": 5}) == ["prompt", "history"]
    assert again.history == [("a fox", "blurry")] and again.prompt == "a fox"


def test_untrusted_prompts_lose_their_control_characters_and_say_how_many(state):
    removed = state.set_untrusted_prompts("a \x1b[31mred\x1b[0m fox\x07", "bl\u202eurry\r\nsoft\x00")
    assert removed == 5
    assert state.prompt == "a [31mred[0m fox" and state.negative_prompt == "blurry\nsoft"
    assert state.set_untrusted_prompts("plain\ttext", "") == 0 and state.prompt == "plain\ttext"
    assert state.set_untrusted_prompts(None, 42) == 0 and (state.prompt, state.negative_prompt) == ("", "")
    assert state.set_untrusted_prompts("lone \ud800 surrogate", "") == 1 and "\ufffd" in state.prompt


def test_warm_up_loads_the_tokenizer_once_in_the_background(qtbot, qapp):
    """Moved from tests/library/test_token_counter.py: the counter no longer starts threads itself."""
    loads = []

    class Counting(TokenCounter):
        def load(self) -> None:
            loads.append(threading.current_thread().name)
            super().load()

    counter = Counting()
    state = PromptState(counter=counter)
    try:
        state.warm_up()
        state.warm_up()  # once
        qtbot.waitUntil(lambda: counter.loaded, timeout=10_000)
        assert len(loads) == 1 and loads[0] != threading.current_thread().name  # loaded off the GUI thread
        assert counter.exact
        state.warm_up()  # already loaded: nothing more
        other = PromptState(counter=counter)
        other.warm_up()
        assert counter.count("a photo of a cat") == 5
    finally:
        state.shutdown()


def test_the_token_counter_has_no_thread_of_its_own():
    assert not hasattr(TokenCounter, "warm_up")


def test_embeddings_reach_the_counter_once(qapp) -> None:
    counter = TokenCounter()
    state = PromptState(counter=counter)
    seen = []
    state.embeddings_changed.connect(lambda: seen.append(counter.count("a shiny cat")))
    state.set_embeddings({"shiny": 3})
    state.set_embeddings({"shiny": 3})  # the same: no recount
    state.set_embeddings({})
    assert seen == [5, 3]
