"""Run ids: the canonical JSON format, its golden hashes, and what does or does not change an id."""
from __future__ import annotations

import hashlib

import pytest

from registry.run_id import (ADDED_LATER_KEYS, EXCLUDED_KEYS, canonical_json, config_hash, make_run_id,
                             point_label, semantic_dict, split_run_id)
from simclr_core.config import RunConfig

# Pinned: changing the canonical format orphans every stored result.
GOLDEN_JSON = '{"a":{"x":true,"y":0.1,"z":null},"b":[1,2.5,[3,4]]}'
GOLDEN_JSON_HASH = "f3995fd3e68a"
# Pinned: the id of RunConfig(). It changes whenever a semantic field or default of RunConfig changes,
# which changes every run id; if that is intended, bump simclr_core.config.CONFIG_VERSION and update this.
GOLDEN_DEFAULT_HASH = "f174a077ed4c"


def test_canonical_json_format_is_pinned():
    text = canonical_json({"b": [1, 2.5, (3, 4)], "a": {"y": 0.1, "x": True, "z": None}})
    assert text == GOLDEN_JSON
    assert hashlib.sha256(text.encode()).hexdigest()[:12] == GOLDEN_JSON_HASH


def test_default_config_hash_is_pinned():
    digest = config_hash(RunConfig())
    assert digest == GOLDEN_DEFAULT_HASH, (
        f"RunConfig() now hashes to {digest}: a semantic field or default changed, so every run id changes. "
        "If intended, bump CONFIG_VERSION and update GOLDEN_DEFAULT_HASH.")
    assert digest == hashlib.sha256(canonical_json(semantic_dict(RunConfig())).encode()).hexdigest()[:12]


def test_run_id_format():
    run_id = make_run_id("augment_pairs", {"first": "crop", "second": "color"}, RunConfig())
    assert run_id == f"augment_pairs/crop+color-{GOLDEN_DEFAULT_HASH}"
    assert split_run_id(run_id) == ("augment_pairs", "crop+color", GOLDEN_DEFAULT_HASH)
    seeded = make_run_id("x", {"a": 1}, RunConfig(seed=3))
    assert seeded.startswith("x/1+seed3-")
    assert make_run_id("x", {"a": 1}, RunConfig(seed=0)) == f"x/1-{GOLDEN_DEFAULT_HASH}"   # seed 0: no suffix


def test_key_order_does_not_change_the_id():
    one = RunConfig().with_overrides({"loss.temperature": 0.2, "batch_size": 64, "augment.ops": ("crop",)})
    two = RunConfig().with_overrides({"augment.ops": ("crop",), "batch_size": 64, "loss.temperature": 0.2})
    assert config_hash(one) == config_hash(two)
    assert canonical_json({"b": 1, "a": 2}) == canonical_json({"a": 2, "b": 1})


@pytest.mark.parametrize("temperature", [0.1, "0.1", "1e-1", 1e-1, "0.10"])
def test_float_spelling_does_not_change_the_id(temperature):
    reference = RunConfig().with_overrides({"loss.temperature": 0.1})
    assert config_hash(RunConfig().with_overrides({"loss.temperature": temperature})) == config_hash(reference)


def test_int_given_for_a_float_field_names_the_same_run():
    # Built directly (no coercion), epochs=100 is an int; the id must not depend on that.
    assert config_hash(RunConfig(epochs=100)) == config_hash(RunConfig(epochs=100.0))
    assert config_hash(RunConfig().with_overrides({"epochs": "100"})) == config_hash(RunConfig())


@pytest.mark.parametrize("override", [
    {"data.data_dir": "/somewhere/else"},
    {"trackers": ("tensorboard",)},
    {"log_every_steps": 1},
    {"checkpoint_every_steps": 7},
    {"compile": "default"},
    {"views_ahead": "on"}, {"views_ahead": "off"},
])
def test_excluded_fields_do_not_change_the_id(override):
    assert config_hash(RunConfig().with_overrides(override)) == config_hash(RunConfig())


def test_excluded_keys_are_real_config_fields():
    assert EXCLUDED_KEYS <= set(RunConfig().flat())


@pytest.mark.parametrize("override", [
    {"seed": 1}, {"max_steps": 2}, {"loss.temperature": 0.2}, {"config_version": 2},
    {"augment.ops": ("color", "crop")}, {"encoder.width": 0.5}, {"eval.knn_k": 20},
    {"augment.local_crops": 2}, {"augment.local_crop_size": 12}, {"augment.local_crop_scale": (0.1, 0.3)},
])
def test_semantic_fields_change_the_id(override):
    assert config_hash(RunConfig().with_overrides(override)) != config_hash(RunConfig())


def test_fields_added_later_enter_the_id_only_when_set():
    """Multi-crop's fields came after the first ids: at their defaults they are left out, so the pinned hash
    above holds; set, they are part of the id like any other semantic field."""
    assert ADDED_LATER_KEYS <= set(RunConfig().flat())
    assert "local_crops" not in semantic_dict(RunConfig())["augment"]
    assert semantic_dict(RunConfig().with_overrides({"augment.local_crops": 4}))["augment"]["local_crops"] == 4
    two = RunConfig().with_overrides({"augment.local_crops": 2})
    assert config_hash(two) != config_hash(two.with_overrides({"augment.local_crops": 4}))


def test_non_finite_floats_are_refused():
    with pytest.raises(ValueError, match="non-finite"):
        canonical_json({"x": float("nan")})


def test_point_label_is_readable_and_path_safe():
    assert point_label({"first": "crop", "second": "color"}) == "crop+color"
    assert point_label({"loss.normalize": False, "loss.temperature": 10.0}) == "no-normalize+10"
    assert point_label({"loss__normalize": True, "loss.temperature": 0.05}) == "normalize+0.05"
    assert point_label({"augment.ops": ("crop", "color")}) == "crop-color"
    assert point_label({"name": "a/b c"}) == "a_b_c"
    assert point_label({}) == "base"


def test_a_label_too_long_for_a_folder_name_is_cut_and_the_hash_keeps_ids_apart(tmp_path):
    # Folder names over 255 bytes are refused (ENAMETOOLONG) by ext4, XFS, exFAT...: an axis of long tuples
    # reached that.
    ops = ("crop", "color", "blur", "sobel", "noise", "rotate", "cutout") * 6
    ids = {make_run_id("mine", {"augment.ops": ops, "loss.temperature": t},
                       RunConfig().with_overrides({"augment.ops": ops, "loss.temperature": t, "seed": 12}))
           for t in (0.1, 0.2)}
    assert len(ids) == 2
    for run_id in ids:
        folder = split_run_id(run_id)
        assert folder[1].endswith("~+seed12") and len(run_id.partition("/")[2].encode()) < 255, run_id
        (tmp_path / run_id).mkdir(parents=True)
    short = make_run_id("mine", {"loss.temperature": 0.1}, RunConfig().with_overrides({"loss.temperature": 0.1}))
    assert "~" not in short
