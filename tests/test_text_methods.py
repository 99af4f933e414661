"""Text-level methods on constructed cases with scripted engines (deterministic replies from the prompt)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from mocoflow.data.prompts import build_prompt
from mocoflow.data.schema import Item
from mocoflow.engines.base import DecodingConfig
from mocoflow.methods import METHODS
from mocoflow.methods.base import EngineProvider, MethodError, RunContext
from mocoflow.methods.text.common import vote_index
from mocoflow.methods.text.feedback import choose_reviewers
from mocoflow.methods.text.heterogeneous_swarms import decode
from mocoflow.methods.text.llm_blender import rank_candidates
from mocoflow.methods.text.slm_mux import self_consistency
from mocoflow.methods.text.structured_interaction import readers_for
from mocoflow.models import ModelRef
from mocoflow.testing import ScriptedEngine


def mc(i: int, split: str, gold: str = "A") -> Item:
    return Item(id=f"{split}{i}", task="t", split=split, task_type="multiple_choice", question=f"Question {i}?",
                choices={"A": "alpha", "B": "beta", "C": "gamma"}, gold=gold)


def always(letter: str):
    return lambda prompt: f"Answer: {letter}"


def persuadable(prompt: str) -> str:
    """Says B unless something shown to it (peers, feedback, board, knowledge) says the answer is A."""
    return "Answer: A" if re.search(r"(Answer: A|answer is A)", prompt) else "Answer: B"


def copy_first_peer(prompt: str) -> str:
    m = re.search(r"Agent 1: (Answer: [A-C])", prompt)
    return m.group(1) if m else "Answer: C"


class Pool:
    """Scripted models with round-0 shared generations (their reply to the plain prompt)."""

    def __init__(self, models: dict, n_dev: int = 2, n_test: int = 2, round0: dict | None = None) -> None:
        self.models = models
        self.loads: list[str] = []
        self.engines: dict[str, ScriptedEngine] = {}
        self.items = {"dev": [mc(i, "dev") for i in range(n_dev)], "test": [mc(i, "test") for i in range(n_test)]}
        round0 = round0 or {}
        self.gens = {}
        for name, spec in models.items():
            respond = spec[0] if isinstance(spec, tuple) else spec
            first = round0.get(name, respond)
            self.gens[name] = {s: {it.id: {"output": first(build_prompt(it)), "prompt_tokens": 10,
                                           "generated_tokens": 2} for it in its} for s, its in self.items.items()}

    def factory(self, ref: ModelRef) -> ScriptedEngine:
        self.loads.append(ref.name)
        spec = self.models[ref.name]
        respond, judge = spec if isinstance(spec, tuple) else (spec, None)
        self.engines[ref.name] = ScriptedEngine(ref.name, respond, judge)
        return self.engines[ref.name]

    def ctx(self, order: list[str] | None = None) -> RunContext:
        refs = [ModelRef(n, "/none", {"tokenizer": "t", "architecture": "a"}, {}) for n in order or self.models]
        return RunContext(run="r", pool_name="p", pool=refs, task="t", items=self.items, generations=self.gens,
                          decoding=DecodingConfig(max_new_tokens=8), engines=EngineProvider(self.factory),
                          workdir=Path("."))


def run(method: str, pool: Pool, params: dict | None = None, order: list[str] | None = None) -> list[dict]:
    preds = METHODS.get(method)(params or {}).run(pool.ctx(order))
    assert len(pool.loads) == len(set(pool.loads)), f"a model was loaded twice: {pool.loads}"
    plain = {build_prompt(i) for i in pool.items["test"]}
    for engine in pool.engines.values():  # round 0 (greedy, plain prompt) is reused, never regenerated
        assert not plain & {p for p, d in engine.requests if not d.do_sample}
    return preds


def outputs(preds):
    return [p["output"] for p in preds]


# -- debate ------------------------------------------------------------------------------------------------

def test_debate_agent_given_a_peers_correct_answer_changes_its_own():
    models = {"right": always("A"), "follower": persuadable, "wrong": always("B")}
    assert outputs(run("debate", Pool(models), {"rounds": 0, "final": "vote"})) == ["Answer: B"] * 2
    pool = Pool(models)
    preds = run("debate", pool, {"rounds": 1, "final": "vote"})
    assert outputs(preds) == ["Answer: A"] * 2  # follower switched: 2 of 3 say A
    assert any("Agent 1: Answer: A" in p for p in pool.engines["follower"].prompts_seen)
    assert all(e.generate_calls == 1 for e in pool.engines.values())  # one batched call per model per round
    assert preds[0]["new_generated_tokens"] > 0 and preds[0]["generated_tokens"] > preds[0]["new_generated_tokens"]


def test_debate_records_whose_answer_won_the_vote():
    models = {"right": always("A"), "follower": persuadable, "wrong": always("B")}
    pool = Pool(models)
    ctx = pool.ctx()
    METHODS.get("debate")({"rounds": 1, "final": "vote"}).run(ctx)
    # right and follower both say A after one round; the tie between them goes to right (dev accuracy)
    assert ctx.decisions["reliance"] == {"right": 1.0, "follower": 0.0, "wrong": 0.0}
    summary = Pool(models).ctx()
    METHODS.get("debate")({"rounds": 1}).run(summary)  # a summariser reads everyone: no reliance recorded
    assert "reliance" not in summary.decisions and summary.decisions["final_writer"] == ["right"]


def test_debate_summariser_is_best_on_dev():
    pool = Pool({"wrong": always("B"), "right": always("A")})
    preds = run("debate", pool, {"rounds": 1})
    assert {p["answered_by"] for p in preds} == {"right"}
    assert pool.engines["right"].generate_calls == 2  # its round, then the summary


# -- feedback -----------------------------------------------------------------------------------------------

def reviewer(prompt: str) -> str:
    return "Correct." if "proposed answer: Answer: A" in prompt else "Incorrect; the answer is A."


def test_feedback_makes_author_revise():
    models = {"critic": lambda p: reviewer(p) if "brief feedback" in p else "Answer: A", "author": persuadable}
    pool = Pool(models, round0={"author": always("B")})
    preds = run("feedback", pool, {"final": "best_on_dev"}, order=["author", "critic"])
    assert {p["answered_by"] for p in preds} == {"critic"}  # the author is wrong on dev
    assert any("Feedback 1: Incorrect; the answer is A." in p for p in pool.engines["author"].prompts_seen)
    preds = run("feedback", Pool(models, round0={"author": always("B")}), {"final": "vote"})
    assert outputs(preds) == ["Answer: A"] * 2


def test_feedback_reviewers_are_seeded_peers():
    picks = choose_reviewers(5, 2, 2, seed=0, item_id="x", rnd=0)
    assert picks == choose_reviewers(5, 2, 2, seed=0, item_id="x", rnd=0)
    assert 2 not in picks and len(picks) == 2
    assert len({tuple(choose_reviewers(5, 2, 2, seed=s, item_id="x", rnd=0)) for s in range(20)}) > 1


# -- knowledge card -----------------------------------------------------------------------------------------

def test_knowledge_card_answerer_reads_peer_knowledge():
    def knower(p):
        return "Known fact: the answer is A." if "background knowledge" in p else "Answer: A"

    def reader(p):
        return "Answer: B" if "background knowledge" in p else persuadable(p)

    gens_right_on_dev = {"reader": always("A"), "knower": always("B")}  # reader is best on dev
    pool = Pool({"knower": knower, "reader": reader}, round0=gens_right_on_dev)
    preds = run("knowledge_card", pool)
    assert outputs(preds) == ["Answer: A"] * 2 and preds[0]["answered_by"] == "reader"
    assert pool.engines["knower"].generate_calls == 1 and pool.engines["reader"].generate_calls == 2


# -- LLM-Blender -----------------------------------------------------------------------------------------------

def quality(text: str) -> float:
    return float(text.count("good"))


def biased_judge(prompt: str, cont: str) -> float:
    """Prefers the better response, plus a strong bias for whatever is shown first."""
    m = re.search(r"Response A: (.*)\n\nResponse B: (.*)\n\nReply", prompt, re.S)
    first, second = m.group(1), m.group(2)
    return (quality(first) + 5.0) if cont == "Answer: A" else quality(second)


def test_llm_blender_ranking_ignores_candidate_order_with_consistent_judge():
    engine = ScriptedEngine("j", always("A"), biased_judge)
    items = [mc(0, "test")]
    cands = ["good good good", "good", "bad", "good good"]
    ranked = [cands[k] for k in rank_candidates(engine, items, [cands], 400)[0]]
    assert ranked == ["good good good", "good good", "good", "bad"]
    for perm in (cands[::-1], [cands[2], cands[0], cands[3], cands[1]]):
        assert [perm[k] for k in rank_candidates(engine, items, [perm], 400)[0]] == ranked
    # a judge with nothing but position bias gives all-ties: order-independent too
    flat = ScriptedEngine("f", always("A"), lambda p, c: 1.0 if c == "Answer: A" else 0.0)
    a = [cands[k] for k in rank_candidates(flat, items, [cands], 400)[0]]
    assert a == [cands[::-1][k] for k in rank_candidates(flat, items, [cands[::-1]], 400)[0]]


def test_llm_blender_picks_and_fuses_top_candidates():
    def judge(p, c):
        m = re.search(r"Response A: (.*)\n\nResponse B: (.*)\n\nReply", p, re.S)
        return float("Answer: A" in (m.group(1) if c == "Answer: A" else m.group(2)))

    models = {"wrong": (always("B"), judge), "right": (always("A"), judge), "w2": (always("C"), judge)}
    preds = run("llm_blender", Pool(models), {"fuse": False})
    assert outputs(preds) == ["Answer: A"] * 2 and preds[0]["ranking"][0] == "right"
    pool = Pool(models)
    preds = run("llm_blender", pool, {"top_k": 2})
    fuse_prompts = [p for p in pool.engines["right"].prompts_seen if "Fuse" in p]
    assert len(fuse_prompts) == 2 and "Candidate 1: Answer: A" in fuse_prompts[0]
    assert "Candidate 3" not in fuse_prompts[0]


# -- structured interaction ------------------------------------------------------------------------------------

def test_topologies():
    assert readers_for("chain", 3) == [[], [0], [1]]
    assert readers_for("circle", 3) == [[2], [0], [1]]
    assert readers_for("star", 3) == [[1, 2], [0], [0]]
    assert readers_for("tree", 4) == [[1, 2], [0, 3], [0], [1]]
    assert readers_for("complete", 3) == [[1, 2], [0, 2], [0, 1]]
    assert readers_for([[0, 1, 1], [0, 0, 0], [1, 0, 0]], 3) == [[1, 2], [], [0]]
    with pytest.raises(MethodError, match="unknown topology"):
        readers_for("ring", 3)


def test_chain_passes_an_answer_one_hop_per_round():
    models = {"right": always("A"), "c1": copy_first_peer, "c2": copy_first_peer}
    one = run("structured_interaction", Pool(models), {"topology": "chain", "num_rounds": 1, "final": "last"})
    two = run("structured_interaction", Pool(models), {"topology": "chain", "num_rounds": 2, "final": "last"})
    assert outputs(one) == ["Answer: C"] * 2 and outputs(two) == ["Answer: A"] * 2


# -- BBMAS ------------------------------------------------------------------------------------------------------

def test_bbmas_distinct_models_post_and_consensus_stops():
    pool = Pool({"right": always("A"), "follower": persuadable})
    preds = run("bbmas", pool, {"max_rounds": 3})
    assert outputs(preds) == ["Answer: A"] * 2 and all(p["rounds"] == 1 for p in preds)
    right_prompts, follower_prompts = pool.engines["right"].prompts_seen, pool.engines["follower"].prompts_seen
    assert right_prompts and follower_prompts  # both models acted
    assert all("You are a solver" in p for p in right_prompts)
    assert all("You are a critic" in p for p in follower_prompts)
    assert "[critic 2 (follower)] Answer: B" in follower_prompts[0]
    # consensus from the start: nobody generates
    agree = Pool({"a": always("A"), "b": always("A")})
    preds = run("bbmas", agree)
    assert all(p["rounds"] == 0 for p in preds) and not agree.engines


# -- SLM-Mux ------------------------------------------------------------------------------------------------------

def noisy(prompt: str) -> str:
    return "Answer: " + "ABC"[hashlib.sha256(prompt.encode()).digest()[0] % 3]


def test_slm_mux_picks_the_most_self_consistent_model():
    assert self_consistency(["A", "B", "A", None]) == ("A", 0.5)
    models = {"noisy": noisy, "steady": always("A")}
    for order in (["noisy", "steady"], ["steady", "noisy"]):
        pool = Pool(models, n_test=3, round0={"noisy": always("B")})
        preds = run("slm_mux", pool, {"samples": 4}, order=order)
        assert {p["answered_by"] for p in preds} == {"steady"} and outputs(preds) == ["Answer: A"] * 3
        assert all(p["confidence"] == 1.0 for p in preds)
        assert pool.engines["noisy"].generate_calls == 3  # one call per extra sample index


# -- majority vote tie-break ------------------------------------------------------------------------------------

def test_majority_vote_dev_tie_break():
    pool = Pool({"first": always("B"), "better": always("A")})  # better is right on dev
    assert outputs(run("majority_vote", pool)) == ["Answer: B"] * 2
    preds = run("majority_vote", pool, {"tie_break": "dev_accuracy"})
    assert outputs(preds) == ["Answer: A"] * 2 and preds[0]["answered_by"] == "better"
    assert vote_index(["A", "B", "B", "A"], [0, 1, 0, 2]) == 3
    with pytest.raises(MethodError, match="tie_break"):
        run("majority_vote", pool, {"tie_break": "coin"})


# -- heterogeneous swarms ---------------------------------------------------------------------------------------

def test_swarm_graph_decoding_is_a_dag_ending_at_the_output_node():
    import numpy as np

    rng = np.random.default_rng(0)
    for _ in range(50):
        order, edges = decode(rng.uniform(-1, 1, 3 + 9), 3)
        pos = {k: i for i, k in enumerate(order)}
        assert all(pos[j] < pos[k] for j, k in edges)


def test_swarm_graphs_always_contain_every_pool_model():
    import numpy as np

    rng = np.random.default_rng(1)
    for n in (2, 3, 4):
        for _ in range(30):
            order, edges = decode(rng.uniform(-1, 1, n + n * n), n)
            assert sorted(order) == list(range(n))
            # every node but the last passes its answer on, so every model reaches the output node
            assert {j for j, _ in edges} == set(order[:-1])
        # all edge weights negative: the old decoder kept the last node alone
        order, edges = decode(np.concatenate([np.arange(n, dtype=float), -np.ones(n * n)]), n)
        assert len(order) == n and len(edges) == n - 1


def test_swarm_succeeds_where_only_a_graph_of_two_models_can():
    """Each model alone is wrong; revising after reading any peer makes it right. Every decoded graph holds
    both models, so every seed's graph (even one random particle, no search) is right on test."""

    def needs_a_peer(wrong: str):
        return lambda prompt: "Answer: A" if "Answers from other agents" in prompt else f"Answer: {wrong}"

    models = {"x": needs_a_peer("B"), "y": needs_a_peer("C")}
    for seed in range(6):
        pool = Pool(models, n_dev=1, n_test=2)
        ctx = pool.ctx()
        ctx.seed = seed
        preds = METHODS.get("heterogeneous_swarms")({"particles": 1, "iterations": 0}).run(ctx)
        assert outputs(preds) == ["Answer: A"] * 2, f"seed {seed}: {preds[0]['graph']}"
        assert sorted(ctx.decisions["graph"]["order"]) == ["x", "y"]


def test_swarm_finds_a_graph_that_is_right_on_dev_and_uses_it_on_test():
    models = {"wrong": always("B"), "copier": copy_first_peer, "right": always("A")}
    pool = Pool(models, n_dev=3, n_test=3, round0={"copier": always("C")})
    preds = run("heterogeneous_swarms", pool, {"particles": 4, "iterations": 3})
    assert preds[0]["dev_accuracy"] == 1.0
    assert outputs(preds) == ["Answer: A"] * 3
    again = run("heterogeneous_swarms", Pool(models, n_dev=3, n_test=3, round0={"copier": always("C")}),
                {"particles": 4, "iterations": 3})
    assert again[0]["graph"] == preds[0]["graph"]  # seeded


# -- training methods' data steps (no models) ----------------------------------------------------------------

def test_multiagent_finetuning_sets_follow_the_consensus():
    from mocoflow.methods.text.multiagent_finetuning import finetuning_sets

    items = [mc(0, "dev"), mc(1, "dev")]
    agents = [ModelRef(n, "/none", {}, {}) for n in ("x", "y")]
    history = [[["Answer: A", "Answer: B"], ["Answer: B", "Answer: B"]],  # round 0: agent x, agent y
               [["Answer: A", "Answer: B"], ["Answer: A", "Answer: B"]]]  # round 1: y corrected itself on item 0
    gen, crit = finetuning_sets(items, agents, history, ["A", "B"], 400)
    assert gen["x"] == [(build_prompt(items[0]), "Answer: A"), (build_prompt(items[1]), "Answer: B")]
    assert [a for _, a in gen["y"]] == ["Answer: B"]  # its round-0 answer agreed only on item 1
    assert len(crit["y"]) == 2 and "Answers from other agents" in crit["y"][0][0]
    assert crit["y"][0][1] == "Answer: A"  # the corrected answer is a critic example


def test_agglm_rejection_keeps_correct_samples_and_caps_easy_items():
    from mocoflow.methods.base import TaskScorer
    from mocoflow.methods.text.agglm import rejection_set

    items = [mc(0, "dev"), mc(1, "dev"), mc(2, "dev")]
    cands = [["Answer: A", "Answer: A", "Answer: B"],  # easy: majority right
             ["Answer: B", "Answer: B", "Answer: A"],  # hard: majority wrong
             ["Answer: B", "Answer: C", "Answer: B"]]  # hard, no sample right
    samples = [["Answer: A", "Answer: A ", "Answer: B"], ["Answer: A", "Answer: B"], ["Answer: B"]]
    pairs, hard, easy = rejection_set(items, cands, ["p0", "p1", "p2"], samples, 0.5, seed=0, score=TaskScorer())
    assert (hard, easy) == (1, 1) and ("p1", "Answer: A") in pairs
    assert all(out.startswith("Answer: A") for _, out in pairs)
    _, hard, easy = rejection_set(items, cands, ["p0", "p1", "p2"], samples, 0.0, seed=0, score=TaskScorer())
    assert (hard, easy) == (1, 0)


def test_sparta_elo_and_matching():
    import random

    from mocoflow.methods.text.sparta import elo_update, pick_duel

    a, b = elo_update(1000, 1000, 1.0, 32)
    assert a == pytest.approx(1016) and b == pytest.approx(984)
    a2, _ = elo_update(1200, 1000, 1.0, 32)
    assert a2 - 1200 < 16  # beating a weaker model earns less
    rng = random.Random(0)
    for _ in range(20):
        x, y = pick_duel(rng, [1000, 1010, 1400])
        assert (x, y) in {(0, 1), (1, 0), (2, 1)}  # the opponent is the closest in rating
