"""The registry finds every built-in part by name and explains unknown names."""

import pytest

from sb3_latent import FlareExtractor, RandomTranslate, registry


def test_builtins_are_registered_through_entry_points() -> None:
    entries = {(e.kind, e.name): e for e in registry.list_entries()}
    for kind, name in [("algorithms", "rad"), ("extractors", "flare"), ("extractors", "latent_stack"),
                       ("extractors", "pixel_flow"), ("extractors", "state_flare"), ("augmentations", "shift"),
                       ("augmentations", "translate"), ("augmentations", "crop"),
                       ("buffers", "frame_store")]:
        assert (kind, name) in entries
        assert entries[kind, name].distribution == "sb3-latent"


def test_load_by_name_returns_the_class() -> None:
    assert registry.load("extractors", "flare") is FlareExtractor
    assert registry.load("augmentations", "translate") is RandomTranslate


def test_unknown_name_lists_known_names_and_close_matches() -> None:
    with pytest.raises(ValueError) as err:
        registry.load("extractors", "flair")
    msg = str(err.value)
    assert "'flair'" in msg and "Did you mean 'flare'" in msg
    assert "latent_stack" in msg and "pixel_flow" in msg and "sb3_latent.extractors" in msg


def test_unknown_kind_is_an_error() -> None:
    with pytest.raises(ValueError, match="Unknown registry kind 'policies'"):
        registry.list_entries("policies")
    assert registry.names("augmentations") == ["crop", "shift", "translate"]
