"""Explanations of a model's predictions: TreeSHAP contributions, feature importance, and the reason
sentences ("assignee already had 14 open tasks raises the risk") that the evaluation, the batch scores
and the online service show.

Pure functions; no dagster, no matplotlib, no scikit-learn: serving imports this module for
`top_reasons_arrays` (numpy only). pandas and lightgbm are imported inside the functions that need them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import polars as pl

if TYPE_CHECKING:
    import lightgbm
    import pandas as pd

BASE_VALUE_COLUMN = "base_value"


# --------------------------------------------------------------------------------------------------
# explanations


def shap_contributions(booster: lightgbm.Booster, X: pd.DataFrame, tables: bool = False) -> pd.DataFrame:
    """Per-row feature contributions (TreeSHAP, LightGBM's `pred_contrib=True`) plus a base_value column.

    They add up to the raw score: log-odds for late_risk, the training target (days, or log1p days) for
    cycle_time. With `tables`, they come from the booster's SHAP tables (``fast_trees.compile_shap``: the same
    values within ~1e-14) when its trees fit them, built into the model cache (``fast_trees.default_cache_dir``)
    if not there yet: the batch scores and the online service of the same model then find them there.
    """
    import pandas as pd

    features = booster.feature_name()
    missing = [name for name in features if name not in X.columns]
    if missing:
        raise ValueError(f"X lacks the booster's feature column(s) {missing}")
    explainer = _shap_tables(booster) if tables else None
    if explainer is not None:
        # the values LightGBM reads: a categorical column as its category codes, -1 (unseen, missing) as NaN
        contribs = explainer.contributions(np.column_stack([_column_values(X[name])[0] for name in features]))
    else:
        contribs = np.asarray(booster.predict(X[features], pred_contrib=True))
    if contribs.shape[1] != len(features) + 1:
        raise ValueError(
            f"expected {len(features) + 1} contribution columns (one model output), got "
            f"{contribs.shape[1]}; multiclass boosters are not supported"
        )
    return pd.DataFrame(contribs, columns=[*features, BASE_VALUE_COLUMN], index=X.index)


def _shap_tables(booster: lightgbm.Booster) -> Any:
    """The booster's ``fast_trees.CompiledShap`` from the model cache (built there if needed); None when its
    trees are too big for tables or native code is not available here.
    """
    from mlops_assets.lib import fast_trees

    if not fast_trees.available():
        return None
    return fast_trees.shap_tables(booster, booster.model_to_string())


def feature_importance_table(
    booster: lightgbm.Booster, X: pd.DataFrame, contribs: pd.DataFrame | None = None, tables: bool = False
) -> pl.DataFrame:
    """Features by mean |SHAP| on X (share of the total) with LightGBM's total split gain; largest first.

    Pass `contribs` from `shap_contributions` to avoid computing them twice; `tables` as there.
    """
    if contribs is None:
        contribs = shap_contributions(booster, X, tables=tables)
    features = booster.feature_name()
    mean_abs = (
        np.abs(contribs[features].to_numpy(dtype=float)).mean(axis=0)
        if len(contribs)
        else np.zeros(len(features))
    )
    total = mean_abs.sum()
    return pl.DataFrame(
        {
            "feature": features,
            "mean_abs_shap": mean_abs,
            "share": mean_abs / total if total > 0 else [None] * len(features),
            "gain": booster.feature_importance(importance_type="gain").astype(float),
        },
        schema={"feature": pl.String, "mean_abs_shap": pl.Float64, "share": pl.Float64, "gain": pl.Float64},
    ).sort("mean_abs_shap", descending=True, maintain_order=True)


class Phrase(NamedTuple):
    """How a feature reads in a reason: `template` with {value} (and {s} for a plural 's'), the value's
    `kind` (how it is rounded and written), the text for a missing value and, optionally, for zero.
    """

    template: str
    kind: str = "number"
    missing: str | None = None
    zero: str | None = None


RISK_EFFECTS = ("raises the risk", "lowers the risk")
CYCLE_TIME_EFFECTS = ("adds to the expected time to finish", "cuts the expected time to finish")

# Extend freely; a feature not listed here reads as "<feature name in words> (<value>)".
FEATURE_PHRASES: dict[str, Phrase] = {
    # a category the model did not see in training arrives as missing, like a null one
    "project": Phrase("project {value}", "text", "a new or unknown project"),
    "source": Phrase("tracked in {value}", "text", "an unknown tracker"),
    "type": Phrase("task type '{value}'", "text", "a new or unknown task type"),
    "priority": Phrase("{value} priority", "text", "no priority set"),
    "priority_ordinal": Phrase("{value} priority", "priority", "no priority set"),
    "story_points": Phrase("{value} story point{s}", "number", "no story points"),
    "original_estimate_h": Phrase("an estimate of {value}", "hours", "no time estimate"),
    "title_length": Phrase("a {value}-character title", "count", zero="an empty title"),
    "description_length": Phrase("a {value}-character description", "count", zero="no description"),
    "n_labels": Phrase("{value} label{s}", "count", zero="no labels"),
    "n_subtasks": Phrase("{value} subtask{s}", "count", zero="no subtasks"),
    "n_links": Phrase("{value} linked issue{s}", "count", zero="no linked issues"),
    "has_deadline": Phrase("a deadline was set", "flag", zero="no deadline was set"),
    "deadline_horizon_days": Phrase("deadline {value} after creation", "days", "no deadline"),
    "created_weekday": Phrase("created on a {value}", "weekday"),
    "created_hour": Phrase("created at {value}", "hour"),
    "created_month": Phrase("created in {value}", "month"),
    "created_day_of_year": Phrase("created on day {value} of the year", "count"),
    "project_late_rate": Phrase(
        "the project's history of {value} late tasks", "percent", "no deadline track record in the project"
    ),
    "project_n_outcomes": Phrase(
        "{value} past deadline{s} in the project", "count", zero="no past deadlines in the project"
    ),
    "project_n_resolved": Phrase(
        "the project had finished {value} task{s} before",
        "count",
        zero="a project with no finished tasks yet",
    ),
    "project_median_cycle_days": Phrase(
        "the project's typical {value} to finish", "days", "no finished tasks in the project yet"
    ),
    "assignee_late_rate": Phrase(
        "the assignee's history of {value} late tasks", "percent", "no assignee deadline track record"
    ),
    "assignee_n_outcomes": Phrase(
        "{value} past deadline{s} for the assignee",
        "count",
        "no assignee",
        "no past deadlines for the assignee",
    ),
    "assignee_n_resolved": Phrase(
        "the assignee had finished {value} task{s} before",
        "count",
        "no assignee",
        "the assignee had finished no tasks before",
    ),
    "assignee_median_cycle_days": Phrase(
        "the assignee's typical {value} to finish", "days", "no finished tasks by the assignee yet"
    ),
    "assignee_open_tasks": Phrase(
        "assignee already had {value} open task{s}",
        "count",
        "no assignee",
        "assignee had no other open tasks",
    ),
    "project_open_tasks": Phrase("the project already had {value} open task{s}", "count"),
    # the task as it stands at the prediction time (features.build_features at= / asof)
    "age_days": Phrase("open for {value}", "days"),
    "days_to_deadline": Phrase("{value} left to the deadline", "days", "no deadline"),
    "has_assignee": Phrase("an assignee is set", "flag", zero="nobody is assigned"),
    "status_stage": Phrase("status {value}", "status"),
    "days_in_status": Phrase("{value} in its current status", "days"),
    "days_in_progress": Phrase("in progress for {value}", "days", zero="not in progress"),
    "n_status_changes": Phrase("{value} status change{s}", "count", zero="no status change yet"),
    "n_reopenings": Phrase("reopened {value}", "times", zero="never reopened"),
    "n_reassignments": Phrase("reassigned {value}", "times", zero="never reassigned"),
    "n_priority_changes": Phrase("priority changed {value}", "times", zero="priority never changed"),
    "n_deadline_moves": Phrase("deadline moved {value}", "times", zero="deadline never moved"),
    "deadline_moved_days": Phrase("deadline moved {value}", "shift", zero="deadline not moved"),
    "n_comments_so_far": Phrase("{value} comment{s} so far", "count", zero="no comments yet"),
}

# Features that say the same thing as another: their contributions are added to that feature's before
# ranking (SHAP values are additive), so a reason list never says "high priority" twice, or both ways.
FEATURE_ALIASES: dict[str, str] = {"priority_ordinal": "priority"}

_PRIORITY_NAMES = {1: "lowest", 2: "low", 3: "medium", 4: "high", 5: "highest"}
# ISO weekday numbers, as polars' dt.weekday() gives them
_WEEKDAY_NAMES = dict(enumerate("Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split(), start=1))
_MONTH_NAMES = dict(
    enumerate(
        "January February March April May June July August September October November December".split(),
        start=1,
    )
)


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:g}"


def _bucket(values: np.ndarray, kind: str) -> np.ndarray:
    """Round values to what their text will show, so equal texts share one key (NaN stays NaN)."""
    if kind == "percent":
        return np.round(values * 100.0)
    if kind in ("hours", "number"):
        magnitude = np.abs(values)
        return np.where(
            magnitude < 10,
            np.round(values, 1),
            np.where(magnitude < 100, np.round(values), np.round(values, -1)),
        )
    if kind in ("count", "days", "priority", "weekday", "month", "hour", "times", "shift", "status"):
        return np.round(values)
    if kind == "flag":
        return np.where(np.isnan(values), np.nan, values != 0)
    raise ValueError(
        f"unknown phrase kind {kind!r}; use one of percent, hours, number, count, days, "
        "priority, weekday, month, hour, times, shift, status, flag, text"
    )


def _value_text(key: float, kind: str) -> tuple[str, str]:
    """(text, plural suffix) of a bucketed value."""
    names = {"priority": _PRIORITY_NAMES, "weekday": _WEEKDAY_NAMES, "month": _MONTH_NAMES}.get(kind)
    plural = "" if key == 1 else "s"
    if names is not None and int(key) in names:
        return names[int(key)], plural
    if kind == "percent":
        return f"{key:.0f}%", plural
    if kind == "days":
        return ("under a day" if key == 0 else f"{_number(key)} day{plural}"), plural
    if kind == "hours":
        return f"{_number(key)} hour{plural}", plural
    if kind == "times":  # "reassigned twice"
        return {1: "once", 2: "twice"}.get(int(key), f"{_number(key)} times"), plural
    if kind == "shift":  # "deadline moved out by 9 days"
        days = f"{_number(abs(key))} day{'' if abs(key) == 1 else 's'}"
        return (f"out by {days}" if key > 0 else f"in by {days}"), plural
    if kind == "status":
        return {0: "to do", 1: "in progress", 2: "in review", 3: "done"}.get(int(key), _number(key)), plural
    if kind == "hour":
        return f"{int(key) % 24:02d}:00", plural
    return _number(key), plural


def _phrase_for(feature: str, phrases: Mapping[str, Phrase]) -> Phrase:
    if feature in phrases:
        return phrases[feature]
    words = feature.replace("_", " ").strip()
    return Phrase(words + " ({value})", "number", words + " not recorded")


def _description(phrase: Phrase, feature: str, key: float, labels: Sequence[str] | None) -> str:
    """The words for one bucketed value of a feature (without the effect)."""
    if np.isnan(key):
        return phrase.missing or f"{feature.replace('_', ' ')} not recorded"
    if phrase.kind == "flag":
        truthy = labels[int(key)].lower() not in ("false", "0", "no") if labels is not None else key != 0
        return phrase.template if truthy else (phrase.zero or f"not: {phrase.template}")
    if labels is not None:
        return phrase.template.format(value=labels[int(key)], s="s")
    if key == 0 and phrase.zero:
        return phrase.zero
    text, plural = _value_text(key, phrase.kind)
    return phrase.template.format(value=text, s=plural)


def _column_values(values: Any) -> tuple[np.ndarray, list[str] | None]:
    """A feature column as floats (NaN for missing), or as float codes into labels for text/categories."""
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy().astype(float)
        codes[codes < 0] = np.nan
        return codes, [str(label) for label in series.cat.categories]
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=float, na_value=np.nan), None
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    codes = codes.astype(float)
    codes[codes < 0] = np.nan
    return codes, [str(label) for label in uniques]


def _top_contributions(contribs: pd.DataFrame, features: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """(feature index, contribution) of the k largest |contributions| of each row, largest first, each (n, k).

    An aliased feature's contribution counts as its target's. k passes of argmax over a float32 |matrix|:
    several times faster than a row-wise argpartition, whose per-row overhead dominates on ~20 columns.
    """
    # a view, not a copy, when the frame is one float block as shap_contributions makes it
    matrix = contribs.to_numpy(dtype=float)
    positions = [contribs.columns.get_loc(name) for name in features]
    if positions == list(range(positions[0], positions[0] + len(positions))):
        matrix = matrix[:, positions[0] : positions[0] + len(positions)]
    else:
        matrix = matrix[:, positions]
    return _top_contributions_array(matrix, features, k)


def _reason_codes(
    top: np.ndarray,
    chosen: np.ndarray,
    features: list[str],
    keys_of: Callable[[int, np.ndarray], tuple[np.ndarray, list[str] | None]],
    effects: tuple[str, str],
    phrases: Mapping[str, Phrase],
) -> tuple[np.ndarray, list[str]]:
    """The sentences of the chosen contributions, each built once: (codes, vocabulary), codes of the
    shape of `top` indexing `vocabulary`, -1 where the contribution is zero. `keys_of(feature index,
    rows)` gives that feature's values at those rows and its category labels (None: not categorical);
    the frame and the numpy callers differ only there.
    """
    n_rows, k_used = top.shape
    flat_features, flat_contribs = top.reshape(-1), chosen.reshape(-1)
    codes = np.full(flat_features.shape, -1, dtype=np.int64)
    vocabulary: list[str] = []
    for feature_index in np.unique(flat_features):
        cells = np.nonzero((flat_features == feature_index) & (flat_contribs != 0.0))[0]
        if len(cells) == 0:
            continue
        name = features[feature_index]
        phrase = _phrase_for(name, phrases)
        keys, labels = keys_of(int(feature_index), cells // k_used)
        if labels is None and phrase.kind != "text":
            keys = _bucket(keys, phrase.kind)
        raises = flat_contribs[cells] > 0
        for mask, effect in ((raises, effects[0]), (~raises, effects[1])):
            if not mask.any():
                continue
            # np.unique puts all NaN (missing) keys into one
            unique_keys, inverse = np.unique(keys[mask], return_inverse=True)
            codes[cells[mask]] = len(vocabulary) + inverse.reshape(-1)
            vocabulary.extend(f"{_description(phrase, name, key, labels)} {effect}" for key in unique_keys)
    return codes.reshape(n_rows, k_used), vocabulary


def top_reasons_table(
    contribs: pd.DataFrame,
    X: pd.DataFrame,
    k: int = 3,
    effects: tuple[str, str] = RISK_EFFECTS,
    phrases: Mapping[str, Phrase] | None = None,
) -> pl.DataFrame:
    """The k largest contributions of each row as sentences, columns reason_1..reason_k (null if a row
    has fewer than k non-zero contributions), in the row order of `contribs`.

    `contribs` comes from `shap_contributions` (its base_value column is ignored); X holds the feature
    values of the same rows. `effects` is the (positive, negative) wording: RISK_EFFECTS for late_risk,
    CYCLE_TIME_EFFECTS for cycle_time. `phrases` overrides or extends FEATURE_PHRASES.
    Strings are built once per distinct (feature, direction, rounded value), not per row.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if len(contribs) != len(X):
        raise ValueError(f"contribs has {len(contribs)} rows but X has {len(X)}")
    phrases = {**FEATURE_PHRASES, **(phrases or {})}
    features = [column for column in contribs.columns if column != BASE_VALUE_COLUMN]
    missing = [name for name in features if name not in X.columns]
    if missing:
        raise ValueError(f"X lacks the value column(s) {missing} of these contributions")
    if not features:
        raise ValueError("contribs has no feature columns; pass the output of shap_contributions")
    n_rows, k_used = len(contribs), min(k, len(features))
    top, chosen = _top_contributions(contribs, features, min(k_used + _SPARE_REASONS, len(features)))

    def keys_of(feature_index: int, rows: np.ndarray) -> tuple[np.ndarray, list[str] | None]:
        values, labels = _column_values(X[features[feature_index]])
        return values[rows], labels

    codes, vocabulary = _reason_codes(top, chosen, features, keys_of, effects, phrases)
    codes = _first_distinct(codes, vocabulary, k_used)
    words = pl.Series("reason", vocabulary, dtype=pl.String)
    columns = {}
    for position in range(k):
        if position < k_used:
            column_codes = pl.Series(codes[:, position])
            columns[f"reason_{position + 1}"] = words.gather(
                pl.select(pl.when(column_codes >= 0).then(column_codes)).to_series()
            )
        else:
            columns[f"reason_{position + 1}"] = pl.Series([None] * n_rows, dtype=pl.String)
    return pl.DataFrame(columns)


def top_reasons(
    contribs_row: Mapping[str, float] | pd.Series,
    feature_values: Mapping[str, Any] | pd.Series,
    k: int = 3,
    effects: tuple[str, str] = RISK_EFFECTS,
    phrases: Mapping[str, Phrase] | None = None,
) -> list[str]:
    """The k largest contributions of one task in words, e.g. "assignee already had 14 open tasks raises
    the risk". For many rows use `top_reasons_table`, which builds each distinct sentence once.
    """
    import pandas as pd

    contribs = pd.DataFrame([dict(contribs_row)])
    values = pd.DataFrame([{name: dict(feature_values).get(name) for name in contribs.columns}])
    table = top_reasons_table(contribs, values, k=k, effects=effects, phrases=phrases)
    return [reason for reason in table.row(0) if reason is not None]


# Candidates beyond k: several features can say the same words ("no assignee" for each assignee history
# feature of an unassigned task); a row's reasons are its first k distinct sentences.
_SPARE_REASONS = 4


def _first_distinct(codes: np.ndarray, vocabulary: list[str], k: int) -> np.ndarray:
    """(n, k) sentence codes: each row's first k distinct sentences, in order; -1 after them."""
    first: dict[str, int] = {}
    canonical = np.array(
        [first.setdefault(text, i) for i, text in enumerate(vocabulary)] or [0], dtype=np.int64
    )
    codes = np.where(codes >= 0, canonical[np.maximum(codes, 0)], -1)
    n = len(codes)
    out = np.full((n, k), -1, dtype=np.int64)
    filled = np.zeros(n, dtype=np.int64)
    rows = np.arange(n)
    for j in range(codes.shape[1]):
        c = codes[:, j]
        seen = (out == c[:, None]).any(axis=1)
        take = (c >= 0) & ~seen & (filled < k)
        out[rows[take], filled[take]] = c[take]
        filled += take
    return out


def _top_contributions_array(
    matrix: np.ndarray, features: list[str], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(feature index, contribution) of the k largest |contributions| of each row of a (n, len(features))
    float matrix, largest first, each (n, k); `_top_contributions` takes the columns out of a frame.
    """
    strength = np.empty(matrix.shape, dtype=np.float32)
    np.abs(matrix, out=strength, casting="same_kind")
    merged: dict[int, np.ndarray] = {}
    for alias, target in FEATURE_ALIASES.items():
        if alias in features and target in features:
            alias_index, target_index = features.index(alias), features.index(target)
            merged[target_index] = matrix[:, target_index] + matrix[:, alias_index]
            strength[:, target_index] = np.abs(merged[target_index])
            strength[:, alias_index] = 0.0
            merged[alias_index] = np.zeros(len(matrix))
    rows = np.arange(len(matrix))
    top = np.empty((len(matrix), k), dtype=np.intp)
    chosen = np.empty((len(matrix), k), dtype=float)
    for position in range(k):
        index = strength.argmax(axis=1)  # ties: the lower feature index
        top[:, position] = index
        chosen[:, position] = matrix[rows, index]
        strength[rows, index] = -1.0
    for feature_index, combined in merged.items():
        hit = top == feature_index
        chosen[hit] = np.broadcast_to(combined[:, None], top.shape)[hit]
    return top, chosen


def top_reasons_arrays(
    contribs: np.ndarray,
    values: np.ndarray,
    features: Sequence[str],
    category_levels: Mapping[str, Sequence[str]] | None = None,
    k: int = 3,
    effects: tuple[str, str] = RISK_EFFECTS,
    phrases: Mapping[str, Phrase] | None = None,
) -> list[list[str | None]]:
    """`top_reasons_table` on numpy input, without pandas or polars: k lists (reason_1..reason_k) of n texts.

    `contribs` is LightGBM's ``pred_contrib`` output (n, len(features) + 1; the last column, the base
    value, is ignored); `values` the matrix the model scored (n, len(features)), a category as its
    position in ``category_levels[name]`` (NaN: missing). Same sentences as top_reasons_table given the
    same contributions and values (tested); cheap enough for one row (online scoring).
    """
    features = list(features)
    levels = {name: [str(label) for label in labels] for name, labels in (category_levels or {}).items()}
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not features:
        raise ValueError("no features: pass the booster's feature names")
    if contribs.ndim != 2 or contribs.shape[1] not in (len(features), len(features) + 1):
        raise ValueError(
            f"contribs has shape {contribs.shape}; expected (n, {len(features) + 1}) for {len(features)} features"
        )
    if values.shape != (contribs.shape[0], len(features)):
        raise ValueError(f"values has shape {values.shape}; expected ({contribs.shape[0]}, {len(features)})")
    phrases = {**FEATURE_PHRASES, **(phrases or {})}
    n_rows, k_used = len(contribs), min(k, len(features))
    top, chosen = _top_contributions_array(
        np.asarray(contribs[:, : len(features)], dtype=float),
        features,
        min(k_used + _SPARE_REASONS, len(features)),
    )

    if n_rows <= _FEW_ROWS:  # online requests: per row in Python, no per-feature numpy passes
        return _few_rows_reasons(top, chosen, values, features, levels, k, k_used, effects, phrases)

    def keys_of(feature_index: int, rows: np.ndarray) -> tuple[np.ndarray, list[str] | None]:
        return np.asarray(values[rows, feature_index], dtype=float), levels.get(features[feature_index])

    codes, vocabulary = _reason_codes(top, chosen, features, keys_of, effects, phrases)
    codes = _first_distinct(codes, vocabulary, k_used)
    columns: list[list[str | None]] = []
    for position in range(k):
        if position < k_used:
            columns.append([vocabulary[c] if c >= 0 else None for c in codes[:, position].tolist()])
        else:
            columns.append([None] * n_rows)
    return columns


# Up to this many rows, top_reasons_arrays words each row on its own: the vectorised path's numpy passes
# per distinct feature cost ~0.3 ms whatever the row count, ten times one row's sentences.
_FEW_ROWS = 8


def _few_rows_reasons(
    top: np.ndarray,
    chosen: np.ndarray,
    values: np.ndarray,
    features: list[str],
    levels: Mapping[str, list[str]],
    k: int,
    k_used: int,
    effects: tuple[str, str],
    phrases: Mapping[str, Phrase],
) -> list[list[str | None]]:
    """:func:`top_reasons_arrays` row by row: the same sentences as its `_reason_codes` + `_first_distinct`
    (each row's first k distinct sentences of its non-zero contributions, values bucketed the same way).
    """
    columns: list[list[str | None]] = [[] for _ in range(k)]
    for row in range(len(top)):
        texts: list[str] = []
        for feature_index, contribution in zip(top[row].tolist(), chosen[row].tolist(), strict=True):
            if len(texts) == k_used:
                break
            if contribution == 0.0:
                continue
            name = features[feature_index]
            phrase, labels = _phrase_for(name, phrases), levels.get(name)
            key = np.asarray(values[row, feature_index : feature_index + 1], dtype=float)
            if labels is None and phrase.kind != "text":
                key = _bucket(key, phrase.kind)
            text = f"{_description(phrase, name, key[0], labels)} {effects[0] if contribution > 0 else effects[1]}"
            if text not in texts:
                texts.append(text)
        for position in range(k):
            columns[position].append(texts[position] if position < len(texts) else None)
    return columns
