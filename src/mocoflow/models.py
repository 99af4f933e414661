"""Model cards: the ``build_model`` rule turns a config entry into ``card.json`` through its model source
(:mod:`mocoflow.model_sources` lists them all; ``local`` is here).

A card records where the weights are, their fingerprint (:func:`model_fingerprint`, also the response cache's
key), parameter count, and the tokenizer and architecture signatures that logit- and weight-level methods
check before doing any work. It imports only :mod:`mocoflow.io`, so every layer may read cards.

Weights that mocoflow writes sit in the card's own folder (``results/models/{model}/weights``,
``results/merged/.../weights``); the card stores their path relative to that folder, so a results folder
that is moved or copied keeps working. Weights outside it (a ``local`` folder, a hub snapshot) keep their
absolute path. Every reader resolves the path through :func:`card_weights` (or :meth:`ModelRef.from_card`),
which fails with "weights of X missing at P; rerun with --forcerun build_model" when they are gone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "tokenizer.model",
                   "added_tokens.json", "chat_template.jinja",
                   "special_tokens_map.json")
# What model_fingerprint hashes besides config.json: its own list (with chat_template.json, in this order)
# because every response-cache key depends on it.
FINGERPRINT_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                               "tokenizer.model", "added_tokens.json", "special_tokens_map.json",
                               "chat_template.jinja", "chat_template.json")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_EDGE = 1 << 20  # bytes hashed at each end of a weight file


@dataclass(frozen=True)
class ModelRef:
    """A model as methods see it: its config name, weights path and card."""

    name: str
    path: str
    card: dict[str, Any]
    spec: dict[str, Any]

    @classmethod
    def from_card(cls, card_path: str | Path, spec: dict[str, Any] | None = None) -> ModelRef:
        """The model of a card, its weights path resolved (see :func:`card_weights`). A model stored as a LoRA
        adapter of its base (card ``adapter``, see :func:`adapter_card`) gets the adapter's absolute path in its
        card and ``lora_adapter`` (adapter path and the card's fingerprint) in its spec: the engines merge it
        into the base loaded from ``path`` (:func:`mocoflow.engines.loader.derived_weights`)."""
        card = json.loads(Path(card_path).read_text())
        spec = dict(spec or {})
        if card.get("adapter"):
            adapter = Path(card["adapter"])
            if not adapter.is_absolute():
                adapter = Path(card_path).parent / adapter
            if not (adapter / "adapter_config.json").exists():
                raise WeightsMissingError(f"adapter of {card['name']} missing at {adapter.absolute()} (card "
                                          f"{Path(card_path).absolute()}); rerun with --forcerun build_model")
            card = {**card, "adapter": str(adapter.absolute())}
            spec["lora_adapter"] = {"path": card["adapter"], "fingerprint": card["fingerprint"]}
        return cls(name=card["name"], path=str(card_weights(card_path, card)), card=card, spec=spec)


class WeightsMissingError(FileNotFoundError):
    """A card's weights folder is gone; the message says which rule to rerun."""


def card_weights(card_path: str | Path, card: dict[str, Any] | None = None) -> Path:
    """The weights folder of the card at ``card_path``: its ``path``, relative to the card's folder unless
    absolute. Raises WeightsMissingError naming the model, the path and the rule that rebuilds it."""
    card_path = Path(card_path)
    if card is None:
        card = json.loads(card_path.read_text())
    path = Path(card["path"])
    if not path.is_absolute():
        path = card_path.parent / path
    if not path.exists():
        source = (card.get("spec") or {}).get("source")
        rule = "merge merge_dev" if source == "merge" else "build_model"
        raise WeightsMissingError(f"weights of {card.get('name', card_path.parent.name)} missing at "
                                  f"{path.absolute()} (card {card_path.absolute()}); rerun with --forcerun {rule}")
    return path


def portable_card(card: dict[str, Any], card_path: str | Path) -> dict[str, Any]:
    """``card`` with its weights path (and its ``adapter``) made relative to the card's folder when they lie
    inside it; a model stored as an adapter also when its base's weights lie in a sibling model folder
    (``../<base>/weights``). Weights elsewhere keep their absolute path."""
    import os

    folder = Path(card_path).resolve().parent
    out = dict(card)
    for key in ("path", "adapter"):
        if not out.get(key) or (key == "adapter" and not Path(out[key]).is_absolute()):
            continue  # none, or an adapter path already relative to the card's folder
        target = Path(out[key]).resolve()
        sibling = key == "path" and bool(card.get("adapter")) and target.is_relative_to(folder.parent)
        if target.is_relative_to(folder) or sibling:
            out[key] = os.path.relpath(target, folder)
    return out


def adapter_digest(adapter: Path) -> str:
    """sha256 over a peft adapter folder's ``adapter_*`` files (config and weights), name by name."""
    digest = hashlib.sha256()
    for f in sorted(Path(adapter).glob("adapter_*")):
        digest.update(f.name.encode() + b"\0" + file_sha256(f).encode())
    return digest.hexdigest()


def adapter_card(card: dict[str, Any], adapter: Path) -> dict[str, Any]:
    """The card of a model stored as a LoRA ``adapter`` of the base whose card is ``card`` (made from the base's
    weights): ``path`` stays the base's weights, ``adapter`` names the adapter folder and the fingerprint (the
    response cache's key) combines the base's with the adapter's digest, so a specialist never shares its base's
    cache entries. Architecture, tokenizer and parameter count are the base's."""
    digest = adapter_digest(adapter)
    fingerprint = hashlib.sha256(f"lora\0{card['fingerprint']}\0{digest}".encode()).hexdigest()
    return {**card, "fingerprint": fingerprint, "base_fingerprint": card["fingerprint"],
            "adapter": str(Path(adapter).resolve()), "adapter_sha256": digest}


def write_card(card_path: str | Path, card: dict[str, Any]) -> None:
    """Write a card atomically, its weights path portable (see :func:`portable_card`)."""
    from mocoflow.io import write_json

    write_json(Path(card_path), portable_card(card, card_path))


# Model spec keys that declare, for the checks made when the DAG is built (before any weights exist), which
# models share a tokenizer or an architecture: equal values mean shared. They change no weights, so the rules
# leave them out of their params (mocoflow.config.model_spec_param).
DECLARATION_KEYS = ("tokenizer_id", "architecture_id")


def expected_signature(name: str, models: dict[str, Any], attribute: str,
                       _seen: frozenset[str] = frozenset()) -> tuple[str, str] | None:
    """What a model's spec tells about its ``attribute`` ("tokenizer" or "architecture") before it is built:
    ``(kind, value)``, where values of one kind are equal exactly when the models share it, or None when the
    spec does not tell. Declared ``tokenizer_id``/``architecture_id`` win; a tiny model's follow from its
    spec; a LoRA specialist has its base's; a local folder's are read from its files (as on the card)."""
    spec = models.get(name)
    if spec is None or name in _seen:
        return None
    declared = spec.get(f"{attribute}_id")
    if declared is not None:
        return ("declared", str(declared))
    source = spec.get("source")
    if source == "tiny":
        tokenizer = str(spec.get("tokenizer", "default"))
        if attribute == "tokenizer":
            return ("tiny", tokenizer)
        return ("tiny", f"{spec.get('arch', 'gpt2')} n_layer={spec.get('n_layer', 2)} "
                        f"n_embd={spec.get('n_embd', 64)} tokenizer={tokenizer}")
    if source == "lora":
        if spec.get("base_path"):
            return _folder_signature(Path(str(spec["base_path"])).expanduser(), attribute)
        return expected_signature(str(spec.get("base")), models, attribute, _seen | {name})
    if source == "local" and spec.get("path"):
        return _folder_signature(Path(str(spec["path"])).expanduser(), attribute)
    return None


def _folder_signature(path: Path, attribute: str) -> tuple[str, str] | None:
    try:
        value = tokenizer_signature(path) if attribute == "tokenizer" else architecture_signature(path)
    except Exception:  # unreadable or not a model folder: the BYO path check says why
        return None
    return ("files", value)


# A model source builds or locates the weights: (name, spec, out_dir) -> weights directory. Sources are plain
# functions in their modules; mocoflow.model_sources lists every one of them in one table.
ModelSource = Callable[[str, dict[str, Any], Path], Path]


def local_source(name: str, spec: dict[str, Any], out_dir: Path) -> Path:
    """An existing HF-format directory (``path``); nothing is copied."""
    if "path" not in spec:
        raise ValueError(f"model {name!r}: source 'local' needs 'path'")
    path = Path(spec["path"]).expanduser().resolve()
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"model {name!r}: {path} is not a Hugging Face model directory (no config.json)")
    return path


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def tokenizer_signature(path: Path) -> str:
    h = hashlib.sha256()
    found = False
    for fname in TOKENIZER_FILES:
        f = path / fname
        if f.exists():
            found = True
            h.update(fname.encode())
            h.update(_canonical_tokenizer_bytes(f))
    if not found:
        raise FileNotFoundError(f"no tokenizer files in {path}")
    return h.hexdigest()[:16]


def _canonical_tokenizer_bytes(f: Path) -> bytes:
    if f.name == "tokenizer_config.json":  # ignore fields that do not change tokenisation
        cfg = json.loads(f.read_text())
        keep = {k: cfg[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token", "added_tokens_decoder")
                if k in cfg}
        return json.dumps(keep, sort_keys=True, default=str).encode()
    return f.read_bytes()


def architecture_signature(path: Path) -> str:
    """model_type plus every parameter's name and shape, read from safetensors headers (no weights loaded)."""
    from safetensors import safe_open

    config = json.loads((path / "config.json").read_text())
    shapes: list[tuple[str, list[int]]] = []
    for f in sorted(path.glob("*.safetensors")):
        with safe_open(str(f), framework="numpy") as st:
            for key in st.keys():
                shapes.append((key, list(st.get_slice(key).get_shape())))
    if not shapes:
        raise FileNotFoundError(f"no safetensors weights in {path}")
    payload = json.dumps([config.get("model_type"), sorted(shapes)])
    return config.get("model_type", "unknown") + "-" + hashlib.sha256(payload.encode()).hexdigest()[:12]


def parameter_count(path: Path) -> int:
    from safetensors import safe_open

    total = 0
    for f in sorted(path.glob("*.safetensors")):
        with safe_open(str(f), framework="numpy") as st:
            for key in st.keys():
                n = 1
                for d in st.get_slice(key).get_shape():
                    n *= d
                total += n
    return total


def local_model_dir(path_or_id: str | os.PathLike[str]) -> Path | None:
    """The directory holding a model: the path itself, or a hub id's cached snapshot (never downloaded)."""
    p = Path(path_or_id).expanduser()
    if p.is_dir():
        return p
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(path_or_id), local_files_only=True))
    except Exception:  # not cached locally, or not a valid repo id
        return None


def model_fingerprint(path: str | os.PathLike[str]) -> str:
    """A fast, stable fingerprint of a model directory: sha256 over config.json, the tokenizer files and,
    for each weight file, its name, size and the sha256 of its first and last MiB.

    A hub id that is not cached locally is fingerprinted by its name (prefixed ``id:``)."""
    d = local_model_dir(path)
    h = hashlib.sha256()
    if d is None:
        h.update(f"id:{path}".encode())
        return h.hexdigest()
    config = d / "config.json"
    if config.exists():
        h.update(b"config.json\0")
        h.update(config.read_bytes())
    for name in FINGERPRINT_TOKENIZER_FILES:
        f = d / name
        if f.exists():
            h.update(name.encode() + b"\0")
            h.update(f.read_bytes())
    weights = sorted(f for f in d.iterdir() if f.is_file() and f.name.endswith(WEIGHT_SUFFIXES))
    for f in weights:
        size = f.stat().st_size
        h.update(f"{f.name}\0{size}\0".encode())
        with open(f, "rb") as fh:
            h.update(hashlib.sha256(fh.read(_EDGE)).digest())
            fh.seek(max(0, size - _EDGE))
            h.update(hashlib.sha256(fh.read(_EDGE)).digest())
    if not config.exists() and not weights:
        raise FileNotFoundError(f"{d}: no config.json or weight files to fingerprint")
    return h.hexdigest()


def make_card(name: str, spec: dict[str, Any], weights: Path, **extra: Any) -> dict[str, Any]:
    if weights.is_file():  # a weightless model (replay, endpoint): its source wrote a JSON descriptor, not weights
        descriptor = json.loads(weights.read_text())
        return {"name": name, "source": spec.get("source"), "path": str(weights.resolve()),
                "fingerprint": descriptor["fingerprint"], "parameters": int(descriptor.get("parameters") or 0),
                "architecture": None, "tokenizer": None, "spec": spec, **extra}

    return {
        "name": name,
        "source": spec.get("source"),
        "path": str(weights.resolve()),
        "fingerprint": model_fingerprint(weights),
        "parameters": parameter_count(weights),
        "architecture": architecture_signature(weights),
        "tokenizer": tokenizer_signature(weights),
        "spec": spec,
        **extra,
    }
