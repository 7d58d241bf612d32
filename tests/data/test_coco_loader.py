"""DETR's augmentations for real COCO: box and mask bookkeeping, resize rule, padding."""
import torch

from paperzoo.data.coco import DetrTransforms, collate_detection, crop, hflip, normalize, resize, size_with_aspect_ratio


def _target():
    masks = torch.zeros((2, 40, 60), dtype=torch.bool)
    masks[0, 5:15, 10:30] = True
    masks[1, 30:40, 50:60] = True
    return {"boxes": torch.tensor([[10.0, 5.0, 30.0, 15.0], [50.0, 30.0, 60.0, 40.0]]), "labels": torch.tensor([3, 1]),
            "area": torch.tensor([200.0, 100.0]), "iscrowd": torch.zeros(2, dtype=torch.int64), "masks": masks,
            "size": torch.tensor([40, 60])}


def test_detr_resize_rule():
    assert size_with_aspect_ratio(480, 640, 800, 1333) == (800, 1066)     # shorter side → 800
    assert size_with_aspect_ratio(400, 1200, 800, 1333) == (444, 1332)    # longer side capped (DETR floors)
    assert size_with_aspect_ratio(40, 60, 40, None) == (40, 60)


def test_hflip_and_resize_keep_boxes_on_masks():
    img = torch.zeros((3, 40, 60), dtype=torch.uint8)
    x, t = hflip(img, _target())
    torch.testing.assert_close(t["boxes"][0], torch.tensor([30.0, 5.0, 50.0, 15.0]))
    assert t["masks"][0, 5:15, 30:50].all() and t["masks"][0].sum() == 200
    x, t = resize(x, t, 20, None)                                            # 40×60 → 20×30
    assert x.shape == (3, 20, 30) and t["size"].tolist() == [20, 30]
    torch.testing.assert_close(t["boxes"][0], torch.tensor([15.0, 2.5, 25.0, 7.5]))
    torch.testing.assert_close(t["area"], torch.tensor([50.0, 25.0]))
    assert t["masks"].shape == (2, 20, 30)


def test_crop_clips_boxes_and_drops_instances_outside():
    img = torch.zeros((3, 40, 60), dtype=torch.uint8)
    x, t = crop(img, _target(), top=0, left=20, h=25, w=30)                 # keeps part of object 0 only
    assert x.shape == (3, 25, 30) and t["labels"].tolist() == [3]
    torch.testing.assert_close(t["boxes"], torch.tensor([[0.0, 5.0, 10.0, 15.0]]))
    assert t["masks"].shape == (1, 25, 30) and t["masks"][0].sum() == 100


def test_normalize_gives_cxcywh_in_unit_square():
    img = torch.full((3, 40, 60), 255, dtype=torch.uint8)
    x, t = normalize(img, _target())
    torch.testing.assert_close(t["boxes"][0], torch.tensor([20 / 60, 10 / 40, 20 / 60, 10 / 40]))
    assert x.dtype == torch.float32 and torch.allclose(x[0], torch.tensor((1 - 0.485) / 0.229))


def test_train_transforms_are_seeded_and_collate_pads():
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    img = torch.randint(0, 255, (3, 40, 60), dtype=torch.uint8)
    kw = dict(train_scales=[24, 32, 40], max_size=80, crop_scales=[30, 36], crop_min=16, crop_max=28)
    a = [DetrTransforms(True, generator=gen, **kw)(img, _target()) for gen in [g()] for _ in range(4)]
    b = [DetrTransforms(True, generator=gen, **kw)(img, _target()) for gen in [g()] for _ in range(4)]
    for (xa, ta), (xb, tb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ta["boxes"], tb["boxes"])
    images, targets, pad = collate_detection(a)
    h, w = max(x.shape[1] for x, _ in a), max(x.shape[2] for x, _ in a)
    assert images.shape == (4, 3, h, w)
    for i, (x, _) in enumerate(a):
        assert not pad[i, :x.shape[1], :x.shape[2]].any() if pad is not None else True
        if pad is not None:
            assert pad[i].sum() == h * w - x.shape[1] * x.shape[2]
