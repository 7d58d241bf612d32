"""``engine.flops``: FlopCounterMode's counts on layers whose cost is known by hand."""
import pytest
import torch
from torch import nn

from paperzoo.engine.flops import count_flops, count_params, flops_per_image


@pytest.mark.parametrize("bias", [True, False])
def test_linear_counts_two_flops_per_multiply_add_and_ignores_the_bias(bias):
    layer = nn.Linear(10, 20, bias=bias)
    assert count_flops(layer, torch.randn(3, 10)) == 2 * 3 * 10 * 20      # 1200 with or without bias


@pytest.mark.parametrize("groups", [1, 3])
def test_conv_matches_the_formula(groups):
    conv = nn.Conv2d(6, 12, kernel_size=3, stride=2, padding=1, groups=groups)
    x = torch.randn(2, 6, 16, 16)
    b, c_out, h, w = conv(x).shape                                          # (2, 12, 8, 8)
    assert count_flops(conv, x) == 2 * b * c_out * h * w * (6 // groups) * 3 * 3


def test_elementwise_ops_are_not_counted_and_kwargs_reach_forward():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 4)

        def forward(self, x, scale=1.0):
            return torch.relu(self.fc(x)).sigmoid() * scale + 1.0

    net, x = Net(), torch.randn(5, 8)
    assert count_flops(net, x) == 2 * 5 * 8 * 4
    assert count_flops(net, x, scale=3.0) == 2 * 5 * 8 * 4
    with pytest.raises(TypeError):
        count_flops(net, x, no_such_kwarg=1)


class _Probe(nn.Module):
    """Records the training flag and grad mode seen in forward."""

    def __init__(self):
        super().__init__()
        self.fc, self.bn, self.seen = nn.Linear(4, 4), nn.BatchNorm1d(4), []

    def forward(self, x):
        self.seen.append((self.training, self.bn.training, torch.is_grad_enabled()))
        return self.bn(self.fc(x))


def test_forward_runs_in_eval_no_grad_and_training_flags_are_restored():
    net = _Probe().train()
    net.bn.eval()                                       # a frozen sub-module must stay frozen
    before = net.bn.running_mean.clone()
    count_flops(net, torch.randn(6, 4))
    assert net.seen == [(False, False, False)]
    assert net.training and not net.bn.training and net.fc.training
    assert torch.equal(net.bn.running_mean, before)     # eval mode: BN statistics untouched
    net.eval()
    count_flops(net, torch.randn(6, 4))
    assert not net.training and not net.fc.training


def test_training_flag_is_restored_when_forward_raises():
    net = _Probe().train()
    with pytest.raises(RuntimeError):
        count_flops(net, torch.randn(6, 5))             # wrong width
    assert net.training and net.bn.training


def test_flops_per_image_is_batch_independent_and_takes_h_w():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1))
    one = 2 * 32 * 32 * (8 * 3 * 9 + 4 * 8)             # per image at 32 × 32
    assert flops_per_image(net, 32) == one
    assert flops_per_image(net, 32, batch=4) == one
    assert flops_per_image(net, (32, 16)) == one // 2
    gray = nn.Conv2d(1, 2, 1)
    assert flops_per_image(gray, 10, in_chans=1) == 2 * 100 * 2
    with pytest.raises(ValueError, match="image_size"):
        flops_per_image(net, (32,))
    with pytest.raises(ValueError, match="batch"):
        flops_per_image(net, 32, batch=0)


def test_count_params_total_and_trainable():
    net = nn.Sequential(nn.Linear(10, 20), nn.Linear(20, 2))
    assert count_params(net) == 10 * 20 + 20 + 20 * 2 + 2
    net[0].requires_grad_(False)
    assert count_params(net, trainable_only=True) == 20 * 2 + 2
    assert count_params(net) == 262
    tied = nn.Sequential(net[1], net[1])                # a shared module counts once
    assert count_params(tied) == 42
