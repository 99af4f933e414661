"""Export and replay: the wide generations table (schema, nulls, metadata, ``datasets``), the replay backend and
source, and the smoke study exported and replayed through Snakemake to identical scores with no model loaded."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from test_e2e import snakemake

from mocoflow.engines.base import DecodingConfig, EngineCapabilityError
from mocoflow.engines.factory import make_engine
from mocoflow.engines.replay import ReplayEngine, ReplayMiss
from mocoflow.export_table import column, models_in, read_metadata, read_table, to_wide, write_table

REPO = Path(__file__).resolve().parents[1]


def _records() -> list[dict[str, Any]]:
    base = {"task": "t", "split": "test", "prompt_tokens": 4, "generated_tokens": 2, "sum_logprob": -1.0}
    return [
        {**base, "id": "1", "model": "a", "prompt": "P1", "output": "A1", "score": 1.0, "correct": True},
        {**base, "id": "2", "model": "a", "prompt": "P2", "output": "A2", "score": 0.0, "correct": False},
        {**base, "id": "1", "model": "b", "prompt": "P1", "output": "B1", "score": 0.0, "correct": False},
        {**base, "id": "1", "split": "dev", "model": "a", "prompt": "D1", "output": "AD1", "score": 1.0,
         "correct": True},
    ]


ITEMS = [{"task": "t", "split": "test", "id": "1", "task_type": "exact_match", "question": "q1", "gold": "5"},
         {"task": "t", "split": "test", "id": "2", "task_type": "multiple_choice", "question": "q2",
          "choices": {"A": "x", "B": "y"}, "gold": "B"}]


def test_wide_table_schema_nulls_metadata_and_datasets(tmp_path: Path):
    df = to_wide(_records(), ITEMS, parameters={"a": 10, "b": 20})
    assert list(df.columns[:9]) == ["task", "split", "id", "seed", "task_type", "question", "choices", "gold",
                                    "prompt"]
    assert models_in(df.columns) == ["a", "b"]
    assert len(df) == 3  # (t, dev, 1), (t, test, 1), (t, test, 2)
    row = df.set_index(["split", "id"]).loc[("test", "1")]
    assert (row["a|output"], row["b|output"], row["prompt"], row["gold"]) == ("A1", "B1", "P1", '"5"')
    assert row["a|flops"] == 2 * 10 * 6 and row["b|flops"] == 2 * 20 * 6 and row["a|mean_logprob"] == -0.5
    missing = df.set_index(["split", "id"]).loc[("test", "2")]
    assert pd.isna(missing["b|output"]) and pd.isna(missing["b|correct"])  # b has no answer there
    assert missing["choices"] == '{"A": "x", "B": "y"}'
    path = tmp_path / "gen.parquet"
    write_table(df, path, {"study": "s", "models": {"a": {"parameters": 10}}})
    meta = read_metadata(path)
    assert meta["schema"] == "mocoflow-generations/1" and meta["models"]["a"]["parameters"] == 10
    back = read_table(path)
    assert back.shape == df.shape and back["a|correct"].tolist() == df["a|correct"].tolist()
    from datasets import Dataset

    ds = Dataset.from_parquet(str(path))
    assert ds.num_rows == 3 and "b|output" in ds.column_names
    assert sorted(r["a|output"] for r in ds) == ["A1", "A2", "AD1"]


def test_wide_table_refuses_ambiguous_input():
    with pytest.raises(ValueError, match="contains '\\|'"):
        to_wide([{"task": "t", "split": "test", "id": "1", "model": "a|b", "output": "x"}])
    dup = _records()[:1] * 2
    with pytest.raises(ValueError, match="two generations"):
        to_wide(dup)
    clash = [dict(_records()[0]), {**_records()[2], "prompt": "other"}]
    with pytest.raises(ValueError, match="different prompts"):
        to_wide(clash)
    assert column("m", "output") == "m|output"


@pytest.fixture
def table(tmp_path: Path) -> Path:
    recs = _records() + [{"task": "t", "split": "test", "id": "3", "model": "a", "prompt": "P3", "output": "S0",
                          "seed": 0}, {"task": "t", "split": "test", "id": "3", "model": "a", "prompt": "P3",
                                       "output": "S1", "seed": 1}]
    path = tmp_path / "gen.parquet"
    write_table(to_wide(recs), path, {"models": {"a": {"parameters": 10}}})
    return path


def test_replay_engine_answers_recorded_prompts_only(table: Path):
    e = ReplayEngine("a", table, "a", fingerprint="f" * 64, parameters=10)
    gens = e.generate(["P2", "P1", "D1", "P1"], DecodingConfig(seed=7))
    assert [g.text for g in gens] == ["A2", "A1", "AD1", "A1"]
    assert (gens[0].prompt_tokens, gens[0].generated_tokens, gens[0].sum_logprob) == (4, 2, -1.0)
    assert e.usage.cached_tokens == 3 * 6 and e.usage.calls == 0 and e.usage.model_loads == 0
    assert [e.generate(["P3"], DecodingConfig(seed=s))[0].text for s in (0, 1)] == ["S0", "S1"]
    with pytest.raises(ReplayMiss, match="seeds \\[0, 1\\].*not seed 2"):
        e.generate(["P3"], DecodingConfig(seed=2))
    with pytest.raises(ReplayMiss, match="holds no answer to the prompt 'never asked'"):
        e.generate(["P1", "never asked"], DecodingConfig())
    b = ReplayEngine("b", table, "b", fingerprint="g" * 64)
    with pytest.raises(ReplayMiss):  # b never answered P2: a null is not an answer
        b.generate(["P2"], DecodingConfig())
    assert math.isnan(ReplayEngine("a", table, "a", fingerprint="f").generate(["P3"], DecodingConfig())[0].sum_logprob)
    with pytest.raises(ValueError, match="raw completions"):
        e.generate(["P1"], DecodingConfig(), chat=False)
    with pytest.raises(EngineCapabilityError, match="backend 'replay'"):
        e.score_continuations(["P1"], ["x"])
    with pytest.raises(ValueError, match="no 'prompt' and 'zz\\|output'"):
        ReplayEngine("zz", table, "zz", fingerprint="f")


def test_replay_source_card_and_engine(table: Path, tmp_path: Path):
    from mocoflow.models import file_sha256
    from mocoflow.stages.build_model import build_model

    spec = {"source": "replay", "backend": "replay", "table": str(table), "column": "a"}
    card = build_model("old-a", spec, tmp_path / "models" / "old-a" / "card.json")
    assert card["parameters"] == 10 and card["architecture"] is None and card["tokenizer"] is None
    other = build_model("old-b", {**spec, "column": "b"}, tmp_path / "models" / "old-b" / "card.json")
    assert other["fingerprint"] != card["fingerprint"]  # one table, two models: two cache identities
    engine = make_engine("old-a", {**spec, "path": card["path"]}, cache_dir=tmp_path / "cache")
    assert engine.fingerprint == card["fingerprint"] and engine.generate(["P1"], DecodingConfig())[0].text == "A1"
    assert engine.generate(["P1"], DecodingConfig())[0].cached
    with pytest.raises(ValueError, match="has no column group 'c'"):
        build_model("c", {**spec, "column": "c"}, tmp_path / "models" / "c" / "card.json")
    with pytest.raises(ValueError, match="expects"):
        build_model("a", {**spec, "sha256": "0" * 64}, tmp_path / "models" / "a2" / "card.json")
    assert build_model("a", {**spec, "sha256": file_sha256(table)}, tmp_path / "models" / "a3" / "card.json")


def test_a_scripted_pool_replays_without_any_model(tmp_path: Path):
    """How a test builds a pool whose answers are chosen per item (no model anywhere): items from a builtin
    generator, prompts as the study builds them, answers scripted, written with to_wide/write_table."""
    from mocoflow.data.builtin import generate_splits
    from mocoflow.data.prompts import build_prompt
    from mocoflow.stages.build_model import build_model

    items = generate_splits("arithmetic", seed=0, n_test=4)["test"]
    prompts = {i.id: build_prompt(i) for i in items}
    script = {"right": lambda i: str(i.gold), "wrong": lambda i: "no idea"}
    records = [{"task": i.task, "split": "test", "id": i.id, "model": m, "prompt": prompts[i.id], "output": f(i)}
               for i in items for m, f in script.items()]
    path = tmp_path / "scripted.parquet"
    write_table(to_wide(records), path, {})
    card = build_model("right", {"source": "replay", "backend": "replay", "table": str(path)},
                       tmp_path / "right" / "card.json")
    engine = make_engine("right", {"source": "replay", "backend": "replay", "path": card["path"]}, cache_dir=None)
    assert [g.text for g in engine.generate(list(prompts.values()), DecodingConfig())] == [str(i.gold) for i in items]


# --------------------------------------------------------------------------- the smoke study, exported and replayed

SMOKE_MODELS = ("tiny-a", "tiny-b", "tiny-c")
SMOKE_RUNS = ("single", "majority_vote", "oracle_router", "cascade")  # a vote, a router, a cascade
SMOKE_TASK = "arith"


def _snakemake(workdir: Path, config: dict[str, Any], *targets: str) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    snakemake(workdir, configfile, "--quiet", "all", "--", *targets)


def _smoke_subset(models_dir: Path) -> dict[str, Any]:
    """configs/smoke.yaml's tiny trio on one task; its models built here (the same builder and settings as its
    ``source: tiny`` entries) and listed as ``source: local``, so no job spends its time importing torch to
    build them."""
    from mocoflow.testing import build_tiny_model

    cfg = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    models = {}
    for m in SMOKE_MODELS:
        spec = cfg["models"][m]
        assert spec["source"] == "tiny" and set(spec) <= {"source", "arch", "seed"}, spec
        path = build_tiny_model(models_dir / m, arch=spec.get("arch", "gpt2"), seed=int(spec.get("seed", 0)))
        models[m] = {"source": "local", "path": str(path)}
    cfg["models"] = models
    cfg["pools"] = {"trio": list(SMOKE_MODELS)}
    cfg["tasks"] = {SMOKE_TASK: cfg["tasks"][SMOKE_TASK]}
    cfg.pop("scaling", None)
    cfg["methods"] = {r: {**cfg["methods"][r], "pools": ["trio"]} for r in SMOKE_RUNS}
    return cfg


SCORE_COLUMNS = ["id", "seed", "correct", "score", "status", "parsed", "answered_by", "prompt_tokens",
                 "generated_tokens", "new_generated_tokens"]


def test_smoke_study_exported_and_replayed_gives_identical_scores(tmp_path: Path):
    """The smoke study's tiny pool on one task (about 20 jobs per study: each job is a process, so this stays
    small)."""
    source, replay = tmp_path / "source", tmp_path / "replay"
    cfg = _smoke_subset(tmp_path / "models")
    targets = ["results/export/generations.parquet",
               *(f"results/scores/runs/{r}/trio/{SMOKE_TASK}.parquet" for r in SMOKE_RUNS)]
    _snakemake(source, cfg, *targets)
    table = source / "results" / "export" / "generations.parquet"
    exported = read_table(table)
    assert models_in(exported.columns) == sorted(SMOKE_MODELS)
    assert set(exported["split"]) == {"dev", "test"} and set(exported["task"]) == {SMOKE_TASK}
    assert len(exported) == cfg["tasks"][SMOKE_TASK]["n_dev"] + cfg["tasks"][SMOKE_TASK]["n_test"]
    assert exported[[column(m, "output") for m in SMOKE_MODELS]].notna().all().all()

    cfg_replay = {**cfg, "models": {m: {"source": "replay", "backend": "replay", "table": str(table)}
                                    for m in SMOKE_MODELS}}
    _snakemake(replay, cfg_replay, *targets)
    # no model was loaded anywhere in the replayed study
    for usage in (replay / "results").rglob("*usage.json"):
        assert '"model_loads": 0' in usage.read_text(), usage
    compared = 0
    for scores in (source / "results" / "scores").rglob("*.parquet"):
        a = pd.read_parquet(scores)[SCORE_COLUMNS]
        b = pd.read_parquet(replay / scores.relative_to(source))[SCORE_COLUMNS]
        pd.testing.assert_frame_equal(a, b, obj=str(scores.relative_to(source)))
        compared += 1
    assert compared == len(SMOKE_MODELS) + len(SMOKE_RUNS)
    # and the replayed study exports the same generations and scores again
    again = read_table(replay / "results" / "export" / "generations.parquet")
    keep = [c for c in exported.columns if not c.endswith("|flops")]
    pd.testing.assert_frame_equal(exported[keep], again[keep])
