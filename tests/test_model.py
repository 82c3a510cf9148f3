"""The UNet builds small, keeps resolution, folds BatchNorm exactly, and round-trips its config."""

from __future__ import annotations

import pytest
import torch

from blurcli.model import UNet, UNetConfig, count_parameters, fuse_batchnorm


@pytest.mark.parametrize(("width", "depth", "stem_stride"), [(4, 2, 1), (4, 3, 2), (8, 4, 2)])
def test_forward_returns_logits_at_input_resolution(width: int, depth: int, stem_stride: int) -> None:
    config = UNetConfig(width=width, depth=depth, stem_stride=stem_stride)
    model = UNet(config).eval()
    side = config.multiple * 3
    logits = model(torch.randn(2, 3, side, side + config.multiple))
    assert logits.shape == (2, 3, side, side + config.multiple)


def test_encoder_and_decoder_have_one_level_per_depth() -> None:
    model = UNet(UNetConfig(width=4, depth=3))
    assert len(model.downs) == 3
    assert len(model.ups) == 3


def test_default_model_is_small() -> None:
    assert 100_000 < count_parameters(UNet()) < 1_000_000


def test_fused_batchnorm_gives_the_same_output() -> None:
    torch.manual_seed(0)
    model = UNet(UNetConfig(width=4, depth=2))
    model.train()
    for _ in range(3):  # move the running statistics away from their initial values
        model(torch.randn(4, 3, 32, 32) * 2 + 1)
    model.eval()
    x = torch.randn(1, 3, 32, 32)
    fused = fuse_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=1e-4)


def test_config_round_trips_through_dict_and_ignores_unknown_keys() -> None:
    config = UNetConfig(width=6, depth=3, stem_stride=2)
    assert UNetConfig.from_dict({**config.to_dict(), "future_option": 1}) == config


def test_multiple_accounts_for_stem_stride() -> None:
    assert UNetConfig(depth=4, stem_stride=2).multiple == 32
    assert UNetConfig(depth=3, stem_stride=1).multiple == 8
