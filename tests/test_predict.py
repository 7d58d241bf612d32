"""paperzoo.predict: FLOPs counted on the meta device, jobs from the config, the table's arithmetic."""
import pytest

from paperzoo import predict as cost


def test_forward_flops_on_meta_matches_a_hand_count():
    import torch

    def build():
        return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(8 * 16, 5))

    params, flops = cost.forward_flops(build, (4, 4))
    assert params == 3 * 8 * 9 + 8 + 8 * 16 * 5 + 5
    assert flops == 2 * (3 * 9 * 8 * 16) + 2 * (8 * 16 * 5)     # 2 FLOPs per multiply-add


def test_paper_table_rows_and_arithmetic():
    rows = cost.rows("paper", ["kd_detr", "lae"], tflops=100.0)
    kd = [r for r in rows if r["study"] == "kd_detr"]
    t = next(r for r in kd if r["rule"] == "kd_detr_teacher")
    students = {r["arm"]: r for r in kd if r["rule"] == "kd_detr_student"}
    assert 40 < t["params_M"] < 46 and t["image"] == "800x800" and t["published_params_M"] == 44.0
    assert t["runs"] == 1 and len(students) == 8 and all(s["runs"] == 3 for s in students.values())
    s, base = students["kd_detr"], students["baseline"]
    # a distilled student: 3 passes of its own forward + 1 teacher forward per image; the baseline no teacher
    assert s["PFLOPs"] == pytest.approx(3 * s["steps"] * s["batch"] * (3 * s["fwd_GFLOPs_per_img"]
                                                                      + t["fwd_GFLOPs_per_img"]) * 1e9 / 1e15)
    assert base["PFLOPs"] == pytest.approx(3 * s["steps"] * s["batch"] * 3 * s["fwd_GFLOPs_per_img"] * 1e9 / 1e15)
    assert t["device_hours"] == pytest.approx(t["PFLOPs"] * 1e15 / 100e12 / 3600)
    assert t["steps"] * t["batch"] == s["steps"] * s["batch"]   # both 50 epochs of COCO
    lae = {r["arm"]: r for r in rows if r["study"] == "lae"}
    # CIFAR-100: 500 images x 10 classes per task / batch 24 = 209 steps per epoch, 5 epochs, 10 tasks
    assert lae["cifar100_linear"]["steps"] == 209 * 5 * 10 and lae["cifar100_linear"]["passes"] == 1.0
    seq = lae["cifar100_seq_adapter"]       # PET steps count 2 forward-equivalents, head-only steps 1
    pet, head = 209 * (5 + 9 * 2), 209 * 9 * 3
    assert seq["steps"] == pet + head and seq["passes"] == pytest.approx((2 * pet + head) / (pet + head))
    assert 80 < seq["params_M"] < 90 and seq["published_params_M"] == 86.0
    assert "lae_pretrain" not in {r["rule"] for r in rows}    # the paper downloads its backbone
    md = cost.markdown(rows, "paper", 100.0)
    assert "| **total** |" in md and "`dab_detr_r18 (+ dab_detr_r50 fwd)`" in md and "not confirmed" in md


def _row(rule, arm, hours, runs=1, jobs=None, group=None, study="s"):
    return {"study": study, "rule": rule, "arm": arm, "hours_per_job": hours, "runs": runs,
            "jobs": runs if jobs is None else jobs, "group": group or arm, "TFLOPs_per_job": hours,
            "ledger_rule": rule.removeprefix(f"{study}_"), "ledger_match": None}


def test_runtimes_take_the_longest_job_sum_a_shared_job_and_round_up():
    table = [_row("s_train", "a", 1.0), _row("s_train", "b", 2.0),
             _row("s_pair", "seq", 0.5, group="g"), _row("s_pair", "lae", 0.5, jobs=0, group="g"),
             {"study": "x", "rule": "—", "note": "not planned"}]
    mins = cost.runtimes(table, safety=2.0, overhead_min=15.0)
    assert mins == {"s_pair": 135, "s_train": 255}    # (60 x 2 + 15) -> 135; (120 x 2 + 15) -> 255


def test_write_profile_replaces_only_its_block(tmp_path):
    prof = tmp_path / "config.yaml"
    prof.write_text("executor: slurm\njobs: 4\n")
    block = cost.profile_block({"r": 30}, "paper", 60.0, 2.0)
    assert cost.write_profile(prof, block)
    assert prof.read_text().startswith("executor: slurm\njobs: 4\n") and "  r:\n    runtime: 30" in prof.read_text()
    assert not cost.write_profile(prof, block)                      # idempotent
    cost.write_profile(prof, cost.profile_block({"r": 45}, "paper", 60.0, 2.0))
    text = prof.read_text()
    assert text.count(cost.PROFILE_BEGIN) == 1 and "runtime: 45" in text and "runtime: 30" not in text
    prof.write_text(text.replace(cost.PROFILE_END, ""))
    with pytest.raises(ValueError, match="without"):
        cost.write_profile(prof, block)


def test_committed_slurm_runtimes_are_the_predictions():
    """workflow/profiles/slurm/config.yaml's set-resources = what the predictor gives now: a budget
    changed in the paper overlay without regenerating the profile fails here."""
    from pathlib import Path

    import yaml

    repo = Path(__file__).resolve().parents[1]
    text = (repo / "workflow/profiles/slurm/config.yaml").read_text()
    header = text.split(cost.PROFILE_BEGIN, 1)[1].split("\n", 2)[1]
    tflops = float(header.split(" TFLOP/s")[0].rsplit(" ", 1)[1])
    safety = float(header.split(" x ")[1].split(" ")[0])
    want = cost.runtimes(cost.rows("paper", None, tflops, root=repo), safety)
    got = {rule: v["runtime"] for rule, v in yaml.safe_load(text)["set-resources"].items()}
    assert got == want, "regenerate: python -m paperzoo.predict --scale paper --profile workflow/profiles/slurm/config.yaml"


def test_validate_sets_predicted_flops_against_the_ledger(tmp_path):
    ledger = tmp_path / "cost_jobs.csv"
    ledger.write_text("study,rule,job,mtime,s,cpu_time,max_rss\n"
                      "s,train,a_seed0,0,10,9,100\ns,train,a_seed1,0,30,9,100\ns,train,b_seed0,0,-,9,100\n"
                      "t,train,a_seed0,0,99,9,100\n")
    table = [_row("s_train", "a", 0.0, runs=2), _row("s_train", "b", 0.0, runs=2), _row("s_other", "c", 0.0)]
    table[0]["TFLOPs_per_job"], table[1]["TFLOPs_per_job"] = 1.0, 3.0
    (v,) = cost.validate(table, ledger, peak_gflops=200.0)   # s_other has no ledger jobs: left out
    assert v["rule"] == "s_train" and v["planned_jobs"] == 4 and v["measured_jobs"] == 2
    assert v["TFLOPs_per_job"] == pytest.approx(2.0) and v["mean_job_s"] == pytest.approx(20.0)
    assert v["achieved_gflops"] == pytest.approx(100.0) and v["fraction_of_peak"] == pytest.approx(0.5)
    assert "| s_train | 4 / 2 |" in cost.validation_markdown([v], 200.0)


def test_apis_plan_counts_crops_and_the_fullmask_schedule():
    rows = {(r["rule"], r["arm"]): r for r in cost.rows("mini", ["apis"], tflops=60.0)}
    p0, full, ent = rows[("apis_p0", "")], rows[("apis_fullmask", "")], rows[("apis_active", "entropy")]
    assert p0["image"] == "16x16" and p0["batch"] == 64
    assert full["steps"] == p0["steps"] + ent["steps"]          # same number of updates as P0 + every round
    assert {a for (r, a) in rows if r == "apis_active"} == {"random", "entropy", "bald", "oracle"}
