"""TrainingData: the on-disk format, validation on load, subset/select."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from r2router_core import TrainingData
from r2router_core.errors import CheckpointError, DataError, UnknownModelError
from tests.core.conftest import MakeData

N, M, B, D = 6, 2, 3, 4


def arrays(seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "embeddings": rng.normal(size=(N, D)).astype(np.float32),
        "models": ("a", "b"),
        "budgets": (100, 200, None),
        "quality": rng.uniform(size=(N, M, B)),
        "tokens": rng.uniform(1, 500, size=(N, M)),
    }


def write_dir(directory: Path, labels: dict[str, Any], embeddings: Any = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "embeddings.npy", arrays()["embeddings"] if embeddings is None else embeddings)
    (directory / "labels.json").write_text(json.dumps(labels), encoding="utf-8")
    return directory


def good_labels() -> dict[str, Any]:
    a = arrays()
    return {
        "models": list(a["models"]),
        "budgets": list(a["budgets"]),
        "quality": a["quality"].tolist(),
        "tokens": a["tokens"].tolist(),
    }


def test_construction_normalises_types() -> None:
    a = arrays()
    a["embeddings"] = a["embeddings"].astype(np.float64)
    a["models"] = ["a", "b"]
    data = TrainingData(**a, query_ids=[10, 11, 12, 13, 14, 15])  # type: ignore[arg-type]
    assert data.embeddings.dtype == np.float32 and data.embeddings.flags.c_contiguous
    assert data.models == ("a", "b") and data.budgets == (100, 200, None)
    assert data.query_ids == ("10", "11", "12", "13", "14", "15")
    assert (data.n_queries, data.dim) == (N, D)
    assert data.observed.all()


def test_save_load_round_trip_keeps_nan_none_budget_and_ids(tmp_path: Path, make_data: MakeData) -> None:
    _, data = make_data(n=30, per_budget_tokens=True, missing=0.3, seed=4)
    data = TrainingData(
        data.embeddings,
        data.models,
        data.budgets,
        data.quality,
        data.tokens,
        query_ids=tuple(f"q{i}" for i in range(30)),
    )
    data.save(tmp_path / "td")
    loaded = TrainingData.load(tmp_path / "td")
    np.testing.assert_array_equal(loaded.embeddings, data.embeddings)
    np.testing.assert_array_equal(loaded.quality, data.quality)  # NaN == NaN for assert_array_equal
    np.testing.assert_array_equal(loaded.tokens, data.tokens)
    assert loaded.budgets == (100, 200, None)
    assert loaded.query_ids == data.query_ids
    assert np.isnan(loaded.quality).sum() > 0


def test_on_disk_format_is_the_documented_one(tmp_path: Path) -> None:
    a = arrays()
    a["quality"][1, 0, 2] = np.nan
    data = TrainingData(**a)
    data.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["embeddings.npy", "labels.json", "labels.npy"]
    emb = np.load(tmp_path / "embeddings.npy", allow_pickle=False)
    assert emb.dtype == np.float32 and emb.shape == (N, D)
    labels = json.loads((tmp_path / "labels.json").read_text())
    assert set(labels) == {"models", "budgets", "labels_file", "token_heads", "checked"}
    assert (labels["models"], labels["budgets"]) == (["a", "b"], [100, 200, None])
    assert (labels["labels_file"], labels["token_heads"]) == ("labels.npy", "model")
    assert set(labels["checked"]) == {"embeddings.npy", "labels.npy"}
    matrix = np.load(tmp_path / "labels.npy", allow_pickle=False)
    assert matrix.dtype == np.float64 and matrix.shape == (N, M * B + M)
    np.testing.assert_array_equal(matrix[:, : M * B], data.quality.reshape(N, M * B))  # NaN marks the missing cell
    np.testing.assert_array_equal(matrix[:, M * B :], data.tokens)


def save_inline(data: TrainingData, directory: Path) -> Path:
    """The layout every checkpoint had before labels.npy: labels inline in labels.json, null + mask."""

    def nested(x: np.ndarray) -> Any:
        obj = x.astype(object)
        obj[np.isnan(x)] = None
        return obj.tolist()

    labels: dict[str, Any] = {
        "models": list(data.models),
        "budgets": list(data.budgets),
        "quality": nested(data.quality),
        "tokens": nested(data.tokens),
        "mask": (~np.isnan(data.quality)).astype(int).tolist(),
    }
    if data.query_ids is not None:
        labels["query_ids"] = list(data.query_ids)
    return write_dir(directory, labels, embeddings=data.embeddings)


@pytest.mark.parametrize("per_budget_tokens", [False, True])
def test_checkpoints_with_inline_labels_still_load_as_saved_ones(
    tmp_path: Path, make_data: MakeData, per_budget_tokens: bool
) -> None:
    _, data = make_data(n=40, per_budget_tokens=per_budget_tokens, missing=0.3, seed=8)
    data = TrainingData(*(data.embeddings, data.models, data.budgets, data.quality, data.tokens), query_ids=range(40))
    old = TrainingData.load(save_inline(data, tmp_path / "old"))
    new = TrainingData.load(data.save(tmp_path / "new"))
    for loaded in (old, new):
        np.testing.assert_array_equal(loaded.quality, data.quality)
        np.testing.assert_array_equal(loaded.tokens, data.tokens)
        np.testing.assert_array_equal(loaded.label_matrix(), data.label_matrix())
        assert (loaded.models, loaded.budgets, loaded.query_ids) == (data.models, data.budgets, data.query_ids)
    matrix = new.label_matrix()  # the memory-mapped file itself, shared by quality and tokens: nothing parsed or copied
    assert not matrix.flags.writeable and np.may_share_memory(matrix, new.quality)
    assert np.may_share_memory(matrix, new.tokens)


def test_saving_over_the_loaded_directory_keeps_its_label_map_valid(tmp_path: Path) -> None:
    TrainingData(**arrays(0)).save(tmp_path)
    loaded = TrainingData.load(tmp_path)
    expected = loaded.quality.copy()
    TrainingData(**arrays(1)).save(tmp_path)  # new files renamed into place; the old map keeps the old inode
    np.testing.assert_array_equal(loaded.quality, expected)
    np.testing.assert_array_equal(TrainingData.load(tmp_path).quality, arrays(1)["quality"])


def rewrite_labels_json(directory: Path, **changes: Any) -> None:
    labels = json.loads((directory / "labels.json").read_text())
    (directory / "labels.json").write_text(json.dumps({**labels, **changes}))


@pytest.mark.parametrize("name", ["../labels.npy", "sub/labels.npy", "labels.txt", 3])
def test_the_label_file_must_be_a_npy_beside_labels_json(tmp_path: Path, name: Any) -> None:
    TrainingData(**arrays()).save(tmp_path)
    rewrite_labels_json(tmp_path, labels_file=name)
    with pytest.raises(DataError, match=r"'labels_file' must name a \.npy file beside it"):
        TrainingData.load(tmp_path)


def test_a_missing_or_corrupt_label_file_is_a_checkpoint_error(tmp_path: Path) -> None:
    TrainingData(**arrays()).save(tmp_path)
    raw = (tmp_path / "labels.npy").read_bytes()
    (tmp_path / "labels.npy").write_bytes(raw[:-16])
    with pytest.raises(CheckpointError, match=r"labels\.npy is not a readable \.npy array"):
        TrainingData.load(tmp_path)
    np.save(tmp_path / "labels.npy", np.array([{"x": 1}] * N, dtype=object))
    with pytest.raises(CheckpointError, match="not a readable"):
        TrainingData.load(tmp_path)
    (tmp_path / "labels.npy").unlink()
    with pytest.raises(CheckpointError, match=r"missing .*labels\.npy, the label matrix labels\.json names"):
        TrainingData.load(tmp_path)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"token_heads": "budget"}, "'token_heads' must be one of ['model', 'arm']"),
        ({"token_heads": "arm"}, "must have shape (N, M*B + M*B) = (6, 12)"),
        ({"models": ["a", "b", "c"]}, "must have shape (N, M*B + M) = (6, 12) for 6 embeddings, 3 models"),
    ],
)
def test_a_label_matrix_of_another_layout_is_refused(tmp_path: Path, change: dict[str, Any], needle: str) -> None:
    TrainingData(**arrays()).save(tmp_path)
    rewrite_labels_json(tmp_path, **change)
    with pytest.raises(DataError) as info:
        TrainingData.load(tmp_path)
    assert needle in str(info.value)


def test_files_changed_since_save_are_checked_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import r2router_core.engine.training_data as td

    TrainingData(**arrays()).save(tmp_path)
    scans: list[int] = []
    real = td._all_finite
    monkeypatch.setattr(td, "_all_finite", lambda emb: scans.append(1) or real(emb))
    TrainingData.load(tmp_path)
    assert scans == []  # the files save() wrote, unchanged: only shapes are checked
    matrix = np.load(tmp_path / "labels.npy")
    matrix[0, 0] = 1.5
    np.save(tmp_path / "labels.npy", matrix)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        TrainingData.load(tmp_path)
    emb = np.load(tmp_path / "embeddings.npy")
    emb[2, 1] = np.nan
    np.save(tmp_path / "embeddings.npy", emb)
    with pytest.raises(DataError, match="NaN or inf"):
        TrainingData.load(tmp_path)
    assert scans == [1, 1]  # after each change every value was checked


def test_float16_saving_refuses_embeddings_beyond_its_range(tmp_path: Path) -> None:
    a = arrays()
    a["embeddings"][0, 0] = 1e6
    with pytest.raises(DataError, match="exceed the range of float16"):
        TrainingData(**a).save(tmp_path, embedding_dtype="float16")


def test_null_marks_missing_cells(tmp_path: Path) -> None:
    labels = good_labels()
    labels["quality"][2][1][0] = None
    data = TrainingData.load(write_dir(tmp_path, labels))
    assert np.isnan(data.quality[2, 1, 0])
    assert data.observed.sum() == N * M * B - 1


def test_mask_zero_marks_missing_cells(tmp_path: Path) -> None:
    labels = good_labels()
    mask = np.ones((N, M, B), dtype=int)
    mask[0, 0, 0] = 0
    mask[3, 1, 2] = 0
    labels["mask"] = mask.tolist()
    data = TrainingData.load(write_dir(tmp_path, labels))
    assert not data.observed[0, 0, 0] and not data.observed[3, 1, 2]
    assert data.observed.sum() == N * M * B - 2


def test_mask_also_hides_per_budget_tokens(tmp_path: Path) -> None:
    labels = good_labels()
    labels["tokens"] = np.full((N, M, B), 7.0).tolist()
    mask = np.ones((N, M, B), dtype=int)
    mask[1, 0, 2] = 0
    labels["mask"] = mask.tolist()
    data = TrainingData.load(write_dir(tmp_path, labels))
    assert np.isnan(data.tokens[1, 0, 2]) and np.isnan(data.quality[1, 0, 2])


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda lab: lab.update(mask=np.ones((N, M)).tolist()), "mask must have the shape"),
        (lambda lab: lab.update(mask=[[1, 0], [1]]), "mask"),
        (lambda lab: lab.update(quality=[[[0.5] * B] * M] * (N - 1)), "quality must have shape"),
        (lambda lab: lab.update(tokens=[[1.0] * (M + 1)] * N), "tokens must have shape"),
        (lambda lab: lab.update(quality=[[[1.5] * B] * M] * N), "[0, 1]"),
        (lambda lab: lab.update(quality=[[[-0.1] * B] * M] * N), "[0, 1]"),
        (lambda lab: lab.update(tokens=[[-3.0] * M] * N), ">= 0"),
        (lambda lab: lab.update(quality="high"), "numeric array"),
        (lambda lab: lab.update(quality=[[[0.5, 0.5], [0.5]]] * N), "numeric array"),
        (lambda lab: lab.pop("tokens"), "lacks ['tokens']"),
        (lambda lab: lab.update(models=["a", "a"]), "unique"),
        (lambda lab: lab.update(models="ab"), "models"),
        (lambda lab: lab.update(models=["a", 3]), "models"),
        (lambda lab: lab.update(budgets=[100, 0, None]), "budget"),
        (lambda lab: lab.update(budgets=[100, 200.0, None]), "200.0"),
        (lambda lab: lab.update(query_ids=["x"]), "query_ids has 1 entries"),
    ],
)
def test_inconsistent_labels_raise_data_error(tmp_path: Path, mutate: Any, needle: str) -> None:
    labels = good_labels()
    mutate(labels)
    with pytest.raises(DataError) as info:
        TrainingData.load(write_dir(tmp_path, labels))
    assert needle in str(info.value)


def test_mask_contradicting_null_quality_is_an_error(tmp_path: Path) -> None:
    labels = good_labels()
    labels["quality"][0][0][0] = None
    labels["mask"] = np.ones((N, M, B)).tolist()
    with pytest.raises(DataError, match="mask marks as observed"):
        TrainingData.load(write_dir(tmp_path, labels))


def test_nan_literal_in_labels_is_refused(tmp_path: Path) -> None:
    write_dir(tmp_path, good_labels())
    text = (tmp_path / "labels.json").read_text().replace('"tokens": [[', '"tokens": [[NaN, ', 1)
    (tmp_path / "labels.json").write_text(text)
    with pytest.raises(DataError, match=r"NaN; mark a missing cell with null"):
        TrainingData.load(tmp_path)


def test_corrupt_labels_json(tmp_path: Path) -> None:
    write_dir(tmp_path, good_labels())
    (tmp_path / "labels.json").write_text('{"models": ["a", "b"], "quality": [[', encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"labels\.json is not valid JSON"):
        TrainingData.load(tmp_path)
    (tmp_path / "labels.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(DataError, match="JSON object"):
        TrainingData.load(tmp_path)


def test_truncated_embeddings_npy(tmp_path: Path) -> None:
    write_dir(tmp_path, good_labels())
    raw = (tmp_path / "embeddings.npy").read_bytes()
    (tmp_path / "embeddings.npy").write_bytes(raw[: len(raw) - 20])
    with pytest.raises(CheckpointError, match=r"embeddings\.npy is not a readable \.npy array"):
        TrainingData.load(tmp_path)


def test_pickled_object_embeddings_are_not_unpickled(tmp_path: Path) -> None:
    write_dir(tmp_path, good_labels(), embeddings=np.array([{"x": 1}] * N, dtype=object))
    with pytest.raises(CheckpointError, match="not a readable"):
        TrainingData.load(tmp_path)


@pytest.mark.parametrize("name", ["embeddings.npy", "labels.json"])
def test_missing_files(tmp_path: Path, name: str) -> None:
    write_dir(tmp_path, good_labels())
    (tmp_path / name).unlink()
    with pytest.raises(CheckpointError, match=f"missing .*{name}"):
        TrainingData.load(tmp_path)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="missing"):
        TrainingData.load(tmp_path / "nope")


@pytest.mark.parametrize(
    ("embeddings", "needle"),
    [
        (np.full((N, D), np.nan), "NaN or inf"),
        (np.full((N, D), np.inf), "NaN or inf"),
        (np.ones(D), "shape (N, D)"),
        (np.ones((N + 1, D)), "for 7 embeddings"),
        (np.zeros((0, D)), "shape (N, D)"),
        (np.array([["a"] * D] * N), "not numeric"),
    ],
)
def test_bad_embeddings(embeddings: Any, needle: str) -> None:
    a = arrays()
    a["embeddings"] = embeddings
    with pytest.raises(DataError) as info:
        TrainingData(**a)
    assert needle in str(info.value)


def test_a_model_with_quality_but_no_token_label_is_refused() -> None:
    a = arrays()
    a["tokens"][:, 1] = np.nan
    with pytest.raises(DataError, match=r"'b'.*no observed token"):
        TrainingData(**a)


def test_per_budget_token_head_without_labels_is_refused() -> None:
    a = arrays()
    tokens = np.ones((N, M, B))
    tokens[:, 0, 2] = np.nan
    a["tokens"] = tokens
    with pytest.raises(DataError, match="'a' at budget uncapped"):
        TrainingData(**a)


def test_unobserved_quality_head_is_allowed() -> None:
    a = arrays()
    a["quality"][:, 1, 0] = np.nan  # model b never ran at budget 100
    data = TrainingData(**a)
    assert not data.observed[:, 1, 0].any()


def test_subset_rows_and_boolean_mask() -> None:
    data = TrainingData(**arrays(), query_ids=tuple("abcdef"))
    sub = data.subset([4, 1])
    np.testing.assert_array_equal(sub.embeddings, data.embeddings[[4, 1]])
    np.testing.assert_array_equal(sub.quality, data.quality[[4, 1]])
    assert sub.query_ids == ("e", "b")
    mask = np.array([True, False, True, False, False, True])
    by_mask = data.subset(mask)
    assert by_mask.query_ids == ("a", "c", "f")
    np.testing.assert_array_equal(by_mask.tokens, data.tokens[mask])
    with pytest.raises(DataError, match="row index 9"):
        data.subset([0, 9])
    with pytest.raises(DataError, match="boolean mask of 6"):
        data.subset([True, False])


def test_select_models_and_budgets_keeps_given_order() -> None:
    a = arrays()
    a["tokens"] = np.random.default_rng(1).uniform(1, 9, size=(N, M, B))
    data = TrainingData(**a)
    sel = data.select(models=["b"], budgets=[None, 100])
    assert sel.models == ("b",) and sel.budgets == (None, 100)
    np.testing.assert_array_equal(sel.quality, data.quality[:, [1]][:, :, [2, 0]])
    np.testing.assert_array_equal(sel.tokens, data.tokens[:, [1]][:, :, [2, 0]])
    per_model = TrainingData(**arrays()).select(models=["b", "a"])
    np.testing.assert_array_equal(per_model.tokens, arrays()["tokens"][:, [1, 0]])


def test_select_unknown_names() -> None:
    data = TrainingData(**arrays())
    with pytest.raises(UnknownModelError, match=r"'zz'.*\['a', 'b'\]"):
        data.select(models=["zz"])
    with pytest.raises(DataError, match=r"budget 300.*\[100, 200, None\]"):
        data.select(budgets=[300])
