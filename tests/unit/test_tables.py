"""Comparison tables: t-interval numbers, protocol-separated columns, grouping by config minus seed."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
import yaml

from ganforge.errors import RunDirError
from ganforge.experiments.compare import compare_runs
from ganforge.metrics.tables import RunValues, build_table, cell_text, summarize, to_csv, to_markdown


def test_summarize_matches_the_t_interval_by_hand():
    s = summarize([1.0, 2.0, 3.0])
    assert s.n == 3 and s.mean == pytest.approx(2.0) and s.std == pytest.approx(1.0)
    half = 4.302652729911275 / math.sqrt(3)  # t_{0.975, 2} = 4.3027 (tables), s = 1
    assert (s.ci_low, s.ci_high) == pytest.approx((2.0 - half, 2.0 + half))


def test_summarize_one_seed_has_no_interval_and_drops_non_finite():
    one = summarize([5.0])
    assert one.n == 1 and one.mean == 5.0 and math.isnan(one.std) and math.isnan(one.ci_low)
    assert cell_text(one) == "5 (1 seed)"
    s = summarize([1.0, float("nan"), 3.0, float("inf")])
    assert s.n == 2 and s.mean == pytest.approx(2.0)
    assert summarize([]).n == 0 and cell_text(summarize([])) == "—"


def _rec(name, value, pid="p1", floor=None):
    return {"name": name, "value": value, "protocol_id": pid, "protocol": {"n": 1000}, "floor": floor,
            "ci": {"low": value - 1, "high": value + 1, "method": "bootstrap"}}


def test_metrics_under_different_protocols_never_share_a_column():
    groups = {
        "a": [RunValues("r/a0", 0, [_rec("fid", 10.0, "aaaa1111")], {"loss_D": 1.0}),
              RunValues("r/a1", 1, [_rec("fid", 12.0, "aaaa1111")], {"loss_D": 1.2})],
        "b": [RunValues("r/b0", 0, [_rec("fid", 30.0, "bbbb2222")], {"loss_D": 0.5})],
    }
    table = build_table(groups)
    keys = [c.key for c in table.columns]
    assert "fid@aaaa1111" in keys and "fid@bbbb2222" in keys and "fid" not in keys
    row_a = table.rows[0]
    assert row_a.cells["fid@aaaa1111"].mean == pytest.approx(11.0) and "fid@bbbb2222" not in row_a.cells
    notes = "\n".join(table.notes)
    assert "r/b0" in notes and "r/a0" in notes  # the notes name which runs used which protocol


def test_one_protocol_one_column_with_floor_and_final_losses():
    groups = {"x": [RunValues(f"r{s}", s, [_rec("kid", 0.1 * (s + 1), floor=0.01)], {"loss_D": 1.0, "loss_G": 2.0})
                    for s in range(3)]}
    table = build_table(groups)
    assert [c.key for c in table.columns] == ["kid", "final_loss_D", "final_loss_G"]
    assert table.rows[0].cells["kid"].mean == pytest.approx(0.2)
    assert table.rows[0].floors["kid"] == pytest.approx(0.01)
    md = to_markdown(table, "t")
    assert "| x | 3 |" in md and "floor" in md and "kid 0.01" in md
    rows = list(csv.DictReader(io.StringIO(to_csv(table))))
    assert rows[0]["configuration"] == "x" and float(rows[0]["kid_mean"]) == pytest.approx(0.2)
    assert rows[0]["kid_n"] == "3" and float(rows[0]["kid_floor"]) == pytest.approx(0.01)
    assert float(rows[0]["kid_ci_low"]) < 0.2 < float(rows[0]["kid_ci_high"])


def test_markdown_escapes_pipes_in_labels():
    table = build_table({"a|b": [RunValues("r", 0, [], {"loss_D": 1.0})]})
    assert "| a\\|b |" in to_markdown(table)


def _fake_run(path, seed, z_dim=2, fid=None, pid="p1", name="toy"):
    path.mkdir(parents=True)
    cfg = {"name": name, "model": {"z_dim": z_dim}, "train": {"seed": seed, "kimg": 1.0, "device": "auto"}}
    (path / "config.yaml").write_text(yaml.safe_dump(cfg))
    (path / "summary.json").write_text(json.dumps({"final": {"loss_D": 1.0 + seed, "loss_G": 0.5}}))
    if fid is not None:
        (path / "eval.json").write_text(json.dumps({"metrics": [_rec("fid", fid, pid)]}))
    return path


def test_compare_groups_by_config_minus_seed_and_labels_the_difference(tmp_path):
    runs = [_fake_run(tmp_path / f"z2s{s}", s, 2, fid=10 + s) for s in range(3)]
    runs += [_fake_run(tmp_path / f"z3s{s}", s, 3, fid=20 + s) for s in range(2)]
    table, groups = compare_runs(runs, out=tmp_path / "cmp")
    labels = {row.label: row for row in table.rows}
    assert set(labels) == {"toy [model.z_dim=2]", "toy [model.z_dim=3]"}
    assert labels["toy [model.z_dim=2]"].cells["fid"].mean == pytest.approx(11.0)
    assert labels["toy [model.z_dim=3]"].seeds == [0, 1]
    da = []
    for policy in ("", "translation"):  # an empty value (DiffAugment off) reads ''
        run = _fake_run(tmp_path / f"da-{policy}", 0, fid=1.0)
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        (run / "config.yaml").write_text(yaml.safe_dump({**cfg, "augment": {"diffaugment": policy}}))
        da.append(run)
    assert {row.label for row in compare_runs(da)[0].rows} == {"toy [augment.diffaugment='']",
                                                                "toy [augment.diffaugment=translation]"}
    assert (tmp_path / "cmp" / "table.csv").is_file() and (tmp_path / "cmp" / "table.md").is_file()


def test_compare_pools_seeds_whose_preset_description_was_edited_between_them(tmp_path):
    runs = [_fake_run(tmp_path / f"s{s}", s, fid=10.0 + s) for s in range(2)]
    cfg = yaml.safe_load((runs[1] / "config.yaml").read_text())
    (runs[1] / "config.yaml").write_text(yaml.safe_dump({**cfg, "description": "the same recipe, described anew"}))
    table, _ = compare_runs(runs)
    assert [(row.label, row.seeds) for row in table.rows] == [("toy", [0, 1])]


def test_compare_refuses_the_same_seed_twice_and_non_runs(tmp_path):
    a = _fake_run(tmp_path / "a", 0)
    b = _fake_run(tmp_path / "b", 0)
    with pytest.raises(RunDirError, match="same seed"):
        compare_runs([a, b])
    with pytest.raises(RunDirError, match="not a ganforge run"):
        compare_runs([tmp_path / "nothing"])


def test_compare_full_data_reads_eval_full_data_and_refuses_runs_without_it(tmp_path):
    """--full-data: the data.limit runs' numbers against the whole split, never their eval.json; a run
    not measured that way is named with the command that measures it."""
    runs = []
    for s in range(2):
        run = _fake_run(tmp_path / f"s{s}", s, fid=50.0)  # eval.json: against the run's own few images
        (run / "eval-full-data.json").write_text(json.dumps({"metrics": [_rec("fid", 10.0 + 2 * s, "full1234")]}))
        runs.append(run)
    table, _ = compare_runs(runs, full_data=True)
    assert [c.key for c in table.columns if c.key.startswith("fid")] == ["fid"]
    assert table.rows[0].cells["fid"].mean == pytest.approx(11.0)  # not 50
    assert compare_runs(runs)[0].rows[0].cells["fid"].mean == pytest.approx(50.0)
    plain = _fake_run(tmp_path / "plain", 2, fid=9.0)
    with pytest.raises(RunDirError, match=r"no eval-full-data.json.*ganforge evaluate .*plain --full-data"):
        compare_runs([*runs, plain], full_data=True)


def test_compare_full_data_notes_what_copying_each_limit_scores(tmp_path):
    """--full-data: a note per data.limit with what a G copying those images scores (`evaluate --full-data
    --baseline replay` of one of its runs), or the command that measures it."""
    runs = []
    for limit, seed in ((500, 0), (500, 1), (1000, 0)):
        run = _fake_run(tmp_path / f"l{limit}-s{seed}", seed)
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        (run / "config.yaml").write_text(yaml.safe_dump({**cfg, "data": {"limit": limit}}))
        (run / "eval-full-data.json").write_text(json.dumps({"metrics": [_rec("fid", 12.0 + seed)]}))
        runs.append(run)
    copier = {**_rec("fid", 3.25), "ci": {"low": 2.5, "high": 4.75}}
    (runs[1] / "eval-full-data-baseline-replay.json").write_text(json.dumps({"metrics": [copier]}))
    notes = compare_runs(runs, full_data=True)[0].notes
    assert any("copies the 500 training examples" in n and "l500-s1" in n and "fid 3.25 [2.5, 4.75]" in n
               for n in notes), notes
    assert any("copying the 1000 training examples" in n and "l1000-s0 --full-data --baseline replay" in n
               for n in notes), notes
    assert not any("copies" in n or "copying" in n for n in compare_runs(runs)[0].notes)  # own protocol: none


def test_compare_best_reads_the_kept_generators_numbers(tmp_path):
    """--best: RUN/best/eval.json (`ganforge evaluate RUN/best`), never the last tick's eval.json."""
    runs = []
    for s in range(2):
        run = _fake_run(tmp_path / f"s{s}", s, fid=50.0)
        (run / "best").mkdir()
        (run / "best" / "generator.safetensors").write_bytes(b"kept")
        (run / "best" / "eval.json").write_text(json.dumps({"metrics": [_rec("fid", 7.0 + s)]}))
        runs.append(run)
    assert compare_runs(runs, best=True)[0].rows[0].cells["fid"].mean == pytest.approx(7.5)  # not 50
    (runs[1] / "best" / "eval.json").unlink()
    with pytest.raises(RunDirError, match=r"s1/best' has no eval.json.*ganforge evaluate .*s1/best`"):
        compare_runs(runs, best=True)
    with pytest.raises(RunDirError, match=r"kept no best generator.*health.keep_best"):
        compare_runs([_fake_run(tmp_path / "plain", 2, fid=9.0)], best=True)


def test_compare_without_full_data_points_at_runs_measured_only_with_it(tmp_path):
    run = _fake_run(tmp_path / "limited", 0)
    (run / "eval-full-data.json").write_text(json.dumps({"metrics": [_rec("fid", 10.0)]}))
    table, _ = compare_runs([run, _fake_run(tmp_path / "other", 0, z_dim=3, fid=4.0)])
    rows = {row.label: row for row in table.rows}
    assert "fid" not in rows["toy [model.z_dim=2]"].cells and rows["toy [model.z_dim=3]"].cells["fid"].mean == 4.0
    hints = [n for n in table.notes if "--full-data" in n]
    assert len(hints) == 1 and str(run) in hints[0] and str(tmp_path / "other") not in hints[0]


def test_kid_is_printed_times_a_thousand_with_the_unit_in_the_header():
    recs = [{**_rec("kid", v, floor=0.0004), "display_scale": 1000.0} for v in (0.0021, 0.0025)]
    groups = {"x": [RunValues(f"r{s}", s, [rec], {}) for s, rec in enumerate(recs)]}
    table = build_table(groups)
    col = table.columns[0]
    assert col.title.startswith("kid ×10³") and col.scale == 1000.0
    assert table.rows[0].cells["kid"].mean == pytest.approx(2.3) and table.rows[0].floors["kid"] == pytest.approx(0.4)
    md = to_markdown(table)
    assert "| kid ×10³ |" in md.splitlines()[0]  # the header carries the unit
    assert "eval.json keeps the unscaled value" in md
    rows = list(csv.reader(io.StringIO(to_csv(table))))
    assert "kid_x1000_mean" in rows[0] and float(rows[1][rows[0].index("kid_x1000_mean")]) == pytest.approx(2.3)
    plain = build_table({"x": [RunValues("r0", 0, [_rec("fid", 12.0)], {})]})
    assert plain.columns[0].title == "fid" and plain.columns[0].scale == 1.0
