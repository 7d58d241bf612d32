import torch
from numpy.testing import assert_allclose

from paperzoo.layers.point_grid import (bev_coords, flat_index, gather_bilinear, rv_coords, scatter_max,
                                        scatter_mean)


def test_scatter_max_empty_cells_zero_and_negative_max():
    coords = torch.tensor([[[0.2, 0.3], [0.7, 0.9], [2.5, 1.1], [9.0, 0.0]]])  # last point out of a 3×2 grid
    idx = flat_index(coords, (3, 2))
    assert idx.tolist() == [[0, 0, 5, -1]]
    feat = torch.tensor([[[1.0, 3.0, -2.0, 100.0]]], requires_grad=True)      # (1, 1, 4)
    g = scatter_max(feat, idx, (3, 2))
    assert_allclose(g[0, 0].detach().numpy(), [[3.0, 0.0], [0.0, 0.0], [0.0, -2.0]])
    g.sum().backward()
    assert feat.grad.tolist() == [[[0.0, 1.0, 1.0, 0.0]]]                     # arg-max only; dropped point none
    m = scatter_mean(feat.detach(), idx, (3, 2))
    assert_allclose(m[0, 0].numpy(), [[2.0, 0.0], [0.0, 0.0], [0.0, -2.0]])


def test_gather_bilinear_axis_order_and_value():
    grid = torch.arange(12.0).view(1, 1, 3, 4) ** 1.5                          # value depends on (row, col) asymmetrically
    r, c = 1.25, 2.5
    v = grid[0, 0]
    expect = ((1 - 0.25) * ((1 - 0.5) * v[1, 2] + 0.5 * v[1, 3]) + 0.25 * ((1 - 0.5) * v[2, 2] + 0.5 * v[2, 3]))
    out = gather_bilinear(grid, torch.tensor([[[r, c], [2.0, 3.0], [0.0, 1.0]]]))
    assert_allclose(out[0, 0].numpy(), [expect.item(), v[2, 3].item(), v[0, 1].item()], rtol=1e-5)


def test_projections():
    xyz = torch.tensor([[[1.0, -2.0, 0.0], [0.0, 5.0, 0.0]]])
    b = bev_coords(xyz, (-4.0, 4.0), (-4.0, 4.0), (8, 16))
    assert_allclose(b[0, 0].numpy(), [5.0, 4.0])
    rv = rv_coords(xyz, (-10.0, 10.0), (4, 8))
    assert_allclose(rv[0, :, 0].numpy(), [2.0, 2.0], atol=1e-5)                # elevation 0 → middle row
    assert_allclose(rv[0, 1, 1].numpy(), 4.0, atol=1e-5)                      # +y: atan2(0, 5) = 0 → col W/2
