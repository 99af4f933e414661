"""Weight-level methods: every merge equals its formula computed by hand on small tensors, DARE is seeded
and honours its density, and dev-driven merges (greedy soup, ExPO, model swarms, LoraHub) pick what the
dev fitness says. Dev-driven merges run against a fake engine whose "model" is one scalar parameter ``w``:
it answers "yes" to an item exactly when ``lo <= w <= hi`` (the interval is in the item's question)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from mocoflow.data.schema import Item
from mocoflow.engines.base import DecodingConfig, Generation
from mocoflow.methods import METHODS
from mocoflow.methods.base import MergeContext, MethodError
from mocoflow.methods.weight.model_swarms import ModelSwarmsParams, swarm_search
from mocoflow.models import ModelRef
from mocoflow.training.merging import (
    dare,
    dare_drop,
    disjoint_merge,
    elect_sign,
    expo,
    tensor_seed,
    ties,
    trim_to_density,
)

torch.set_num_threads(1)


def fake_model(d: Path, tensors: dict[str, torch.Tensor]) -> Path:
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (d / "tokenizer.json").write_text("{}")
    save_file(tensors, str(d / "model.safetensors"))
    return d


def ref(name: str, path: Path, arch: str = "gpt2-x") -> ModelRef:
    return ModelRef(name=name, path=str(path), card={"architecture": arch, "tokenizer": "t"}, spec={})


def merged(method: Any, pool: list[ModelRef], ctx: MergeContext | None = None) -> dict[str, torch.Tensor]:
    """The merged tensors ``method`` materialises from the plan it makes for ``pool``."""
    return method.merged_state(pool, method.plan(pool, ctx))


# ---- formulas on small tensors -------------------------------------------------------------------------

def test_trim_keeps_largest_magnitudes():
    d = torch.tensor([3.0, -1.0, 2.0, 0.5])
    assert torch.equal(trim_to_density(d, 0.5), torch.tensor([3.0, 0.0, 2.0, 0.0]))
    d2 = torch.tensor([-2.0, -4.0, 1.0, 1.5])
    assert torch.equal(trim_to_density(d2, 0.5), torch.tensor([-2.0, -4.0, 0, 0]))
    assert torch.equal(trim_to_density(d, 1.0), d)


def test_elect_sign_and_disjoint_mean_by_hand():
    d1, d2 = torch.tensor([2.0, -1.0, 0.0]), torch.tensor([4.0, 3.0, -5.0])
    # sums (6, 2, -5): signs (+, +, -); entry 1: only d2 agrees
    assert torch.equal(elect_sign([d1, d2]), torch.tensor([1.0, 1.0, -1.0]))
    assert torch.allclose(disjoint_merge([d1, d2], elect_sign([d1, d2])), torch.tensor([3.0, 3.0, -5.0]))
    # weights (1, 3): sums (14, 8, -15); entry 0 weighted mean (1*2 + 3*4) / 4 = 3.5
    w = [1.0, 3.0]
    weighted = disjoint_merge([d1, d2], elect_sign([d1, d2], w), w)
    assert torch.allclose(weighted, torch.tensor([3.5, 3.0, -5.0]))
    # a sign that nobody agrees with gives 0
    assert torch.equal(disjoint_merge([d1], torch.tensor([-1.0, 1.0, 1.0])), torch.zeros(3))


def test_ties_trim_elect_merge_by_hand():
    base = torch.ones(4)
    t1 = base + torch.tensor([3.0, -1.0, 2.0, 0.5])  # trimmed (density .5): (3, 0, 2, 0)
    t2 = base + torch.tensor([-2.0, -4.0, 1.0, 1.5])  # trimmed: (-2, -4, 0, 0)
    # elected signs of (1, -4, 2, 0): (+, -, +, 0); disjoint means (3, -4, 2, 0); scale .5
    out = ties(base, [t1, t2], None, density=0.5, scale=0.5)
    assert torch.allclose(out, torch.tensor([2.5, -1.0, 2.0, 1.0]))


def test_dare_drop_density_and_rescale():
    delta = torch.arange(1.0, 9.0)  # 8 non-zero entries
    out = dare_drop(delta, 0.25, seed=7)
    kept = out != 0
    assert int(kept.sum()) == 2  # exactly round(0.25 * 8)
    assert torch.allclose(out[kept], delta[kept] / 0.25)  # rescaled by 1/density
    assert torch.equal(out, dare_drop(delta, 0.25, seed=7))  # seeded
    big = torch.ones(200)
    assert not torch.equal(dare_drop(big, 0.5, seed=1), dare_drop(big, 0.5, seed=2))
    assert int((dare_drop(big, 0.3, seed=3) != 0).sum()) == 60


def test_dare_and_dare_ties_formulas_by_hand():
    base = torch.zeros(6)
    t1, t2 = torch.tensor([1.0, 2, 3, 4, 5, 6]), torch.tensor([-1.0, 2, -3, 4, -5, 6])
    d1 = dare_drop(t1, 0.5, tensor_seed(3, "w", 0))
    d2 = dare_drop(t2, 0.5, tensor_seed(3, "w", 1))
    out = dare(base, [t1, t2], [0.5, 1.0], density=0.5, scale=2.0, seed=3, name="w")
    assert torch.allclose(out, 2.0 * (0.5 * d1 + d2))
    out_ties = dare(base, [t1, t2], None, density=0.5, seed=3, name="w", ties_merge=True)
    assert torch.allclose(out_ties, disjoint_merge([d1, d2], elect_sign([d1, d2])))
    # per-tensor seeds: another tensor name gets another mask
    assert not torch.equal(dare_drop(torch.ones(100), 0.5, tensor_seed(3, "w", 0)),
                           dare_drop(torch.ones(100), 0.5, tensor_seed(3, "v", 0)))


def test_expo_by_hand():
    weak, strong = torch.tensor([1.0, 2.0]), torch.tensor([2.0, 0.0])
    assert torch.allclose(expo(weak, strong, 0.5), torch.tensor([2.5, -1.0]))


# ---- methods on checkpoints ------------------------------------------------------------------------------

def test_ties_method_on_checkpoints(tmp_path: Path):
    base = fake_model(tmp_path / "base", {"w": torch.ones(4)})
    a = fake_model(tmp_path / "a", {"w": torch.tensor([4.0, 0.0, 3.0, 1.5])})
    b = fake_model(tmp_path / "b", {"w": torch.tensor([-1.0, -3.0, 2.0, 2.5])})
    method = METHODS.get("ties")({"base": "base", "density": 0.5, "scale": 0.5})
    out = merged(method, [ref("a", a), ref("base", base), ref("b", b)])
    assert torch.allclose(out["w"], torch.tensor([2.5, -1.0, 2.0, 1.0]))


def test_dare_method_seeded_and_density_honoured(tmp_path: Path):
    base = fake_model(tmp_path / "base", {"w": torch.zeros(1000), "v": torch.zeros(10, 10)})
    a = fake_model(tmp_path / "a", {"w": torch.ones(1000), "v": torch.ones(10, 10)})
    pool = [ref("base", base), ref("a", a)]
    m1 = merged(METHODS.get("dare")({"density": 0.3, "seed": 5}), pool)
    m2 = merged(METHODS.get("dare")({"density": 0.3, "seed": 5}), pool)
    m3 = merged(METHODS.get("dare")({"density": 0.3, "seed": 6}), pool)
    assert torch.equal(m1["w"], m2["w"]) and torch.equal(m1["v"], m2["v"])
    assert not torch.equal(m1["w"], m3["w"])
    assert int((m1["w"] != 0).sum()) == 300 and int((m1["v"] != 0).sum()) == 30
    assert torch.allclose(m1["w"][m1["w"] != 0], torch.full((300,), 1 / 0.3))
    dt = merged(METHODS.get("dare_ties")({"density": 0.3, "seed": 5}), pool)
    assert torch.equal(dt["w"], m1["w"])  # one model: the disjoint mean is the dropped delta itself


def test_weight_methods_refuse_mixed_architectures_up_front(tmp_path: Path):
    pool = [ref("a", tmp_path / "nope-a", "gpt2-1"), ref("b", tmp_path / "nope-b", "llama-2")]
    for name in ("ties", "dare", "dare_ties", "expo", "greedy_soup", "model_swarms"):
        with pytest.raises(MethodError, match=f"{name} needs one architecture; pool has 2 different"):
            METHODS.get(name)({}).plan(pool)


def test_density_out_of_range_is_rejected():
    with pytest.raises(ValueError, match="density"):
        METHODS.get("ties")({"density": 0.0})
    with pytest.raises(ValueError, match="density"):
        METHODS.get("dare")({"density": 1.5})


# ---- dev-driven merges against a one-parameter fake model -------------------------------------------------

class ScalarModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))


class FakeEngine:
    def __init__(self) -> None:
        self.model = ScalarModel()

    def load_state_dict(self, state: dict, *, strict: bool = False) -> tuple[list[str], list[str]]:
        missing, unexpected = self.model.load_state_dict(state, strict=strict)
        return list(missing), list(unexpected)

    def generate(self, prompts: list[str], decoding: DecodingConfig, **_kw) -> list[Generation]:
        w = float(self.model.w.detach())
        out = []
        for p in prompts:
            lo, hi = map(float, re.findall(r"[-\d.]+", p.split("\n")[0]))
            out.append(Generation("yes" if lo <= w <= hi else "no", 1, 1, 0.0))
        return out


def interval_items(*intervals: tuple[float, float]) -> list[Item]:
    return [Item(id=str(i), task="t", split="dev", task_type="exact_match", question=f"{lo} {hi}", gold="yes")
            for i, (lo, hi) in enumerate(intervals)]


def scalar_ctx(*intervals: tuple[float, float]) -> MergeContext:
    return MergeContext(dev_items=interval_items(*intervals), engine_factory=lambda _path: FakeEngine(),
                        score=lambda _item, out: out == "yes")


def scalar_pool(tmp_path: Path, **values: float) -> list[ModelRef]:
    return [ref(n, fake_model(tmp_path / n, {"w": torch.tensor([v])})) for n, v in values.items()]


def test_greedy_soup_keeps_ingredients_that_do_not_hurt_dev(tmp_path: Path):
    pool = scalar_pool(tmp_path, a=0.5, b=1.3, c=0.7)
    ctx = scalar_ctx((0.45, 0.75), (0.55, 0.8), (0.0, 0.3))
    # dev acc: a 1/3, b 0, c 2/3 -> order c, a, b. c+a = 0.6: 2/3 >= 2/3 kept; c+a+b = 0.833: 0 dropped
    method = METHODS.get("greedy_soup")({})
    plan = method.plan(pool, ctx)
    assert torch.allclose(method.merged_state(pool, plan)["w"], torch.tensor([0.6]))
    assert plan["ingredients"] == ["c", "a"] and ctx.decisions["dev_accuracy"] == pytest.approx(2 / 3)


def test_greedy_soup_without_dev_is_refused(tmp_path: Path):
    pool = scalar_pool(tmp_path, a=0.5, b=0.7)
    with pytest.raises(MethodError, match="greedy_soup: this merge evaluates candidates on dev"):
        METHODS.get("greedy_soup")({}).plan(pool)


def test_expo_picks_direction_and_alpha_on_dev(tmp_path: Path):
    pool = scalar_pool(tmp_path, strong=0.7, weak=0.5)
    ctx = scalar_ctx((0.45, 0.75), (0.55, 0.85))  # weak 1/2, strong 2/2
    out = merged(METHODS.get("expo")({"alpha": 0.5}), pool, ctx)
    assert torch.allclose(out["w"], torch.tensor([0.8]))  # 0.7 + 0.5 * (0.7 - 0.5)
    # alpha chosen on dev: 2.0 -> 1.1 (0/2), 0.2 -> 0.74 (2/2)
    out = merged(METHODS.get("expo")({"alpha_candidates": [2.0, 0.2]}), pool, ctx)
    assert torch.allclose(out["w"], torch.tensor([0.74]))
    # named direction needs no dev
    out = merged(METHODS.get("expo")({"weak": "strong", "strong": "weak", "alpha": 1.0}), pool)
    assert torch.allclose(out["w"], torch.tensor([0.3]))


def test_swarm_search_is_seeded_and_never_worse_than_the_experts():
    target = [0.3, 0.7]

    def fitness(c: list[float]) -> float:
        return -sum((x - t) ** 2 for x, t in zip(c, target, strict=True))

    p = ModelSwarmsParams(iterations=6)
    best, fit, history = swarm_search(2, fitness, p, seed=1)
    again = swarm_search(2, fitness, p, seed=1)
    assert (best, fit) == (again[0], again[1])
    assert fit >= max(fitness([1.0, 0.0]), fitness([0.0, 1.0]))
    assert fit == pytest.approx(fitness(best)) and history[-1]["best"] == fit
    assert swarm_search(2, fitness, p, seed=2)[0] != best


def test_model_swarms_merge_is_the_best_particle(tmp_path: Path):
    pool = scalar_pool(tmp_path, a=0.0, b=1.0)
    ctx = scalar_ctx((0.4, 0.6), (0.45, 0.9))  # both experts 0/2; the middle of the pool scores 2/2
    method = METHODS.get("model_swarms")({"iterations": 4, "seed": 0})
    plan = method.plan(pool, ctx)
    c = ctx.decisions["coefficients"]
    assert plan["coefficients"] == [c["a"], c["b"]]
    assert torch.allclose(method.merged_state(pool, plan)["w"], torch.tensor([c["a"] * 0.0 + c["b"] * 1.0]))
    assert plan["dev_accuracy"] >= 0.5 and plan["history"][0]["fitness"][:2] == [0.0, 0.0]


# ---- LoraHub on a tiny Llama with random LoRA adapters -----------------------------------------------------

def make_adapter(base_dir: Path, out: Path, seed: int, **lora: object) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), local_files_only=True, dtype=torch.float32)
    config = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False, **lora)
    get_peft_model(model, config).save_pretrained(str(out))
    return out


def test_lorahub_merges_the_weighted_adapters_by_hand(tmp_path: Path, tiny_llama_dir: Path):
    from peft.utils import load_peft_weights

    a1 = make_adapter(tiny_llama_dir, tmp_path / "ad1", 1)
    a2 = make_adapter(tiny_llama_dir, tmp_path / "ad2", 2)
    pool = [ModelRef(n, str(tiny_llama_dir), {"adapter": str(a), "base": str(tiny_llama_dir)}, {})
            for n, a in (("s1", a1), ("s2", a2))]
    w = [0.7, -0.4]
    out = merged(METHODS.get("lorahub")({"weights": w}), pool)
    key = "model.layers.0.self_attn.q_proj"
    s1, s2 = load_peft_weights(str(a1)), load_peft_weights(str(a2))
    pa, pb = f"base_model.model.{key}.lora_A.weight", f"base_model.model.{key}.lora_B.weight"
    la, lb = w[0] * s1[pa] + w[1] * s2[pa], w[0] * s1[pb] + w[1] * s2[pb]
    expected = load_file(str(tiny_llama_dir / "model.safetensors"))[f"{key}.weight"] + (4 / 2) * lb @ la
    assert torch.allclose(out[f"{key}.weight"], expected, atol=1e-5)

    # the gradient-free search on dev: seeded, and its weights land in the plan
    items = [Item(id=str(i), task="t", split="dev", task_type="exact_match", question=f"What is {i} + 1?",
                  gold=str(i + 1)) for i in range(3)]
    ctx = MergeContext(dev_items=items, seed=0)
    p1 = METHODS.get("lorahub")({"budget": 4}).plan(pool, ctx)
    p2 = METHODS.get("lorahub")({"budget": 4}).plan(pool, ctx)
    assert p1["weights"] == p2["weights"] and p1["models"] == ["s1", "s2"]


def test_lorahub_refuses_adapters_of_other_layers_before_any_work(tmp_path: Path, tiny_llama_dir: Path):
    a1 = make_adapter(tiny_llama_dir, tmp_path / "ad1", 1)
    a2 = make_adapter(tiny_llama_dir, tmp_path / "ad2", 2, layers_to_transform=[1])  # a top_layers specialist
    pool = [ModelRef(n, str(tiny_llama_dir), {"adapter": str(a), "base": str(tiny_llama_dir)}, {})
            for n, a in (("s1", a1), ("s2", a2))]
    with pytest.raises(MethodError, match=r"adapted layers .*'s2': \(2, 4, \['q_proj', 'v_proj'\], \[1\]\)"):
        METHODS.get("lorahub")({"weights": [0.5, 0.5]}).plan(pool)


def test_lorahub_without_adapters_names_the_model(tmp_path: Path):
    pool = scalar_pool(tmp_path, plain=0.0)
    with pytest.raises(MethodError, match="lorahub needs LoRA adapters; model 'plain' has none"):
        METHODS.get("lorahub")({"weights": [1.0]}).plan(pool)


def test_merge_stage_passes_dev_to_greedy_soup_with_real_engines(tmp_path: Path, tiny_model_dir: Path):
    from mocoflow.data.prompts import build_prompt
    from mocoflow.io import write_json, write_jsonl
    from mocoflow.models import make_card
    from mocoflow.stages.merge import merge
    from mocoflow.testing import build_tiny_model, train_tiny_model_briefly

    item = Item(id="0", task="t", split="dev", task_type="multiple_choice", question="Question 0?",
                choices={"A": "yes", "B": "no"}, gold="A")
    trained = train_tiny_model_briefly(build_tiny_model(tmp_path / "a-model", seed=3), ["Answer: A"],
                                       steps=30, prompt=build_prompt(item))
    cards = []
    for name, path in (("rand", tiny_model_dir), ("answer-a", trained)):
        card = tmp_path / name / "card.json"
        write_json(card, make_card(name, {"source": "tiny"}, path))
        cards.append(card)
    dev = tmp_path / "dev.jsonl"
    write_jsonl(dev, [item.to_dict()])
    params = {"run": "soup", "pool": "duo", "method": "greedy_soup", "method_params": {},
              "decoding": {"max_new_tokens": 5, "batch_size": 2}, "device": "cpu"}
    card = merge(cards, tmp_path / "merged" / "card.json", params, dev)
    # the trained model is right on dev, the random one is not: the soup starts from it (weights swapped)
    assert card["recipe"]["plan"]["history"][0] == {"model": "answer-a", "dev_accuracy": 1.0, "kept": True}
    assert card["merged_from"] == ["rand", "answer-a"]
    assert sorted(p.name for p in (tmp_path / "merged").iterdir()) == ["card.json"]  # a recipe, no weights


# ---- TIES: weighted sign election, whole-task-vector trim ------------------------------------------------------

def test_weighted_sign_election_follows_the_weights_not_the_head_count():
    d1, d2 = torch.tensor([2.0, 1.0]), torch.tensor([-1.0, 3.0])
    # unweighted sums (1, 4): signs (+, +); weights (1, 3) give (-1, 10): the first sign flips to d2's
    assert torch.equal(elect_sign([d1, d2]), torch.tensor([1.0, 1.0]))
    w = [1.0, 3.0]
    assert torch.equal(elect_sign([d1, d2], w), torch.tensor([-1.0, 1.0]))
    # so the disjoint mean keeps only d2's entry there: -1 (not d1's 2); entry 1: (1*1 + 3*3) / 4
    assert torch.allclose(ties(torch.zeros(2), [d1, d2], w, density=1.0), torch.tensor([-1.0, 2.5]))
    assert torch.allclose(ties(torch.zeros(2), [d1, d2], None, density=1.0), torch.tensor([2.0, 2.0]))


def test_ties_trims_the_whole_task_vector_by_default(tmp_path: Path):
    """Model a moved tensor w a lot and tensor v a little: the paper's trim (top half of all 8 entries of the
    task vector) keeps only w's entries, a per-tensor trim keeps the top half of each tensor."""
    base = fake_model(tmp_path / "base", {"w": torch.zeros(4), "v": torch.zeros(4)})
    a = fake_model(tmp_path / "a", {"w": torch.tensor([5.0, -6.0, 7.0, 8.0]), "v": torch.tensor([1.0, -2.0, 0.5, 0.1])})
    pool = [ref("base", base), ref("a", a)]
    whole = merged(METHODS.get("ties")({"density": 0.5}), pool)
    assert torch.equal(whole["w"], torch.tensor([5.0, -6.0, 7.0, 8.0])) and torch.equal(whole["v"], torch.zeros(4))
    per = merged(METHODS.get("ties")({"density": 0.5, "trim": "per_tensor"}), pool)
    assert torch.equal(per["w"], torch.tensor([0.0, 0.0, 7.0, 8.0]))
    assert torch.equal(per["v"], torch.tensor([1.0, -2.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="trim"):
        METHODS.get("ties")({"trim": "layer"})


# ---- model swarms: MoCo's normalised velocity and restarts ------------------------------------------------------

def recorded(values: dict[tuple[float, ...], float] | None = None):
    """A fitness that records every evaluated coefficient vector (constant unless ``values`` says)."""
    calls: list[list[float]] = []

    def fitness(c: list[float]) -> float:
        calls.append(list(c))
        return (values or {}).get(tuple(round(x, 6) for x in c), 0.0)

    return fitness, calls


def test_swarm_velocity_weights_are_normalised_to_sum_one():
    # two particles at the experts, initial velocities towards each other: v0 = (-1, 1) for particle 0.
    # inertia 2 and cognitive 2 normalise to 1/2 each; p_best = x, so v1 = v0 / 2 and x1 = x0 + 0.5 * v1
    p = ModelSwarmsParams(particles=2, iterations=1, inertia=2.0, cognitive=2.0, social=0.0, repel=0.0,
                          weight_randomness=False, step=0.5)
    fitness, calls = recorded()
    swarm_search(2, fitness, p, seed=0)
    assert calls[:2] == [[1.0, 0.0], [0.0, 1.0]]
    assert calls[2] == pytest.approx([0.75, 0.25]) and calls[3] == pytest.approx([0.25, 0.75])


def test_swarm_particles_that_stop_improving_restart_from_their_best():
    # constant fitness: nobody improves. Inertia only, so without restarts each particle keeps drifting along
    # its first velocity; with restart_patience 2 both restart at iteration 3: back to their personal best
    # (their start) with zero velocity, so iteration 3 evaluates the starting points again.
    p = ModelSwarmsParams(particles=2, iterations=4, inertia=1.0, cognitive=0.0, social=0.0, repel=0.0,
                          weight_randomness=False, step=0.5, step_decay=1.0, patience=10, restart_patience=2)
    fitness, calls = recorded()
    _, _, history = swarm_search(2, fitness, p, seed=0)
    assert [h["restarted"] for h in history] == [[], [], [], [0, 1], []]
    assert calls[2] == pytest.approx([0.5, 0.5]) and calls[4] == pytest.approx([0.0, 1.0])  # drifting
    assert calls[6:8] == [[1.0, 0.0], [0.0, 1.0]]  # restarted at their best, zero velocity
    assert calls[8:10] == [[1.0, 0.0], [0.0, 1.0]]  # and they stay there (velocity 0)


def test_swarm_stops_when_the_global_best_stalls():
    p = ModelSwarmsParams(particles=2, iterations=20, patience=3, restart_patience=50)
    _, _, history = swarm_search(2, recorded()[0], p, seed=0)
    # the best never improves: after evaluations 0..3 the history of bests has 4 > patience entries and its
    # last is no better than the one 3 back, so iteration 4 never runs (MoCo's early stop)
    assert len(history) == 4


# ---- LoraHub: a start that can leave the base; the merge stage records the coefficients -------------------------

def test_lorahub_default_start_leaves_the_base(tmp_path: Path, tiny_llama_dir: Path):
    a1 = make_adapter(tiny_llama_dir, tmp_path / "ad1", 1)
    a2 = make_adapter(tiny_llama_dir, tmp_path / "ad2", 2)
    pool = [ModelRef(n, str(tiny_llama_dir), {"adapter": str(a), "base": str(tiny_llama_dir)}, {})
            for n, a in (("s1", a1), ("s2", a2))]
    items = [Item(id=str(i), task="t", split="dev", task_type="exact_match", question=f"What is {i} + 1?",
                  gold=str(i + 1)) for i in range(2)]
    for init, expected in (("uniform", {"s1": 0.5, "s2": 0.5}), ("zeros", {"s1": 0.0, "s2": 0.0})):
        ctx = MergeContext(dev_items=items, seed=0)
        METHODS.get("lorahub")({"budget": 1, "init": init}).plan(pool, ctx)
        assert ctx.decisions["coefficients"] == pytest.approx(expected)  # one evaluation: the start itself
        assert ctx.decisions["base_only"] is (init == "zeros")


def test_merge_stage_writes_the_decisions_into_the_card_and_the_run_reads_them(tmp_path: Path):
    from mocoflow.engines.base import DecodingConfig
    from mocoflow.io import write_json
    from mocoflow.methods.base import EngineProvider, RunContext
    from mocoflow.models import make_card
    from mocoflow.stages.merge import merge

    cards = []
    for name, value in (("a", 1.0), ("b", 3.0)):
        d = fake_model(tmp_path / name, {"w": torch.tensor([value])})
        card = tmp_path / name / "card.json"
        write_json(card, {**make_card(name, {"source": "tiny"}, d), "architecture": "x", "tokenizer": "t"})
        cards.append(card)
    params = {"run": "lin", "pool": "duo", "method": "linear_merge", "method_params": {"weights": [3, 1]},
              "device": "cpu"}
    card = merge(cards, tmp_path / "merged" / "card.json", params)
    assert card["decisions"]["reliance"] == {"a": 0.75, "b": 0.25}
    pool = [ModelRef.from_card(c) for c in cards]
    method = METHODS.get("linear_merge")({"weights": [3, 1]})
    assert torch.allclose(method.merged_state(pool, card["recipe"]["plan"])["w"], torch.tensor([1.5]))
    ta = merge(cards, tmp_path / "ta" / "card.json",
               {**params, "method_params": {"mode": "task_arithmetic", "base": "a", "scale": 1.0}})
    assert ta["decisions"]["coefficients"] == {"a": 0.0, "b": 1.0}  # theta_a + (theta_b - theta_a)
    assert ta["decisions"]["reliance"] == {"a": 0.0, "b": 1.0}  # degenerate: it IS model b

    class Fake:
        def generate(self, prompts, decoding, **_kw):
            return [Generation("x", 1, 1, 0.0) for _ in prompts]

    ctx = RunContext(run="lin", pool_name="duo", pool=[], task="t",
                     items={"dev": [], "test": interval_items((0, 1))}, generations={}, decoding=DecodingConfig(),
                     engines=EngineProvider(lambda _ref: Fake()), workdir=tmp_path,
                     merged_model=method.merged_model(card, pool))
    METHODS.get("linear_merge")({}).run(ctx)
    assert ctx.decisions["reliance"] == {"a": 0.75, "b": 0.25}
