"""PET modules on a tiny ViT: zero-init identity, LoRA on K/V only, prefix compensation math."""
import pytest
import torch
from numpy.testing import assert_allclose

from paperzoo.layers.pet import Adapter, KVLoRA, PETViT, Prefix, make_pet, prefix_attention
from paperzoo.layers.registry import create_model
from paperzoo.layers import vit  # noqa: F401  (registers the ViT entry points)

torch.set_num_threads(1)


def _vit():
    torch.manual_seed(0)
    return PETViT(create_model("test_vit")).eval()


def _x(B=3):
    return torch.rand(B, 3, 16, 16, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("kind", ["adapter", "lora"])
def test_zero_init_pet_leaves_backbone_output_unchanged(kind):
    m = _vit()
    ref = m.vit(_x())                                               # timm's own forward, CLS pooling
    out = m(_x(), make_pet(kind, m.embed_dim, 2))
    assert_allclose(out.detach().numpy(), ref.detach().numpy(), atol=1e-5)
    assert_allclose(m(_x(), None).numpy(), ref.detach().numpy(), atol=1e-5)


@pytest.mark.parametrize("kind", ["adapter", "lora", "prefix"])
def test_pet_gets_gradients_and_backbone_stays_frozen(kind):
    m = _vit()
    pet = make_pet(kind, m.embed_dim, 1)
    with torch.no_grad():                                           # move off the zero init
        for p in pet.parameters():
            p.add_(0.05 * torch.randn_like(p))
    m(_x(), pet).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in pet.parameters())
    assert all(p.grad is None for p in m.vit.parameters())


def test_lora_touches_only_k_and_v_rows():
    lora = KVLoRA(8, rank=2)
    with torch.no_grad():
        lora.b_k.normal_()
        lora.b_v.normal_()
    d = lora(torch.randn(2, 5, 8))                                  # (B, N, 3D)
    assert d.shape == (2, 5, 24)
    assert torch.all(d[..., :8] == 0) and d[..., 8:16].abs().sum() > 0 and d[..., 16:].abs().sum() > 0
    lora.s_v.data.zero_()
    assert torch.all(lora(torch.randn(2, 5, 8))[..., 16:] == 0)     # learnable per-K/V scalars


def test_adapter_zero_up_projection_and_learnable_scale():
    a = Adapter(8, bottleneck=3)
    assert torch.all(a(torch.randn(4, 8)) == 0)
    assert isinstance(a.scale, torch.nn.Parameter) and float(a.scale.detach()) == 1.0
    assert torch.all(a.down.bias == 0)                                # official: zero down-projection bias


def test_prefix_has_separate_key_and_value_scalars():
    from paperzoo.layers.pet import Prefix
    p = Prefix(8, length=3)
    p.scale_value.data.fill_(2.0)
    k, v = p.tokens()
    torch.testing.assert_close(k, p.key)
    torch.testing.assert_close(v, 2.0 * p.value)
    assert {n for n, _ in p.named_parameters()} == {"key", "value", "scale_key", "scale_value"}


def test_prefix_compensation_divides_prefix_slice_by_its_mass():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 5, 4, generator=g) for _ in range(3))   # (B, H, N, d)
    pk, pv = (torch.randn(2, 2, 3, 4, generator=g) for _ in range(2))    # (B, H, L, d)
    s = 0.5
    full = torch.softmax(s * q @ torch.cat([pk, k], 2).transpose(-2, -1), -1)
    lam = full[..., :3].sum(-1, keepdim=True)                              # λ(x): prefix attention mass
    orig = torch.softmax(s * q @ k.transpose(-2, -1), -1) @ v
    pref = torch.softmax(s * q @ pk.transpose(-2, -1), -1) @ pv
    plain = prefix_attention(q, k, v, pk, pv, s, compensatory=False)
    comp = prefix_attention(q, k, v, pk, pv, s, compensatory=True)
    assert_allclose(plain.numpy(), ((1 - lam) * orig + lam * pref).numpy(), atol=1e-6)
    assert_allclose(comp.numpy(), ((1 - lam) * orig + pref).numpy(), atol=1e-6)


def test_prefix_switch_changes_output_and_init_is_small():
    m = _vit()
    pet = make_pet("prefix", m.embed_dim, 2, length=4)
    assert all(0 <= float(p.key.detach().min()) and float(p.key.detach().max()) <= 0.01 for p in pet)
    on = m(_x(), pet)
    for p in pet:
        p.compensatory = False
    off = m(_x(), pet)
    assert not torch.allclose(on, off)
    assert isinstance(pet[0], Prefix)


def test_registered_vits_build_and_paper_size():
    assert create_model("test_vit")(_x()).shape == (3, 32)
    assert create_model("vit_mini_p8")(torch.rand(2, 3, 32, 32)).shape == (2, 96)
    with torch.device("meta"):                                      # no memory, no init cost
        n = sum(p.numel() for p in create_model("vit_base_patch16_224_in21k_lae").parameters())
    assert 85_000_000 < n < 87_000_000                              # published ViT-B/16: 86M


def test_unknown_pet_kind():
    with pytest.raises(ValueError, match="PET kind"):
        make_pet("bitfit", 8, 1)


def test_official_pet_sizes_on_vit_b():
    """Adapter5 / LoRA5 / Prefix10 on the first 5 of ViT-B's 12 blocks (d 768), scalars included."""
    from paperzoo.layers.pet import count_params

    d = 768
    assert count_params(make_pet("adapter", d, 5, bottleneck=5)) == 5 * (d * 5 + 5 + 5 * d + d + 1)   # 42,270
    assert count_params(make_pet("lora", d, 5, rank=5)) == 5 * (4 * 5 * d + 2)                         # 76,810
    assert count_params(make_pet("prefix", d, 5, length=10)) == 5 * (2 * 10 * d + 2)                  # 76,810 (key and value scalars)
