"""Hugging Face transformers by name (``hf:NAME``), built from a config without weights.

NAME is a model type (``hf:llama``, ``hf:bert``: transformers' default config for it), a local
folder or ``config.json`` (``hf:path/to/config.json``), or a Hub id (``hf:org/name``: only its
``config.json`` is fetched, never weights). ``--arg key=value`` overrides config fields (a key the
config does not have is refused, not silently added), ``--arg head=causal-lm`` picks a task head,
and code from the Hub is never run unless ``--arg trust_remote_code=True`` says so.

transformers is an optional extra, imported only on this path.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
import json
import os
import re
import socket
from typing import Any, Dict, List, Optional, Tuple

import torch

from archscope.errors import UsageError, first_line
from archscope.inputs import Inputs
from archscope.models.build import Loaded, build_on, guarded

PREFIX = "hf"
SEQUENCE_LENGTH = 128  # tokens of the default text input (less where the model's positions are fewer)
AUDIO_SAMPLES = 16000  # one second at 16 kHz, the default raw-audio input (wav2vec2, HuBERT...)

# --arg head=NAME → the Auto class that builds that head.
HEADS = {
    "base": "AutoModel",
    "causal-lm": "AutoModelForCausalLM",
    "masked-lm": "AutoModelForMaskedLM",
    "sequence-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "seq2seq-lm": "AutoModelForSeq2SeqLM",
    "image-classification": "AutoModelForImageClassification",
}
OPTIONS = ("head", "trust_remote_code")
LIST_LIMIT = 40  # `list 'hf:PATTERN'` builds and traces each match (transformers knows 800+ types)  # --arg keys that are archscope's, not the config's


def _transformers():
    try:
        import transformers
    except ImportError:
        raise UsageError("transformers is not installed: pip install 'archscope[hf]' (or pip install transformers)") \
            from None
    transformers.logging.set_verbosity_error()  # config warnings are not the user's output
    return transformers


def _model_types() -> List[str]:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    return sorted(CONFIG_MAPPING.keys())


def names(pattern: str = "*") -> List[str]:
    _transformers()
    return [t for t in _model_types() if fnmatch.fnmatchcase(t, pattern)]


def describe(name: str) -> str:
    try:
        config = _config(name, False)
    except UsageError as error:
        return f"transformers: {first_line(error)}"
    cls, why = _head_class(config, None)
    mapping = getattr(cls, "_model_mapping", None)  # an Auto class: the concrete class it picks for this config
    try:
        cls = mapping[type(config)] if mapping is not None else cls
    except (KeyError, ValueError):
        pass
    return f"transformers {cls.__name__} ({why})"


def published(name: str) -> Dict[str, Any]:
    return {"params": None, "gmacs": None, "note": None}


def load(name: str, device: str, kwargs: Dict[str, Any]) -> Loaded:
    """Build ``hf:NAME`` on ``device`` (meta: no memory) with its default inputs."""
    _transformers()
    options = dict(kwargs)
    head = options.pop("head", None)
    trust = options.pop("trust_remote_code", False) is True
    config = _config(name, trust, options)
    cls, why = _head_class(config, head)
    label = f"{PREFIX}:{name}"

    def make():
        # An Auto class builds from a config with from_config; a concrete class with _from_config.
        if cls.__name__.startswith("Auto"):
            try:
                return cls.from_config(config, trust_remote_code=trust)
            except TypeError:
                # transformers' own Auto class can fail on a default config (funnel: a type with two base
                # classes and no architectures to pick between them): the type's first class, as it would pick.
                concrete = _mapped_class(cls, config)
                if concrete is None:
                    raise
                return concrete._from_config(config)
        return cls._from_config(config)

    # ArithmeticError: a config value the modeling code divides by (num_attention_heads=0).
    build = guarded(label, kwargs, make, catch=(TypeError, ValueError, RuntimeError, KeyError, AttributeError,
                                                ArithmeticError))
    module, note = build_on(device, build, label)
    inputs = default_inputs(module, config)
    built = f"built {type(module).__name__} ({why}) from {_origin(name)}, without weights"
    if inputs is None:
        built += f"; its input ({getattr(module, 'main_input_name', '?')}) has no default size here: pass --input"
    return Loaded(module, label, inputs, build, "; ".join(n for n in (built, note) if n))


# --------------------------------------------------------------------------- the config


def _config(name: str, trust: bool, overrides: Optional[Dict[str, Any]] = None):
    """The config NAME names, with ``overrides`` given to its constructor: a field derived from others
    (Llama's head_dim from hidden_size) is derived again, as if the user had written the config."""
    transformers = _transformers()
    overrides = overrides or {}
    if not name:
        raise UsageError("hf: needs a model type (hf:llama), a config (hf:path/config.json) or a Hub id (hf:org/name)")
    if os.path.exists(name):
        return _from_pretrained(transformers, name, trust, name, overrides)
    if name.endswith(".json") or name.startswith((".", "/", "~")):
        raise UsageError(f"no such config: {name} (hf:PATH takes a folder with a config.json, or the file itself)")
    if name in _model_types():
        _check_fields(transformers.AutoConfig.for_model(name), overrides, name)
        return _guarded_config(lambda: transformers.AutoConfig.for_model(name, **overrides), name, overrides)
    if "/" in name:
        return _from_pretrained(transformers, _hub_config(name), trust, name, overrides)
    close = difflib.get_close_matches(name.lower(), _model_types(), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(f'hf:{c}' for c in close)}?" if close else ""
    raise UsageError(f"unknown transformers model type '{name}'{hint} (list them with: archscope list 'hf:*'; "
                     "a local config is hf:path/config.json, a Hub model hf:org/name)")


def _from_pretrained(transformers, path: str, trust: bool, name: str, overrides: Dict[str, Any]):
    try:
        if os.path.isdir(path) and not trust:
            path = os.path.join(path, "config.json")
            if not os.path.isfile(path):
                raise UsageError(f"no config.json in {name} (hf:FOLDER takes a folder with a config.json)")
        if os.path.isfile(path):
            # A config.json: read it as data, then build the config class its model_type names.
            data = _json_object(path, name)
            model_type = data.get("model_type")
            if "auto_map" in data and (model_type not in _model_types() or trust):
                if not trust:
                    raise ValueError("it requires you to execute code (auto_map)")
                return transformers.AutoConfig.from_pretrained(os.path.dirname(path), trust_remote_code=True,
                                                               **overrides)
            if model_type not in _model_types():
                raise UsageError(f"{name}: unknown model_type {model_type!r} in the config (transformers "
                                 f"{transformers.__version__} knows {len(_model_types())} types: archscope list 'hf:*')")
            _check_fields(_guarded_config(lambda: transformers.AutoConfig.for_model(**data), name, {}), overrides, name)
            return _guarded_config(lambda: transformers.AutoConfig.for_model(**{**data, **overrides}), name, overrides)
        return transformers.AutoConfig.from_pretrained(path, trust_remote_code=trust, **overrides)
    except UsageError:
        raise
    except (ValueError, OSError, KeyError) as error:
        if "execute" in str(error) or "trust_remote_code" in str(error):
            raise UsageError(f"hf:{name} needs code from its repository to build, and archscope never runs it on "
                             "its own: pass --arg trust_remote_code=True if you trust that code") from None
        raise UsageError(f"cannot read the config of hf:{name}: {first_line(error)}") from None


def _json_object(path: str, name: str) -> Dict[str, Any]:
    """A config.json read as data: it must hold one JSON object."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read {path} (hf:{name}): {first_line(error)}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} holds a JSON {type(data).__name__}, not a config: a config.json is one object "
                         '({"model_type": ..., "hidden_size": ...})')
    return data


def _guarded_config(make, name: str, overrides: Dict[str, Any]):
    try:
        return make()
    except Exception as error:  # noqa: BLE001 - a config's own checks (types, heads dividing the width): the user's values
        given = f" with {', '.join(f'{k}={v!r}' for k, v in overrides.items())}" if overrides else ""
        raise UsageError(f"cannot configure hf:{name}{given}: {' '.join(str(error).split())[:300]}") from None


def _hub_config(repo: str) -> str:
    """Only ``config.json`` of a Hub repository (never weights); offline, one line saying what to do."""
    how = f"download {repo}'s config.json where there is a network and pass hf:path/to/config.json"
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise UsageError(f"cannot fetch config.json of {repo}: HF_HUB_OFFLINE is set; {how}")
    try:  # fail in one line at once rather than after huggingface_hub's retries (about 20 s offline)
        socket.getaddrinfo("huggingface.co", 443)
    except OSError as error:
        raise UsageError(f"cannot fetch config.json of {repo} from the Hugging Face Hub (no network: "
                         f"{first_line(error)}); {how}") from None
    try:
        from huggingface_hub import hf_hub_download
        return hf_hub_download(repo, "config.json")
    except Exception as error:  # noqa: BLE001 - every failure to fetch is the same one line for the user
        raise UsageError(f"cannot fetch config.json of {repo} from the Hugging Face Hub ({type(error).__name__}: "
                         f"{first_line(error)[:120]}); {how}") from None


def _check_fields(config, overrides: Dict[str, Any], name: str) -> None:
    """``--arg num_hidden_layers=2`` must name a field the config has: a typo would otherwise be stored
    as a new field and change nothing, silently."""
    known = set(config.to_dict()) | set(getattr(config, "attribute_map", {}))
    unknown = [key for key in overrides if key not in known and not hasattr(config, key)]
    if unknown:
        known |= _keys_the_model_reads(config)  # only when needed: it reads the modeling code's source
    for key in overrides:
        if key not in known and not hasattr(config, key):
            close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UsageError(f"{type(config).__name__} of hf:{name} has no field '{key}'{hint} "
                             f"(archscope's own --arg keys: {', '.join(OPTIONS)})")


def _mapped_class(auto, config):
    """The concrete class an Auto class maps this config's type to (the first, where it maps to several)."""
    try:
        found = auto._model_mapping[type(config)]
    except (KeyError, ValueError, AttributeError):
        return None
    return found[0] if isinstance(found, (tuple, list)) else found


_GETATTR_KEY = re.compile(r"getattr\(\s*(?:self\.)?config\s*,\s*[\"'](\w+)[\"']")


def _keys_the_model_reads(config) -> set:
    """Config keys the type's modeling code reads with ``getattr(config, "key", default)``: absent from the
    default config, yet they change what is built (Qwen2's head_dim). Read from the source text, not run."""
    model_type = getattr(config, "model_type", None)
    if not model_type:
        return set()
    try:
        from transformers.models.auto.configuration_auto import model_type_to_module_name

        module = importlib.import_module(f"transformers.models.{model_type_to_module_name(model_type)}."
                                         f"modeling_{model_type_to_module_name(model_type)}")
        return set(_GETATTR_KEY.findall(inspect.getsource(module)))
    except (ImportError, OSError, TypeError):
        return set()


def _head_class(config, head: Optional[str]) -> Tuple[Any, str]:
    transformers = _transformers()
    if head is not None:
        if head not in HEADS:
            raise UsageError(f"unknown head '{head}': use one of {', '.join(HEADS)}")
        return getattr(transformers, HEADS[head]), f"--arg head={head}"
    architectures = getattr(config, "architectures", None) or []
    named = getattr(transformers, architectures[0], None) if architectures and isinstance(architectures[0], str) else None
    # The file names it, so it must be one of transformers' model classes, not any attribute it has.
    if isinstance(named, type) and issubclass(named, transformers.PreTrainedModel):
        return named, "the config's architectures[0]"
    return transformers.AutoModel, "the base model: the config names no head; --arg head=causal-lm picks one"


def _origin(name: str) -> str:
    if os.path.exists(name):
        return name
    return f"the Hub's config.json of {name}" if "/" in name else f"transformers' default {name} config"


# --------------------------------------------------------------------------- the default inputs


def default_inputs(module, config) -> Optional[Inputs]:
    """What the model's forward is fed by default: token ids and a mask of ones for text models (and
    decoder ids for encoder-decoders), ``pixel_values`` at the config's image size for vision,
    a second of 16 kHz audio or the encoder's mel frames for speech. None when it cannot be sized."""
    main = getattr(module, "main_input_name", "input_ids")
    params = _forward_parameters(module)
    names, shapes, dtypes, fills = [], [], [], []

    def add(name, shape, dtype=torch.int64, fill=0):
        names.append(name), shapes.append(tuple(shape)), dtypes.append(dtype), fills.append(fill)

    text = _sub(config, "text_config")
    if main == "input_ids":
        length = min(SEQUENCE_LENGTH, _positions(text) or SEQUENCE_LENGTH)
        add("input_ids", (1, length))
        if "attention_mask" in params:
            add("attention_mask", (1, length), fill=1)
        if getattr(config, "is_encoder_decoder", False) and "decoder_input_ids" in params:
            add("decoder_input_ids", (1, length))
    if main == "pixel_values" or (main == "input_ids" and "pixel_values" in params and hasattr(config, "vision_config")):
        vision = _sub(config, "vision_config")
        side = getattr(vision, "image_size", None) or 224
        h, w = (side[0], side[-1]) if isinstance(side, (list, tuple)) else (side, side)
        add("pixel_values", (1, getattr(vision, "num_channels", 3) or 3, h, w), torch.float32)
    if main == "input_values":
        add("input_values", (1, AUDIO_SAMPLES), torch.float32)
    if main == "input_features" and getattr(config, "num_mel_bins", None) and \
            getattr(config, "max_source_positions", None):
        # Whisper's encoder halves its frames once (a stride-2 conv): 2 × its positions of mel frames.
        add("input_features", (1, config.num_mel_bins, 2 * config.max_source_positions), torch.float32)
        if getattr(config, "is_encoder_decoder", False) and "decoder_input_ids" in params:
            add("decoder_input_ids", (1, min(SEQUENCE_LENGTH, getattr(config, "max_target_positions", 448))))
    if not names:
        return None
    return Inputs(list(shapes), list(dtypes), names=names, fills=fills)


def _forward_parameters(module) -> List[str]:
    try:
        return list(inspect.signature(module.forward).parameters)
    except (TypeError, ValueError):
        return []


def _sub(config, name: str):
    return getattr(config, name, None) or config


def _positions(config) -> Optional[int]:
    for field in ("max_position_embeddings", "n_positions", "max_positions"):
        value = getattr(config, field, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
