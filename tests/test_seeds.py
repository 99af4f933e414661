"""Decoding seeds: which jobs repeat over `seeds:`, and how the stages carry a seed from generations to the
score files (the tables then average each item over seeds; see test_analysis)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mocoflow.config import ConfigError, job_seeds
from mocoflow.data.schema import Item
from mocoflow.io import read_jsonl, write_json, write_jsonl
from mocoflow.methods import METHODS
from mocoflow.scoring.judges import apply_judgments
from mocoflow.stages.collaborate import collaborate, generations_for_seed, load_generations
from mocoflow.stages.score import score_predictions

GREEDY = {"temperature": 0.0, "seed": 7}
SAMPLING = {"temperature": 0.7, "seed": 7}


def test_job_seeds() -> None:
    assert job_seeds(GREEDY, [0, 1, 2]) == [7]  # greedy, deterministic: once, with decoding.seed
    assert job_seeds(GREEDY, [0, 1, 2], stochastic=True) == [0, 1, 2]
    assert job_seeds(SAMPLING, [0, 1, 2]) == [0, 1, 2]
    assert job_seeds(SAMPLING, None) == [7]
    with pytest.raises(ConfigError, match="listed twice"):
        job_seeds(SAMPLING, [1, 1])


def test_stochastic_flags() -> None:
    assert METHODS.get("random_router").stochastic and METHODS.get("slm_mux").stochastic
    assert not METHODS.get("majority_vote").stochastic and not METHODS.get("oracle_router").stochastic


def _items(n: int = 3) -> list[Item]:
    return [Item(id=f"q{i}", task="t", split="test", task_type="exact_match", question=f"{i}+0?", gold=str(i))
            for i in range(n)]


def _write_items(path: Path, items: list[Item]) -> Path:
    write_jsonl(path, [i.to_dict() for i in items])
    return path


def test_generations_by_seed(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", [{"id": "q0", "output": f"s{s}", "seed": s} for s in (0, 1)])
    write_jsonl(tmp_path / "b.jsonl", [{"id": "q0", "output": "greedy"}])  # no seed field: seed 0
    both = load_generations({"a/test": str(tmp_path / "a.jsonl")})
    assert generations_for_seed(both, 1)["a"]["test"]["q0"]["output"] == "s1"
    with pytest.raises(ValueError, match=r"seeds \[0, 1\], not the run's seed 5"):
        generations_for_seed(both, 5)
    greedy = load_generations({"b/test": str(tmp_path / "b.jsonl")})
    assert generations_for_seed(greedy, 5)["b"]["test"]["q0"]["output"] == "greedy"  # one seed serves all


def test_score_file_has_a_row_per_item_and_seed(tmp_path: Path) -> None:
    items = _write_items(tmp_path / "test.jsonl", _items(2))
    preds = [{"id": "q0", "output": "0", "seed": 0}, {"id": "q1", "output": "9", "seed": 0},
             {"id": "q0", "output": "5", "seed": 1}, {"id": "q1", "output": "1", "seed": 1}]
    write_jsonl(tmp_path / "p.jsonl", preds)
    df = score_predictions(items, tmp_path / "p.jsonl", {"run": "r", "pool": "p", "model": ""})
    got = {(r.id, r.seed): r.correct for r in df.itertuples()}
    assert got == {("q0", 0): True, ("q1", 0): False, ("q0", 1): False, ("q1", 1): True}
    write_jsonl(tmp_path / "short.jsonl", preds[:3])
    with pytest.raises(ValueError, match=r"no prediction for 1 items \(seed 1\)"):
        score_predictions(items, tmp_path / "short.jsonl", {"run": "r"})


def test_judgments_join_on_item_and_seed() -> None:
    df = pd.DataFrame({"id": ["q0", "q0"], "seed": [0, 1], "status": ["ok", "ok"], "task_type": ["exact_match"] * 2})
    rows = [{"id": "q0", "seed": 0, "score": 0.1, "correct": False, "status": "ok", "kind": "verifier"},
            {"id": "q0", "seed": 1, "score": 0.9, "correct": True, "status": "ok", "kind": "verifier"}]
    out = apply_judgments(df, {"v": rows})
    assert out["judge_v_correct"].tolist() == [False, True]


def test_collaborate_repeats_a_stochastic_method_per_seed(tmp_path: Path) -> None:
    items = _items(40)
    test = _write_items(tmp_path / "test.jsonl", items)
    dev = _write_items(tmp_path / "dev.jsonl", [])
    cards, gens = [], {}
    for m in ("a", "b"):
        card = tmp_path / f"{m}.json"
        write_json(card, {"name": m, "path": str(tmp_path)})
        cards.append(card)
        rows = [{"id": i.id, "output": m, "prompt_tokens": 2, "generated_tokens": 1} for i in items]
        write_jsonl(tmp_path / f"{m}.jsonl", rows)
        gens[f"{m}/test"] = str(tmp_path / f"{m}.jsonl")
    out = tmp_path / "run" / "test.jsonl"
    params = {"run": "rr", "method": "random_router", "pool": "ab", "task": "t", "cache_dir": str(tmp_path),
              "decoding": {"temperature": 0.0, "seed": 0}, "seeds": [3, 4]}
    collaborate(params, cards, {"dev": dev, "test": test}, gens, None, out, tmp_path / "usage.json")
    rows = read_jsonl(out)
    assert [r["seed"] for r in rows] == [3] * 40 + [4] * 40
    by_seed = {s: [r["answered_by"] for r in rows if r["seed"] == s] for s in (3, 4)}
    assert by_seed[3] != by_seed[4]  # 40 items routed independently per seed
    assert json.loads((tmp_path / "usage.json").read_text())["seeds"] == [3, 4]
