"""The input of ``train``, ``eval`` and ``calibrate``: one DATA argument, resolved once for all three.

The forms are listed in :data:`DATA_DESCRIPTION` (shown by each command's ``--help``).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from r2router_core import ConfigError, DataError, ModelSpec, RouterConfig, TrainingData, missing_dependency
from r2router_core.embedders import TRAINING_DEFAULT
from r2router_core.evaluation import RoutingDataset

if TYPE_CHECKING:
    from r2router_core.embedders import Embedder

__all__ = [
    "DATA_DESCRIPTION",
    "NAMED_DATASETS",
    "TrainingInput",
    "add_training_input_arguments",
    "embed_training_input",
    "load_models_file",
    "resolve_training_input",
]

logger = logging.getLogger(__name__)

NAMED_DATASETS = ("routerarena", "alpacaeval-length", "synthetic")

DATA_DESCRIPTION = """DATA is one of
  * a card-layout directory: config.json (the pool and its prices) and training_data/
    (embeddings.npy + labels.json); a bare training_data directory goes with --config FILE;
  * a long-format .csv or .jsonl outcomes file, one row per (query, model, budget) with the
    columns query, model, quality (0/1 or graded in [0, 1]) and output_tokens or cost (USD);
    no budget column = one uncapped budget; priced by its output_price and input_price columns
    or by --models FILE (a cost without tokens and without prices is used as the cost directly);
  * a RouterBench file (.csv/.jsonl): prompt, sample_id and per model <model> and
    <model>|total_cost columns;
  * a directory of R2-Bench <budget>_judge.csv files, priced by --models FILE;
  * a named public dataset: routerarena, alpacaeval-length or synthetic.
The budgets are those the data holds. --models FILE is JSON or YAML mapping each model to
{output_price, input_price, full_name} (USD per 1M tokens; train needs both prices, 0 = free),
optionally under a top-level "models" key.
"""
"""What DATA may be, for the commands' help."""
MODEL_KEYS = ("output_price", "input_price", "full_name")
_DATA_FORMS = (
    "a card-layout directory (config.json + training_data/), a long-format .csv/.jsonl outcomes file, "
    f"an R2-Bench *_judge.csv directory or one of {', '.join(NAMED_DATASETS)}"
)
_MODELS_HELP = "a JSON or YAML file mapping each model to {output_price, input_price, full_name} (USD per 1M tokens)"


@dataclass(frozen=True, eq=False)
class TrainingInput:
    """The resolved DATA argument.

    Attributes:
        dataset: The outcomes, with the pool's prices.
        embeddings: shape (N, D), when DATA carries vectors (card layout, synthetic); else ``None``
            and ``dataset.prompts`` are to be embedded.
        embedder: Id of the embedder behind ``embeddings``, ``None`` if none made them.
        config: The card's config (card layout only).
        training_data: The card's arrays as stored (card layout only).
    """

    dataset: RoutingDataset
    embeddings: NDArray[np.float32] | None = None
    embedder: str | None = None
    config: RouterConfig | None = None
    training_data: TrainingData | None = None


def add_training_input_arguments(
    p: argparse.ArgumentParser, *, metavar: str = "DATA", required: bool = True, embedder: str = TRAINING_DEFAULT
) -> None:
    """DATA and the options that say how to read, price and embed it."""
    p.add_argument(
        "dataset", metavar=metavar, nargs=None if required else "?", help=f"{_DATA_FORMS} (see the description)"
    )
    p.add_argument("--models", metavar="FILE", help=f"prices of a long-format DATA: {_MODELS_HELP}")
    p.add_argument("--config", metavar="FILE", help="config.json of a bare training_data directory given as DATA")
    p.add_argument("--data-dir", help="directory of the public data files (default: $R2ROUTER_DATA_DIR or the cache)")
    p.add_argument("--embedder", default=embedder, help=f"embedder id or path for DATA's prompts (default: {embedder})")
    p.add_argument("--cache-dir", help="embedding cache directory (default: the library's cache)")
    p.add_argument("--n-queries", type=int, default=1000, help="queries of the synthetic pool (default: 1000)")


def resolve_training_input(args: argparse.Namespace) -> TrainingInput:
    """Read DATA as ``args`` say (``dataset``, ``models``, ``config``, ``data_dir``, ``n_queries``, ``seed``).

    Raises:
        ConfigError: DATA does not exist, is of no known form, or an option does not fit it;
            the message names the argument and what to pass.
        DataError: A malformed file, naming the file and line.
    """
    spec: str = args.dataset
    if spec in NAMED_DATASETS:
        _refuse(args, ("models", "config"), f"{spec} carries its own prices")
        return _named(spec, args)
    path = Path(spec).expanduser()
    if not path.exists():
        raise ConfigError(f"{spec} does not exist; pass {_DATA_FORMS}")
    card = _card_layout(path, args.config)
    if card is not None:
        _refuse(args, ("models",), f"{spec} is a card-layout directory priced by its config.json")
        return card
    _refuse(args, ("config",), f"{spec} is not a training_data directory (embeddings.npy + labels.json)")
    models = load_models_file(args.models) if args.models else None
    return TrainingInput(dataset=_long_format(path, models))


def embed_training_input(
    inp: TrainingInput,
    embedder: str,
    *,
    cache_dir: str | None = None,
    progress: bool = False,
    engine: Embedder | None = None,
) -> tuple[NDArray[np.float32], str | None]:
    """DATA's vectors: the ones it carries, else its prompts embedded (cached on disk).

    Args:
        inp: The data.
        embedder: Embedder id or path.
        cache_dir: The embedding cache (default: the library's).
        progress: Show a progress bar.
        engine: Embed with this instead of ``load_embedder(embedder)``: the same embedder on
            other workers (``r2router_integrations.ray.RayEmbedder``), sent every uncached prompt at once.

    Returns:
        (embeddings of shape (N, D), the embedder id, ``None`` for vectors no embedder made).
    """
    if inp.embeddings is not None:
        return inp.embeddings, inp.embedder
    from r2router_core.embedders import load_embedder
    from r2router_core.evaluation.datasets import embed_dataset

    model = load_embedder(embedder, cache_size=0) if engine is None else engine
    batch = {} if engine is None else {"batch_size": max(1, inp.dataset.n_queries)}
    start = time.perf_counter()
    emb = embed_dataset(inp.dataset, model, cache_dir=cache_dir, progress=progress, **batch)
    logger.info("embedded %d prompts with %s in %.1f s", inp.dataset.n_queries, model.id, time.perf_counter() - start)
    return np.asarray(emb, dtype=np.float32), model.id


def load_models_file(path: str) -> dict[str, ModelSpec]:
    """The pool's prices from a ``--models`` JSON or YAML file: model -> {output_price, input_price, full_name}.

    Raises:
        ConfigError: The file is missing, unparsable or malformed; the message names it.
    """
    where = f"--models {path}"
    raw = _parse_models_file(Path(path).expanduser(), where)
    if isinstance(raw, dict) and set(raw) == {"models"}:
        raw = raw["models"]
    example = '{"my-model": {"output_price": 0.6, "input_price": 0.15, "full_name": "provider/my-model"}}'
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{where}: expected a mapping model -> {{{', '.join(MODEL_KEYS)}}}, e.g. {example}")
    specs: dict[str, ModelSpec] = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: model {name!r} must map to {{{', '.join(MODEL_KEYS)}}}, got {entry!r}")
        unknown = sorted(set(entry) - set(MODEL_KEYS))
        if unknown or "output_price" not in entry:
            problem = f"unknown keys {unknown}" if unknown else "no output_price (USD per 1M output tokens)"
            raise ConfigError(f"{where}: model {name!r} has {problem}; the keys are {list(MODEL_KEYS)}")
        try:
            specs[str(name)] = ModelSpec(str(name), **entry)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
    return specs


def _parse_models_file(path: Path, where: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read it ({exc}); pass {_MODELS_HELP}") from exc
    if path.suffix.lower() not in (".yaml", ".yml"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}:{exc.lineno}: not valid JSON ({exc.msg}); pass {_MODELS_HELP}") from exc
    try:
        import yaml
    except ImportError as exc:
        raise missing_dependency("yaml", "eval", f"A YAML {where} file") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{where}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc


def _refuse(args: argparse.Namespace, options: tuple[str, ...], why: str) -> None:
    for option in options:
        if getattr(args, option, None):
            raise ConfigError(f"--{option} does not apply: {why}")


def _named(spec: str, args: argparse.Namespace) -> TrainingInput:
    from r2router_core.evaluation import datasets

    if spec == "synthetic":
        dataset, emb = datasets.make_synthetic_pool(args.n_queries, seed=getattr(args, "seed", 0))
        return TrainingInput(dataset=dataset, embeddings=np.asarray(emb, dtype=np.float32))
    if spec == "routerarena":
        return TrainingInput(dataset=datasets.load_routerarena(args.data_dir))
    return TrainingInput(dataset=datasets.load_alpacaeval_length(args.data_dir))


def _card_layout(path: Path, config_file: str | None) -> TrainingInput | None:
    """A card-layout (or bare training_data) directory, ``None`` for anything else."""
    if not path.is_dir():
        return None
    if (path / "config.json").is_file() or (path / "training_data").is_dir():
        data_dir = path / "training_data"
        if not data_dir.is_dir():
            raise ConfigError(f"{path} has a config.json but no training_data/ (embeddings.npy + labels.json)")
    elif (path / "labels.json").is_file():
        data_dir = path
        if config_file is None:
            raise ConfigError(
                f"{path} is a training_data directory without the pool's prices; "
                "pass --config FILE (the config.json naming the models, prices and budgets)"
            )
    else:
        return None
    config = RouterConfig.load(config_file or path / "config.json")
    data = TrainingData.load(data_dir)
    from r2router_core.evaluation import dataset_from_training_data

    dataset = dataset_from_training_data(data, config, name=path.name)
    return TrainingInput(dataset, data.embeddings, config.embedder, config, data)


def _long_format(path: Path, models: dict[str, ModelSpec] | None) -> RoutingDataset:
    from r2router_core.evaluation.datasets import load_long_format

    try:
        return load_long_format(path, models=models)
    except DataError as exc:
        what, _, hint = str(exc).partition(";")
        if "models=" in hint:  # the loader's Python hint, said for the command line
            columns = " or give the file output_price and input_price columns" if "output_price" in what else ""
            raise ConfigError(f"{what}; pass --models FILE ({_MODELS_HELP}){columns}") from exc
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc})") from exc
