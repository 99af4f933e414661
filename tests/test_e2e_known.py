"""End to end on a constructed pool whose table is known by construction: three replayed models whose answers
(right or a chosen wrong number) and confidences are scripted per item, through Snakemake to ``main.csv`` and
``singles.csv``. Every score and gain below is counted by hand from the script, so the test fails when scoring,
the oracle, the vote, the cascade, the single-best choice or the table wiring breaks (the smoke study scores 0
almost everywhere and cannot tell)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from test_e2e import snakemake

from mocoflow.analysis.stats import paired_bootstrap_ci
from mocoflow.data.prompts import build_prompt
from mocoflow.data.sources import load_task
from mocoflow.export_table import to_wide, write_table

pytestmark = pytest.mark.e2e

MODELS = ("A", "B", "C")  # pool order
TASK = "arith"
TASK_SPEC = {"source": "builtin", "generator": "arithmetic", "seed": 0, "n_train": 0, "n_dev": 4, "n_test": 8}
R, HI, LO, SURE = "R", 0.9, 0.2, 0.95
# One row per item, one cell per model (A, B, C): (answer, confidence). "R" is the gold answer; an integer k is
# the wrong answer gold + k (equal k: the same wrong answer, which votes together). Confidence is
# exp(mean token log-prob), what the cascade reads.
DEV = [
    [(R, HI), (R, HI), (R, HI)],
    [(1, LO), (R, HI), (R, HI)],
    [(1, LO), (2, LO), (R, HI)],
    [(1, LO), (2, LO), (R, HI)],
]  # dev accuracy A 1/4 < B 2/4 < C 4/4: single picks C; the cascade asks A, then B, then C, and its thresholds
#    (the lowest dev confidence whose answers are right as often as C is on dev, i.e. always) are 0.9 for A and B
TEST = [
    [(R, HI), (R, HI), (R, HI)],    # t0 all right
    [(1, LO), (R, HI), (R, HI)],    # t1 vote B+C; cascade: A unsure -> B
    [(1, LO), (2, LO), (R, HI)],    # t2 three answers: the vote's tie goes to A (wrong); cascade -> C
    [(1, LO), (1, LO), (R, HI)],    # t3 A and B agree on a wrong answer: the vote is wrong; cascade -> C
    [(1, SURE), (R, HI), (R, HI)],  # t4 A confidently wrong: the cascade stops at A (wrong); vote right
    [(R, HI), (1, LO), (2, LO)],    # t5 only A right: the vote's tie goes to A (right)
    [(1, LO), (2, LO), (3, LO)],    # t6 nobody right
    [(1, LO), (R, HI), (2, LO)],    # t7 only B right: vote tie -> A (wrong); cascade -> B; oracle -> B
]
# Correctness per test item t0..t7, counted from TEST by hand:
HAND = {
    "A": [1, 0, 0, 0, 0, 1, 0, 0],              # 2/8
    "B": [1, 1, 0, 0, 1, 0, 0, 1],              # 4/8
    "C": [1, 1, 1, 1, 1, 0, 0, 0],              # 5/8: the best single model on test
    "single": [1, 1, 1, 1, 1, 0, 0, 0],         # C (best on dev)
    "majority_vote": [1, 1, 0, 0, 1, 1, 0, 0],  # 4/8
    "oracle_router": [1, 1, 1, 1, 1, 1, 0, 1],  # 7/8: any model right
    "cascade": [1, 1, 1, 1, 0, 1, 0, 1],        # 6/8
}
RUNS = ("single", "majority_vote", "oracle_router", "cascade")


def _answer(item, cell: tuple[str | int, float]) -> str:
    answer, _ = cell
    return f"Answer: {item.gold if answer == R else int(item.gold) + int(answer)}"


def _records(items: list, script: list[list[tuple[str | int, float]]], split: str) -> list[dict]:
    assert len(items) == len(script)
    return [{"task": TASK, "split": split, "id": item.id, "model": m, "prompt": build_prompt(item),
             "output": _answer(item, cell), "prompt_tokens": 10, "generated_tokens": 1,
             "sum_logprob": math.log(cell[1])}
            for item, row in zip(items, script, strict=True) for m, cell in zip(MODELS, row, strict=True)]


@pytest.fixture(scope="module")
def known_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("known")
    splits = load_task(TASK, dict(TASK_SPEC), cache_dir=workdir / "cache")  # the items the study will prepare
    table = workdir / "scripted.parquet"
    write_table(to_wide(_records(splits["dev"], DEV, "dev") + _records(splits["test"], TEST, "test")), table, {})
    config = {
        "study": "known",
        "cache_dir": "results/cache",
        "device": "cpu",
        "seeds": [0],
        "decoding": {"max_new_tokens": 8, "temperature": 0.0, "seed": 0},
        "models": {m: {"source": "replay", "backend": "replay", "table": str(table), "column": m} for m in MODELS},
        "pools": {"trio": list(MODELS)},
        "tasks": {TASK: TASK_SPEC},
        "methods": {r: {"pools": ["trio"]} for r in RUNS},
    }
    configfile = workdir / "known.yaml"
    configfile.write_text(yaml.safe_dump(config))
    snakemake(workdir, configfile, "--quiet", "all", "--", "results/tables/main.csv")
    return workdir / "results" / "tables"


def test_single_model_scores_are_the_scripted_ones(known_study: Path):
    singles = pd.read_csv(known_study / "singles.csv").set_index("model")
    for m in MODELS:
        assert singles.loc[m, "score"] == pytest.approx(np.mean(HAND[m])), m
        assert singles.loc[m, "n_items"] == len(TEST) and singles.loc[m, "task"] == TASK


def test_vote_oracle_cascade_and_single_score_and_gain_as_counted(known_study: Path):
    main = pd.read_csv(known_study / "main.csv").set_index("run")
    assert set(main.index) == set(RUNS)
    best = np.mean(HAND["C"])
    expected = {"single": 0.625, "majority_vote": 0.5, "oracle_router": 0.875, "cascade": 0.75}
    for run in RUNS:
        row = main.loc[run]
        assert row["score"] == pytest.approx(np.mean(HAND[run])) == pytest.approx(expected[run]), run
        assert (row["best_single"], row["best_single_score"], row["n_items"]) == ("C", pytest.approx(best), 8)
        assert row["gain"] == pytest.approx(expected[run] - 0.625), run
        # the paired item-level CI exists, contains the gain, and is the bootstrap of the hand-counted pairs
        assert row["gain_ci_lo"] <= row["gain"] <= row["gain_ci_hi"], run
        _, lo, hi = paired_bootstrap_ci(np.array(HAND[run], float), np.array(HAND["C"], float), n_boot=2000, seed=0)
        assert (row["gain_ci_lo"], row["gain_ci_hi"]) == (pytest.approx(lo, abs=1e-5), pytest.approx(hi, abs=1e-5))
    # single picks C on dev, so it equals C item by item: a zero-width interval at 0
    assert main.loc["single", ["gain_ci_lo", "gain_ci_hi"]].tolist() == [0, 0]
    # the oracle is never below the best single model on any item: its interval cannot fall below 0
    assert main.loc["oracle_router", "gain_ci_lo"] >= 0 and main.loc["oracle_router", "gain_ci_hi"] > 0
