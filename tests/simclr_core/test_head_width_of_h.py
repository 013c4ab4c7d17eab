"""head.out_dim=None: z as wide as h (Table 3's "Both h and g(h) are of the same dimensionality"), with a run id
that is stable and differs from every fixed width's."""
from __future__ import annotations

import pytest
import torch

from registry.overrides import parse_overrides
from registry.run_id import canonical_json, config_hash, semantic_dict
from simclr_core.config import EncoderConfig, HeadConfig, RunConfig
from simclr_core.models import build_model, head_output_dim, projection_head
from simclr_core.validation import ConfigError


@pytest.mark.parametrize("kind", ["linear", "nonlinear", "v2"])
def test_out_dim_none_makes_z_as_wide_as_h(kind):
    head = projection_head(kind, 48, None)
    assert head(torch.zeros(4, 48)).shape == (4, 48) and head_output_dim(kind, 48, None) == 48
    assert projection_head(kind, 48, 16)(torch.zeros(4, 48)).shape == (4, 16)


def test_the_model_built_with_out_dim_none_returns_h_and_z_of_one_width():
    model = build_model(EncoderConfig(name="resnet18", width=0.25), HeadConfig(out_dim=None), 32).eval()
    h, z = model(torch.zeros(2, 3, 32, 32))
    assert h.shape == z.shape == (2, model.encoder.feature_dim)


def test_out_dim_none_validates_hashes_stably_and_comes_from_the_command_line():
    cfg = RunConfig().with_overrides(parse_overrides(["head.out_dim=none"]))
    assert cfg.validate().head.out_dim is None
    assert semantic_dict(cfg)["head"]["out_dim"] is None and '"out_dim":null' in canonical_json(semantic_dict(cfg))
    again = RunConfig.from_dict(cfg.to_dict())
    assert config_hash(again) == config_hash(cfg)
    assert config_hash(cfg) not in {config_hash(RunConfig().with_overrides({"head.out_dim": d})) for d in (128, 512)}


def test_a_bad_out_dim_is_still_refused():
    with pytest.raises(ConfigError, match="head.out_dim=0"):
        RunConfig().with_overrides({"head.out_dim": 0}).validate()
