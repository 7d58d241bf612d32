"""paperzoo.cost: FLOPs counted on the meta device, jobs from the config, the table's arithmetic."""
import pytest

from paperzoo import cost


def test_forward_flops_on_meta_matches_a_hand_count():
    import torch

    def build():
        return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(8 * 16, 5))

    params, flops = cost.forward_flops(build, (4, 4))
    assert params == 3 * 8 * 9 + 8 + 8 * 16 * 5 + 5
    assert flops == 2 * (3 * 9 * 8 * 16) + 2 * (8 * 16 * 5)     # 2 FLOPs per multiply-add


def test_paper_table_rows_and_arithmetic():
    rows = cost.rows("paper", ["kd_detr", "lae"], tflops=100.0)
    by = {r["rule"]: r for r in rows if r["study"] == "kd_detr"}
    t, s = by["kd_detr_teacher"], by["kd_detr_student"]
    assert 40 < t["params_M"] < 46 and t["image"] == "800x800"
    assert t["runs"] == 1 and s["runs"] == 8 * 3                # 8 arms x 3 seeds
    # student: 3 passes of its own forward + 1 teacher forward per image
    assert s["PFLOPs"] == pytest.approx(24 * s["steps"] * s["batch"] * (3 * s["fwd_GFLOPs_per_img"]
                                                                       + t["fwd_GFLOPs_per_img"]) * 1e9 / 1e15)
    assert t["device_hours"] == pytest.approx(t["PFLOPs"] * 1e15 / 100e12 / 3600)
    assert t["steps"] * t["batch"] == s["steps"] * s["batch"]   # both 50 epochs of COCO
    assert next(r for r in rows if r["study"] == "lae")["note"].startswith("not planned")
    md = cost.markdown(rows, "paper", 100.0)
    assert "| **total** |" in md and "`dab_detr_r18 (+ dab_detr_r50 fwd)`" in md
