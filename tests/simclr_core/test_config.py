import json

import pytest

from simclr_core.config import RunConfig
from simclr_core.validation import ConfigError


def test_dict_round_trip_through_json():
    cfg = RunConfig().with_overrides({"loss.temperature": 0.1, "augment.ops": ("crop", "blur"), "seed": 3})
    again = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert isinstance(again.augment.ops, tuple) and isinstance(again.augment.crop_scale, tuple)


def test_overrides_accept_dots_double_underscores_and_strings():
    cfg = RunConfig().with_overrides({"loss__temperature": "0.2", "head.kind": "linear",
                                      "loss.normalize": "false", "augment.ops": "crop,color,blur",
                                      "batch_size": "512"})
    assert cfg.loss.temperature == 0.2 and cfg.head.kind == "linear" and cfg.loss.normalize is False
    assert cfg.augment.ops == ("crop", "color", "blur") and cfg.batch_size == 512


@pytest.mark.parametrize("key", ["loss.temprature", "nope", "encoder.name.x", "loss"])
def test_unknown_override_keys_name_the_valid_ones(key):
    with pytest.raises(ConfigError) as err:
        RunConfig().with_overrides({key: 1})
    assert repr(key) in str(err.value) or key in str(err.value)


@pytest.mark.parametrize("key, meant", [
    ("loss.temprature", "loss.temperature"),      # a misspelt field
    ("temperature", "loss.temperature"),          # a field of a section, without the section
    ("Batch_Size", "batch_size"),                 # another case
    ("optim.warmup", "optim.warmup_epochs"),
])
def test_an_unknown_key_names_the_key_it_most_likely_meant(key, meant):
    with pytest.raises(ConfigError, match=rf"unknown config key '{key}'; valid keys here: .*; did you mean '{meant}'\?$"):
        RunConfig().with_overrides({key: 1})


def test_an_unknown_key_far_from_every_key_gets_no_guess():
    with pytest.raises(ConfigError) as err:
        RunConfig().with_overrides({"zzzz": 1})
    assert "did you mean" not in str(err.value)


@pytest.mark.parametrize("override, meant", [
    ({"data.dataset": "imagenett"}, "imagenet"),
    ({"precision": "BF16"}, "bf16"),
    ({"loss.kind": "ntxent"}, "nt_xent"),
])
def test_a_mistyped_choice_names_the_choice_it_most_likely_meant(override, meant):
    with pytest.raises(ConfigError, match=rf"is not valid; choose one of: .*; did you mean '{meant}'\?$"):
        RunConfig().with_overrides(override).validate()


def test_a_config_file_with_a_misspelt_key_names_the_key_it_most_likely_meant():
    data = RunConfig().to_dict()
    data["optim"]["weight_decy"] = 0.1
    with pytest.raises(ConfigError, match=r"^unknown config key\(s\) optim.weight_decy; valid keys: .*; did you mean "
                                          r"'optim.weight_decay'\?$"):
        RunConfig.from_dict(data)


def test_from_dict_rejects_unknown_keys():
    data = RunConfig().to_dict()
    data["loss"]["tau"] = 0.1
    with pytest.raises(ConfigError, match="loss.tau"):
        RunConfig.from_dict(data)


@pytest.mark.parametrize("override, needle, choice", [
    ({"loss.temperature": 0.0}, "loss.temperature=0.0", "(0"),
    ({"loss.temperature": -1.0}, "loss.temperature=-1.0", "(0"),
    ({"batch_size": 1}, "batch_size=1", "[2"),
    ({"augment.color_strength": -0.5}, "augment.color_strength=-0.5", "[0"),
    ({"encoder.width": 3}, "encoder.width=3", "4"),
    ({"encoder.name": "vit_b"}, "encoder.name='vit_b'", "resnet50"),
    ({"head.kind": "deep"}, "head.kind='deep'", "nonlinear"),
    ({"loss.kind": "infonce"}, "loss.kind='infonce'", "nt_xent"),
    ({"optim.name": "lamb"}, "optim.name='lamb'", "lars"),
    ({"augment.ops": ("crop", "posterize")}, "'posterize'", "sobel"),
    ({"data.dataset": "mnist"}, "data.dataset='mnist'", "cifar10"),
    ({"optim.lr_scaling": "cube"}, "optim.lr_scaling='cube'", "sqrt"),
    ({"precision": "fp8"}, "precision='fp8'", "bf16"),
])
def test_validate_names_bad_value_and_valid_choices(override, needle, choice):
    cfg = RunConfig().with_overrides(override)
    with pytest.raises(ConfigError) as err:
        cfg.validate()
    assert needle in str(err.value) and choice in str(err.value)


def test_default_config_is_valid_and_lr_scalings_follow_the_paper():
    cfg = RunConfig().validate()
    assert cfg.with_overrides({"batch_size": 4096}).peak_lr() == pytest.approx(4.8)
    assert cfg.with_overrides({"batch_size": 4096, "optim.lr_scaling": "sqrt"}).peak_lr() == pytest.approx(4.8)
    assert cfg.with_overrides({"batch_size": 256, "optim.lr_scaling": "sqrt"}).peak_lr() == pytest.approx(1.2)


def test_flat_uses_dotted_keys():
    flat = RunConfig().flat()
    assert flat["loss.temperature"] == 0.5 and flat["encoder.name"] == "resnet18" and "seed" in flat


def test_eval_protocols_are_the_evaluation_registry():
    from simclr_core.evaluate.protocols import PROTOCOLS

    for name in PROTOCOLS:      # the supervised protocol scores a supervised run's own classifier
        method = "supervised" if name == "supervised" else "simclr"
        RunConfig().with_overrides({"eval.protocols": (name,), "method": method}).validate()
    with pytest.raises(ConfigError, match="eval.protocols='probe' is not valid; choose one of: " +
                       ", ".join(repr(name) for name in PROTOCOLS)):
        RunConfig().with_overrides({"eval.protocols": ("probe",)}).validate()


@pytest.mark.parametrize("key", ["batch_size", "data.image_size", "head.out_dim", "seed"])
def test_a_whole_number_beyond_64_bits_is_refused_naming_its_key(key):
    with pytest.raises(ConfigError, match=rf"^{key}=100000000000000000000 is beyond any size, count or seed"):
        RunConfig().with_overrides({key: 10**20}).validate()


def test_a_negative_seed_is_refused():
    with pytest.raises(ConfigError, match=r"seed=-1 is out of range"):
        RunConfig().with_overrides({"seed": -1}).validate()
