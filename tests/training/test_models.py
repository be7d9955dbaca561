"""PAN-DHCNN / MUL-DHCNN: Tables II/III geometry, other sensors, small patches, input checks, calibration."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hashsearch.training import DHCNN, MUL_STAGES, PAN_STAGES, MulDHCNN, PanDHCNN, build_networks
from hashsearch.training.config import ModelConfig
from hashsearch.training.models import resolve_padding


def _pools(net):
    return [(m.kernel_size, m.stride) for m in net.features if isinstance(m, nn.MaxPool2d)]


def test_spatial_sizes_are_those_of_spec():
    # SPEC §2: PAN 256 -> 84 -> 41 -> 19 -> 18 -> 7 -> 3 -> 1; MS 64 -> 30 -> 14 -> 6 -> 4 -> 2 -> 1.
    assert DHCNN.spatial_sizes(PAN_STAGES, 256) == [256, 84, 41, 19, 18, 7, 3, 1]
    assert DHCNN.spatial_sizes(MUL_STAGES, 64) == [64, 30, 14, 6, 4, 2, 1]


@pytest.mark.parametrize("bits", [8, 32])
def test_dsrsid_shapes(bits):
    torch.manual_seed(0)
    pan, ms = build_networks(bits)
    assert pan(torch.randn(2, 1, 256, 256)).shape == (2, bits)
    assert ms(torch.randn(3, 4, 64, 64)).shape == (3, bits)
    # Table II/III: last conv map is 256 × 1 × 1, two hidden FC layers of 1024, linear code layer.
    assert pan.flat_features == ms.flat_features == 256
    widths = [m.out_features for m in pan.head if isinstance(m, nn.Linear)]
    assert widths == [1024, 1024, bits]
    assert not isinstance(pan.head[-1], nn.ReLU)


def test_layers_match_tables():
    pan, ms = build_networks(32)
    convs = [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0])
             for m in pan.features if isinstance(m, nn.Conv2d)]
    assert convs == [(1, 32, 7, 3), (32, 64, 5, 2), (64, 128, 5, 2), (128, 256, 5, 1)]
    pools = [(m.kernel_size, m.stride) for m in pan.features if isinstance(m, nn.MaxPool2d)]
    assert pools == [(3, 2), (2, 1), (3, 1)]
    convs = [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0])
             for m in ms.features if isinstance(m, nn.Conv2d)]
    assert convs == [(4, 64, 5, 2), (64, 128, 3, 2), (128, 256, 3, 1)]
    pools = [(m.kernel_size, m.stride) for m in ms.features if isinstance(m, nn.MaxPool2d)]
    assert pools == [(3, 2), (3, 1), (2, 1)]
    assert all(m.padding in (0, (0, 0)) for m in (*pan.features, *ms.features) if hasattr(m, "padding"))


@pytest.mark.parametrize(
    ("net_cls", "bands", "size", "flat"),
    [(MulDHCNN, 6, 128, 256 * 9 * 9), (PanDHCNN, 2, 300, 256 * 3 * 3), (MulDHCNN, 13, 57, 256)],
)
def test_other_sensors_flatten_follows_input(net_cls, bands, size, flat):
    torch.manual_seed(0)
    net = net_cls(16, bands, size)
    assert net.flat_features == flat
    assert net(torch.randn(2, bands, size, size)).shape == (2, 16)


def test_same_padding_accepts_small_patches():
    pan, ms = build_networks(16, ModelConfig(pan_size=64, ms_size=16, padding="same"))
    assert pan(torch.randn(2, 1, 64, 64)).shape == (2, 16)
    assert ms(torch.randn(2, 4, 16, 16)).shape == (2, 16)


def test_too_small_patches_say_the_minimum():
    assert DHCNN.min_patch_size(PAN_STAGES) == 241
    assert DHCNN.min_patch_size(MUL_STAGES) == 57
    with pytest.raises(ValueError, match="at least 241"):
        PanDHCNN(32, 1, 128)
    with pytest.raises(ValueError, match=r"at least 57.*padding='same'"):
        MulDHCNN(32, 4, 32)


def test_small_ms_patches_leave_out_the_pooling_a_1x1_map_cannot_take():
    # MUL 8×8 with padding "same": conv 5/2 pad 2 -> (8+4-5)//2+1 = 4, pool 3/2 pad 1 -> 2,
    # conv 3/2 pad 1 -> 1, pool 3/1 pad 1 -> 1, conv 3/1 pad 1 -> 1, and the last pool 2/1
    # (no padding) would give (1-2)//1+1 = 0: it is left out (pooling a 1×1 map only copies it).
    assert DHCNN.spatial_sizes(MUL_STAGES, 8, "same") == [8, 4, 2, 1, 1, 1]
    ms = MulDHCNN(16, 8, 8, padding="same")  # GF-2-like: 8 bands
    assert ms.dropped_pools == (2,) and _pools(ms) == [(3, 2), (3, 1)] and ms.flat_features == 256
    assert ms(torch.randn(3, 8, 8, 8)).shape == (3, 16)
    # PAN 32×32: 32 -> 11 -> 6 -> 3 -> 2 -> 1 -> 1 -> 1; every 3×3 pooling (padded by 1) takes a 1×1 map.
    assert DHCNN.spatial_sizes(PAN_STAGES, 32, "same") == [32, 11, 6, 3, 2, 1, 1, 1]
    pan = PanDHCNN(16, 1, 32, padding="same")
    assert pan.dropped_pools == () and len(_pools(pan)) == 3
    assert pan(torch.randn(2, 1, 32, 32)).shape == (2, 16)
    # Down to a single MS pixel, and the paper's geometry keeps every layer.
    for size in range(1, 17):
        assert MulDHCNN(8, 4, size, padding="same")(torch.randn(2, 4, size, size)).shape == (2, 8)
    assert build_networks(8)[1].dropped_pools == () and MulDHCNN(8, 4, 16, padding="same").dropped_pools == ()
    assert "dropped_pools=(2,)" in repr(ms)


def test_auto_padding_takes_the_papers_layers_where_they_fit():
    assert resolve_padding(ModelConfig(padding="auto")).padding == "valid"  # DSRSID 256 / 64
    assert resolve_padding(ModelConfig(pan_size=32, ms_size=8, padding="auto")).padding == "same"
    assert resolve_padding(ModelConfig(pan_size=256, ms_size=56, padding="auto")).padding == "same"  # MS < 57
    assert resolve_padding(ModelConfig(pan_size=32, ms_size=8, padding="valid")).padding == "valid"  # as given
    pan, ms = build_networks(8, ModelConfig(pan_size=32, ms_size=8, ms_bands=8, padding="auto"))
    assert pan.padding == ms.padding == "same" and ms.in_bands == 8
    assert PanDHCNN(8, 1, 256, padding="auto").padding == "valid"  # one network alone decides for itself
    assert MulDHCNN(8, 4, 8, padding="auto").padding == "same"


def test_too_small_for_valid_says_what_to_change():
    """The refusal names the setting that fails and the settings that work (it used to suggest the one given)."""
    with pytest.raises(ValueError) as err:
        MulDHCNN(32, 4, 8, padding="valid")
    msg = str(err.value)
    assert "padding='valid'" in msg and "at least 57×57" in msg and "got 8×8" in msg
    assert "use padding='same'" in msg and "padding='auto'" in msg
    assert "use larger patches or padding='valid'" not in msg
    with pytest.raises(ValueError, match=r"PAN patches of at least 241×241 and MS patches of at least 57×57 pixels, "
                                         r"got PAN 256×256 and MS 8×8; use padding='same'"):
        build_networks(8, ModelConfig(ms_size=8, padding="valid"))


def test_wrong_input_shape_is_rejected():
    pan = PanDHCNN(8, 1, 256)
    with pytest.raises(ValueError, match=r"\(n, 1, 256, 256\)"):
        pan(torch.randn(2, 4, 64, 64))
    with pytest.raises(ValueError, match="bits must be >= 1"):
        PanDHCNN(0)


def test_pool_before_relu_is_the_paper_order():
    """The module pools before the ReLU; Tables II/III apply ReLU then pooling: same function."""
    torch.manual_seed(0)
    net = MulDHCNN(8, 4, 64)
    paper: list[nn.Module] = []
    for m in net.features:
        if isinstance(m, nn.Conv2d):
            paper += [m, nn.ReLU()]
        elif isinstance(m, nn.MaxPool2d):
            paper.append(m)
    paper_net = nn.Sequential(*paper, *net.head)
    x = torch.randn(3, 4, 64, 64)
    torch.testing.assert_close(net(x), paper_net(x), rtol=0, atol=0)


def test_input_stats_standardise_inputs():
    torch.manual_seed(0)
    net = MulDHCNN(8, 4, 64)
    x = torch.randn(2, 4, 64, 64)
    ref = net(x)
    net.set_input_stats([1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0])
    mean = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1, 1)
    torch.testing.assert_close(net(x * 2 + mean), ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="std must be > 0"):
        net.set_input_stats([0, 0, 0, 0], [1, 0, 1, 1])
    with pytest.raises(ValueError, match="expected 4"):
        net.set_input_stats([0], [1])
    assert "input_mean" in net.state_dict()


def test_calibrate_centres_every_layer():
    torch.manual_seed(0)
    net = MulDHCNN(16, 4, 16, padding="same")
    x = torch.rand(64, 4, 16, 16) * 3 + 1
    net.calibrate(x, chunk=16)
    with torch.no_grad():
        f = net(x)
    torch.testing.assert_close(f.mean(0), torch.zeros(16), atol=1e-4, rtol=0)
    torch.testing.assert_close(f.std(0, unbiased=False), torch.ones(16), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="n >= 2"):
        net.calibrate(x[:1])


def test_activation_bytes_size_the_cpu_micro_batches():
    pan, ms = build_networks(32)
    assert pan.activation_bytes() == 4 * 32 * 84 * 84  # conv1 output of a 256×256 PAN patch
    assert ms.activation_bytes() == 4 * 64 * 30 * 30
    assert (32 << 20) // pan.activation_bytes() == 37 and (32 << 20) // ms.activation_bytes() >= 128
