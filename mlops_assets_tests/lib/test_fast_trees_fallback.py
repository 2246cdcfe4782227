"""Without lleaves/llvmlite (Python 3.14+ has no wheels of the pinned versions) scoring uses LightGBM."""

from __future__ import annotations

import sys

import lightgbm as lgb
import numpy as np

from mlops_assets.lib import fast_trees, scoring


def test_without_lleaves_scoring_falls_back_to_lightgbm_with_the_same_numbers(monkeypatch, tmp_path, caplog):
    """Python 3.14+ installs no lleaves/llvmlite (no wheels): compiled() keeps LightGBM's predictor."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(800, 5))
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 5, "verbose": -1, "seed": 1},
        lgb.Dataset(x, (x[:, 0] + rng.normal(size=800) > 0).astype(float)),
        num_boost_round=20,
    )
    model = scoring.ServedModel("late_risk", "1", booster, tuple(f"f{i}" for i in range(5)), {})
    monkeypatch.setitem(sys.modules, "lleaves", None)  # `import lleaves` raises ImportError, as on 3.14
    monkeypatch.setattr(fast_trees, "_AVAILABLE", None)
    with caplog.at_level("WARNING", logger=fast_trees.__name__):
        plain = model.compiled(shap=True, cache_dir=tmp_path)
    assert not fast_trees.available()
    assert plain.forest is None and plain.shap is None and not list(tmp_path.iterdir())
    assert "LightGBM" in caplog.text and "3.11-3.13" in caplog.text
    assert np.array_equal(plain.predict(x), booster.predict(x))
