"""Fast exact predictions and SHAP contributions of a LightGBM booster, same numbers as LightGBM.

Two tools, both built once per model version and proven equal to LightGBM on real models (tests):

* :func:`compile_forest`: the booster compiled to native code with ``lleaves`` (LLVM), cached on
  disk by a hash of the model text. The predictions are **bit-identical** to ``Booster.predict``:
  lleaves sums the trees of a row block by block (34 trees a block, for the instruction cache) and
  adds each block's sum to the row's total, which rounds differently from LightGBM's one running
  sum; :func:`_ordered_instruction_block` makes every block continue the row's running sum instead,
  so the additions happen in LightGBM's order (same speed). 1,463 trees of 8 leaves: about 4 us of
  CPU a row instead of 100+ us; compiling takes 15-30 s once per version (then a cache hit, ms).
* :func:`compile_shap`: LightGBM's ``pred_contrib`` (path-dependent TreeSHAP) from tables. A tree's
  TreeSHAP values depend on a row only through the decision taken at each internal node, so a tree
  of ``k`` internal nodes has at most ``2**k`` different answers. They are computed once per model
  for all patterns at a time (:func:`_tree_table`, a port of LightGBM's ``Tree::TreeSHAP`` over numpy
  arrays, tested against the Shapley definition; ~2-4 ms a tree of 8-10 nodes) and kept on disk. One
  small kernel (:data:`_SHAP_KERNEL_IR`, LLVM IR compiled by llvmlite once per process in ~50 ms, for
  any model) then takes each row's decisions at a tree's nodes (LightGBM's rules for missing values
  and categories) as an index into that tree's table and adds the row of the table to the features.
  Same algorithm and inputs, summed in LightGBM's order of trees: within ~1e-14 of ``pred_contrib``
  (tested). The champion of a 1M-task run (907 trees of 9 leaves, 1.6M table entries): 21 us a row
  on one core where ``pred_contrib`` takes ~1,100 us. Limits :data:`MAX_TABLE_NODES` and
  :data:`MAX_TABLE_ENTRIES` (:func:`shap_table_nodes`); past them callers use ``pred_contrib``.

The compiled forests and the SHAP tables are cached on disk (:func:`default_cache_dir`), keyed by the
model text, the lleaves/llvmlite versions and the host CPU. Both functions take a booster's model text
(``Booster.model_to_string()``). LightGBM reads a dense row's values within 1e-35 of zero as zero;
lleaves does not, so both tools zero them first (:func:`_as_lightgbm_reads`).

lleaves 1.3 needs llvmlite < 0.45 (its legacy pass manager), whose wheels stop at CPython 3.13
(pyproject.toml installs them there): :func:`available` says whether they are importable, and
callers fall back to LightGBM's own predictor (the same numbers, slower) when they are not.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# SHAP tables: a tree of k internal nodes has 2**k patterns; past these LightGBM's pred_contrib is used
MAX_TABLE_NODES = 12  # internal nodes per tree (4,096 patterns)
# patterns x features, summed over the trees: 256 MB of float64. 16M before 2026-12-05: a late_risk champion of
# the 1M graph (463 trees of 13 leaves) needed 16.9M, so its reasons took LightGBM's pred_contrib, 22.7 s for
# 176k open tasks; its tables build in 6.0 s and explain 20,000 rows in 0.42 s (pred_contrib: 6.4 s).
MAX_TABLE_ENTRIES = 32_000_000
_ZERO = 1e-35  # LightGBM's kZeroThreshold
_log = logging.getLogger(__name__)
_AVAILABLE: bool | None = None


def available() -> bool:
    """True when lleaves and llvmlite import (CPython 3.11-3.13); else scoring uses LightGBM, logged once."""
    global _AVAILABLE
    if _AVAILABLE is None:
        try:
            import lleaves  # noqa: F401
            import llvmlite.binding  # noqa: F401
        except ImportError as exc:
            _AVAILABLE = False
            _log.warning(
                "the compiled scorer is off (%s; lleaves 1.3 needs llvmlite<0.45, which has wheels for "
                "Python 3.11-3.13 only): scoring uses LightGBM's predictor, same numbers, slower",
                exc,
            )
        else:
            _AVAILABLE = True
    return _AVAILABLE


# ---------------------------------------------------------------------------------------------------
# compiled predictions (lleaves)


def _ordered_instruction_block(
    instr_block_idx, forest, root_func, tree_funcs, setup_block, next_block, eval_obj_func, use_fp64
):
    """Lleaves 1.3's ``_populate_instruction_block`` with LightGBM's order of additions.

    Copied from lleaves (MIT licence, lleaves/compiler/codegen/codegen.py); the one change: a block
    after the first starts from the row's stored running sum and adds its trees to it one by one,
    instead of adding its own sum (``(t0 + ... + t33) + (t34 + ...)`` rounds differently from
    ``((t0 + t1) + ...) + t34``, LightGBM's order).
    """
    from lleaves.compiler.codegen import codegen as cg
    from llvmlite import ir

    data_arr, out_arr, start_index, end_index = root_func.args
    builder = ir.IRBuilder(setup_block)
    start_index = builder.zext(start_index, cg.LONG)
    end_index = builder.zext(end_index, cg.LONG)
    loop_iter = builder.alloca(cg.LONG, 1, "loop-idx")
    builder.store(start_index, loop_iter)
    condition_block = root_func.append_basic_block("loop-condition")
    builder.branch(condition_block)

    builder = ir.IRBuilder(condition_block)
    comp = builder.icmp_signed("<", builder.load(loop_iter), end_index)
    core_block = root_func.append_basic_block("loop-core")
    builder.cbranch(comp, core_block, next_block)

    builder = ir.IRBuilder(core_block)
    args = []
    loop_iter_reg = builder.load(loop_iter)
    n_args = ir.Constant(cg.LONG, forest.n_args)
    iter_mul_nargs = builder.mul(loop_iter_reg, n_args)
    idx = (builder.add(iter_mul_nargs, cg.lconst(i)) for i in range(forest.n_args))
    raw_ptrs = [builder.gep(root_func.args[0], (c,)) for c in idx]
    for feature, ptr in zip(forest.features, raw_ptrs, strict=True):
        el = builder.load(ptr)
        if feature.is_categorical:
            is_nan = builder.fcmp_ordered("uno", el, cg.get_fdtype_const(0.0, use_fp64))
            el = builder.select(is_nan, cg.iconst(-(2**31)), builder.fptosi(el, cg.INT_CAT))
        args.append(el)
    res_idx = builder.mul(cg.lconst(forest.n_classes), loop_iter_reg)
    results_ptr = [
        builder.gep(out_arr, (builder.add(res_idx, cg.lconst(class_idx)),))
        for class_idx in range(forest.n_classes)
    ]
    if instr_block_idx > 0:  # continue the running sum (the change)
        results = [builder.load(ptr) for ptr in results_ptr]
    else:
        results = [cg.get_fdtype_const(0.0, use_fp64) for _ in range(forest.n_classes)]
    for func in tree_funcs:
        tree_res = builder.call(func.llvm_function, args)
        results[func.class_id] = builder.fadd(results[func.class_id], tree_res)
    if eval_obj_func:
        results = cg._populate_objective_func_block(
            builder, results, forest.objective_func, forest.objective_func_config, forest.raw_score,
            forest.average_output, len(forest.trees), use_fp64,
        )  # fmt: skip
    for result, result_ptr in zip(results, results_ptr, strict=True):
        builder.store(result, result_ptr)
    builder.store(builder.add(loop_iter_reg, cg.lconst(1)), loop_iter)
    builder.branch(condition_block)


def _patch_lleaves() -> None:
    from importlib.metadata import version

    from lleaves.compiler.codegen import codegen

    if version("lleaves") != "1.3.0":
        raise RuntimeError(
            f"fast_trees patches lleaves 1.3.0's code generator; found lleaves {version('lleaves')}"
        )
    codegen._populate_instruction_block = _ordered_instruction_block


@dataclass
class CompiledForest:
    """A booster compiled to native code; ``predict`` gives what ``Booster.predict`` gives, bit for bit."""

    model: Any  # lleaves.Model, compiled
    n_features: int
    cache_file: Path

    def predict(self, matrix: np.ndarray, n_jobs: int = 1) -> np.ndarray:
        if matrix.ndim != 2 or matrix.shape[1] != self.n_features:
            raise ValueError(f"matrix has shape {matrix.shape}; the model takes {self.n_features} columns")
        if len(matrix) == 0:
            return np.empty(0)
        matrix = _as_lightgbm_reads(matrix)
        out = np.empty(
            len(matrix)
        )  # the compiled function called directly (lleaves' checks cost ~20 us a call)
        _run(self.model._c_entry_func, matrix, out, n_jobs)
        return out


def _pointer(array: np.ndarray) -> Any:
    import ctypes

    return array.ctypes.data_as(ctypes.POINTER(ctypes.c_double))


_BLOCK_ROWS = 16_384


def _run(entry: Any, matrix: np.ndarray, out: np.ndarray, n_jobs: int) -> None:
    """Call a compiled ``(data, out, start, end)`` function over all rows, in blocks shared by `n_jobs`
    threads (the code runs without the GIL); small blocks keep both threads busy to the end even when
    one of them is descheduled by other work on the machine.
    """
    n = len(matrix)
    data, target = _pointer(matrix), _pointer(out)
    if n_jobs <= 1 or n <= _BLOCK_ROWS:
        entry(data, target, 0, n)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n_jobs) as pool:
        list(
            pool.map(
                lambda start: entry(data, target, start, min(start + _BLOCK_ROWS, n)),
                range(0, n, _BLOCK_ROWS),
            )
        )


def _as_lightgbm_reads(matrix: np.ndarray) -> np.ndarray:
    """C-contiguous float64 with the values LightGBM drops from a dense row (|x| <= 1e-35) set to 0.0."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        tiny = np.abs(matrix) <= _ZERO
    tiny &= matrix != 0.0
    return np.where(tiny, 0.0, matrix) if tiny.any() else matrix


def _host_key() -> str:
    import llvmlite.binding as llvm

    llvm.initialize()
    llvm.initialize_native_target()
    try:
        features = llvm.get_host_cpu_features().flatten()
    except RuntimeError:
        features = ""
    return f"{llvm.get_process_triple()}|{llvm.get_host_cpu_name()}|{features}"


def default_cache_dir() -> Path:
    """Where compiled models are kept: ``$MLOPS_MODEL_CACHE`` if set (on a cluster, a shared folder, so
    a new champion is compiled once, not once per worker: the key names the CPU, so machines of
    different CPUs never share an object file), else ``$XDG_CACHE_HOME`` or ``~/.cache``, under
    mlops_assets/forests.
    """
    from mlops_assets.lib import settings

    if settings.is_set("MLOPS_MODEL_CACHE"):
        return Path(settings.env("MLOPS_MODEL_CACHE"))
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")  # the XDG standard's, not ours
    return Path(base) / "mlops_assets" / "forests"


# Compiling costs about 4 ms of CPU per leaf here (measured: 11.7k leaves 42-60 s; 110k leaves, the two
# champions trained on 1M tasks, about 450 s and 6.5 GB of peak memory), and saves about 0.1 ms of
# LightGBM's CPU per 1,000 trees per row. A batch that scores once (the scores asset after a retrain)
# loses time compiling a forest past this size; callers that serve for hours (the online service) still win.
MAX_BATCH_COMPILE_LEAVES = 20_000
# A one-off batch compiles a model that is not in the cache only when native code saves more than the
# compiling costs. Measured here (2026-12-04, the champions of a 3,000-task run: 221 trees / 1,326 leaves
# and 541 / 9,620): LightGBM predicts at 4-5 ns per leaf per row and compiling costs 1.4-5.5 ms per leaf,
# so the forest pays back from about 600,000 rows whatever its size; pred_contrib costs ~130 ns per leaf
# per row and the SHAP tables ~0.3 ms per leaf to build (2026-12-05: 2.3-3.7 ms a tree of 9 leaves, the
# 1M-task champion's 907 trees in 3.3 s, where pred_contrib took ~1.1 ms a row): from about 3,000
# explained rows. Below these a batch scores with LightGBM (the same numbers); the online service
# compiles in the background and later batches find the code in the cache.
BATCH_COMPILE_MIN_ROWS = 600_000
BATCH_SHAP_COMPILE_MIN_ROWS = 3_000


def forest_leaves(booster: Any) -> int:
    """Leaves of every tree of `booster`, the measure of its compile time."""
    return int(sum(t["num_leaves"] for t in booster.dump_model()["tree_info"]))


def forest_is_cached(model_string: str, cache_dir: str | Path | None = None) -> bool:
    """Whether :func:`compile_forest` would load this model from the cache (milliseconds) rather than compile."""
    return _forest_cache_file(model_string, cache_dir).exists()


def shap_is_cached(model_string: str, cache_dir: str | Path | None = None) -> bool:
    """Whether :func:`compile_shap` would load this model's SHAP code from the cache rather than compile."""
    return _shap_cache_file(model_string, cache_dir).exists()


def shap_tables(
    booster: Any, model_string: str, cache_dir: str | Path | None = None, build: bool = True
) -> CompiledShap | None:
    """The SHAP tables of `booster` (whose text is `model_string`): from the cache when there, else built
    (and cached) when `build` and its trees fit tables (:func:`shap_table_nodes`); None otherwise, and
    the caller uses LightGBM's ``pred_contrib``.
    """
    if shap_is_cached(model_string, cache_dir) or (build and shap_table_nodes(booster) is not None):
        return compile_shap(model_string, cache_dir)  # a cache hit needs no dump_model
    return None


def _shap_cache_file(model_string: str, cache_dir: str | Path | None) -> Path:
    return _cache_file("shap-tables-1", ".shap.npz", model_string, cache_dir)


def _forest_cache_file(model_string: str, cache_dir: str | Path | None) -> Path:
    return _cache_file("ordered-1", ".o", model_string, cache_dir)


def _cache_file(kind: str, suffix: str, model_string: str, cache_dir: str | Path | None) -> Path:
    """The cache file of one kind of compiled code: keyed by the kind's version, lleaves/llvmlite, the CPU
    and the model text.
    """
    from importlib.metadata import version

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = hashlib.sha256(
        "\n".join([kind, version("lleaves"), version("llvmlite"), _host_key(), model_string]).encode()
    ).hexdigest()[:32]
    return cache_dir / f"{key}{suffix}"


def compile_forest(model_string: str, cache_dir: str | Path | None = None) -> CompiledForest:
    """The booster of `model_string` (``Booster.model_to_string()``) compiled, from the cache when there.

    The cache key hashes the model text, the lleaves/llvmlite versions and the host CPU (the code is
    compiled for it), so a stale or foreign file is never loaded. Concurrent compilers of one model
    each write a temporary file and rename it: the last one wins, with the same bytes.
    """
    import lleaves

    _patch_lleaves()
    cache_file = _forest_cache_file(model_string, cache_dir)
    cache_dir = cache_file.parent
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        model_file = Path(tmp) / "model.txt"
        model_file.write_text(model_string)
        model = lleaves.Model(model_file=str(model_file))
        if cache_file.exists():
            model.compile(cache=str(cache_file))
        else:
            partial = Path(tmp) / "forest.o"
            model.compile(cache=str(partial))
            os.replace(partial, cache_file)
    return CompiledForest(model, model.num_feature(), cache_file)


# ---------------------------------------------------------------------------------------------------
# SHAP tables


def _internal_nodes(tree: dict) -> list[dict]:
    out, stack = [], [tree]
    while stack:
        item = stack.pop()
        if "split_index" in item:
            out.append(item)
            stack += [item["left_child"], item["right_child"]]
    return sorted(out, key=lambda item: item["split_index"])


def _count(item: dict) -> float:
    return float(item["internal_count"] if "split_index" in item else item["leaf_count"])


def _tree_table(tree: dict) -> tuple[list[int], np.ndarray] | None:
    """(features the tree splits on, table[pattern, j] = TreeSHAP value of features[j]); None: a single leaf.

    Bit k of a pattern is 1 when the row goes left at split_index k. A port of LightGBM's
    ``Tree::TreeSHAP`` (src/io/tree.cpp) run once for all ``2**k`` patterns at a time: every path
    weight is an array over the patterns. LightGBM follows a row's ("hot") child with its
    one-fraction and the other ("cold") with 0; here both children are visited, the left one with
    the one-fraction times "goes left" and the right one with it times "goes right", which is the
    same arithmetic per pattern (LightGBM's branch on ``one != 0`` becomes a ``where``).
    """
    internal = _internal_nodes(tree)
    if not internal:
        return None
    patterns = np.arange(2 ** len(internal))
    goes_left = [(patterns >> k & 1).astype(float) for k in range(len(internal))]
    features = sorted({int(node["split_feature"]) for node in internal})
    column = {feature: j for j, feature in enumerate(features)}
    table = np.zeros((len(patterns), len(features)))
    ones = np.ones(len(patterns))

    def extend(path: list[list], depth: int, zero: float, one: np.ndarray, feature: int) -> None:
        path[depth] = [feature, zero, one, ones if depth == 0 else 0.0 * ones]
        for i in range(depth - 1, -1, -1):
            path[i + 1][3] = path[i + 1][3] + one * path[i][3] * (i + 1) / float(depth + 1)
            path[i][3] = zero * path[i][3] * (depth - i) / float(depth + 1)

    def unwind(path: list[list], depth: int, index: int) -> None:
        one, zero = path[index][2], path[index][1]
        hot = one != 0
        next_one = path[depth][3]
        for i in range(depth - 1, -1, -1):
            weight = path[i][3]
            if_hot = next_one * (depth + 1) / ((i + 1) * np.where(hot, one, 1.0))
            if_cold = (weight * (depth + 1)) / (zero * (depth - i)) if zero != 0 else 0.0 * ones
            path[i][3] = np.where(hot, if_hot, if_cold)
            next_one = np.where(hot, weight - path[i][3] * zero * (depth - i) / float(depth + 1), next_one)
        for i in range(index, depth):
            path[i][0], path[i][1], path[i][2] = path[i + 1][0], path[i + 1][1], path[i + 1][2]

    def unwound_sum(path: list[list], depth: int, index: int) -> np.ndarray:
        one, zero = path[index][2], path[index][1]
        hot = one != 0
        next_one = path[depth][3]
        total = 0.0 * ones
        for i in range(depth - 1, -1, -1):
            if_hot = next_one * (depth + 1) / ((i + 1) * np.where(hot, one, 1.0))
            if_cold = (path[i][3] / zero) / ((depth - i) / float(depth + 1)) if zero != 0 else 0.0 * ones
            total = total + np.where(hot, if_hot, if_cold)
            next_one = np.where(hot, path[i][3] - if_hot * zero * ((depth - i) / float(depth + 1)), next_one)
        return total

    def recurse(
        item: dict, parent: list[list], depth: int, zero: float, one: np.ndarray, feature: int
    ) -> None:
        path = [list(element) for element in parent[:depth]] + [None]
        extend(path, depth, zero, one, feature)
        if "split_index" not in item:
            for i in range(1, depth + 1):
                element = path[i]
                weight = unwound_sum(path, depth, i)
                table[:, column[element[0]]] += weight * (element[2] - element[1]) * float(item["leaf_value"])
            return
        split = int(item["split_feature"])
        left, right = item["left_child"], item["right_child"]
        incoming_zero, incoming_one = 1.0, ones
        index = next((i for i in range(depth + 1) if path[i][0] == split), depth + 1)
        if index != depth + 1:
            incoming_zero, incoming_one = path[index][1], path[index][2]
            unwind(path, depth, index)
            depth -= 1
        left_goes = goes_left[item["split_index"]]
        count = _count(item)
        recurse(left, path, depth + 1, _count(left) / count * incoming_zero, incoming_one * left_goes, split)
        recurse(
            right,
            path,
            depth + 1,
            _count(right) / count * incoming_zero,
            incoming_one * (1.0 - left_goes),
            split,
        )

    with np.errstate(divide="ignore", invalid="ignore"):  # the branch `where` does not take may divide by 0
        recurse(tree, [], 0, 1.0, ones, -1)
    return features, table


def _expected_value(tree: dict) -> float:
    """LightGBM's ``Tree::ExpectedValue``: the leaves' values weighted by their training counts."""
    if "split_index" not in tree:
        return float(tree["leaf_value"])
    total = float(tree["internal_count"])
    out = 0.0
    stack = [tree]
    leaves = []
    while stack:
        item = stack.pop()
        if "split_index" in item:
            stack += [item["left_child"], item["right_child"]]
        else:
            leaves.append(item)
    for leaf in sorted(leaves, key=lambda leaf: leaf["leaf_index"]):
        out += (float(leaf["leaf_count"]) / total) * float(leaf["leaf_value"])
    return out


def shap_table_nodes(booster: Any) -> int | None:
    """Table entries (patterns x features, summed over the trees) the SHAP tables of `booster` take;
    None: not possible (several outputs, a tree over MAX_TABLE_NODES internal nodes, over
    MAX_TABLE_ENTRIES entries in all, or category codes so large that the categorical look-up table
    would outgrow the tables' memory).
    """
    return _table_entries(booster.dump_model())


def _table_entries(dump: dict) -> int | None:
    """:func:`shap_table_nodes` of a booster's ``dump_model()``."""
    if dump.get("num_tree_per_iteration", 1) != 1:
        return None
    total = categorical_nodes = categories = 0
    for info in dump["tree_info"]:
        internal = info["num_leaves"] - 1
        if internal > MAX_TABLE_NODES:
            return None
        if internal:
            nodes = _internal_nodes(info["tree_structure"])
            total += len({int(n["split_feature"]) for n in nodes}) * 2**internal
            for node in nodes:
                if node["decision_type"] == "==":
                    categorical_nodes += 1
                    categories = max(categories, *_categories(node))
    # the categorical look-up table takes a byte per (categorical node, category code): bounded alike
    if total > MAX_TABLE_ENTRIES or categorical_nodes * (categories + 1) > 8 * MAX_TABLE_ENTRIES:
        return None
    return total


def _categories(node: dict) -> list[int]:
    """The category codes a categorical node sends left (``dump_model`` writes them as "1||3||5")."""
    return [int(c) for c in str(node["threshold"]).split("||")]


# how a node decides, in the kernel: LightGBM's missing types of a numerical split, or a categorical one
_KINDS = {"NaN": 0, "None": 1, "Zero": 2}
_CATEGORICAL = 3
# the arrays of a packed forest, in the order of the kernel's parameter block (after n_cols, n_out, trees)
_PACKED = ("node_start", "node_feature", "node_threshold", "node_kind", "node_default_left", "node_lut",
           "lut", "tree_offset", "tree_width", "tree_features_at", "tree_features", "table")  # fmt: skip


@dataclass
class CompiledShap:
    """LightGBM's ``pred_contrib`` for a booster from its SHAP tables (see the module docstring)."""

    arrays: dict[str, np.ndarray]  # _PACKED, plus "expected" (one value)
    n_features: int
    cache_file: Path
    _params: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        a = self.arrays
        self._params = np.array(
            [self.n_features, self.n_features + 1, len(a["tree_width"]),
             *(a[name].ctypes.data for name in _PACKED[:6]), a["lut"].ctypes.data, int(a["categories"][0]),
             *(a[name].ctypes.data for name in _PACKED[7:])],
            dtype=np.int64,
        )  # fmt: skip

    @property
    def expected_value(self) -> float:
        return float(self.arrays["expected"][0])

    def contributions(self, matrix: np.ndarray, n_jobs: int = 1) -> np.ndarray:
        """(rows, n_features + 1): SHAP value of every feature, then the expected value (``pred_contrib``'s layout)."""
        if matrix.ndim != 2 or matrix.shape[1] != self.n_features:
            raise ValueError(f"matrix has shape {matrix.shape}; the model takes {self.n_features} columns")
        matrix = _as_lightgbm_reads(matrix)
        n = len(matrix)
        out = np.zeros((n, self.n_features + 1))
        if n:
            kernel, params = _shap_kernel(), self._params.ctypes.data
            _run(
                lambda data, target, start, end: kernel(data, target, start, end, params), matrix, out, n_jobs
            )
        out[:, -1] = self.expected_value
        return out


def compile_shap(model_string: str, cache_dir: str | Path | None = None) -> CompiledShap:
    """The SHAP tables of the booster of `model_string`, from the cache when there, ready to explain rows.

    Building costs about 3-4 ms a tree of 8 internal nodes (:func:`_tree_table`); the tables are kept
    as one ``.npz`` per model text under `cache_dir`, so the online service and later batches load
    them in milliseconds. Raises ValueError when :func:`shap_table_nodes` says no.
    """
    import lightgbm as lgb

    cache_file = _shap_cache_file(model_string, cache_dir)
    if cache_file.exists():
        with np.load(cache_file) as stored:
            arrays = {name: stored[name] for name in stored.files}
        return CompiledShap(arrays, int(arrays["n_features"][0]), cache_file)
    dump = lgb.Booster(model_str=model_string).dump_model()
    if _table_entries(dump) is None:
        raise ValueError(
            f"this model has a tree over {MAX_TABLE_NODES} internal nodes, over {MAX_TABLE_ENTRIES:,} table "
            "entries in all, or several outputs: use LightGBM's pred_contrib for its SHAP values"
        )
    arrays = _packed_tables(dump)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_file.parent) as tmp:
        partial = Path(tmp) / "tables.npz"
        np.savez(partial, **arrays)
        os.replace(partial, cache_file)  # concurrent builders write the same bytes; the last rename wins
    return CompiledShap(arrays, int(arrays["n_features"][0]), cache_file)


# Forests whose tables hold more entries than this build them in worker processes too (one per core, up to
# 4): the build is numpy on arrays of 2**k patterns a tree, bound to one core by the interpreter. The
# 1M graph's champions (1,300 trees of 11 leaves and 463 of 13, 16.9M entries) took 10.5 s on one core.
PARALLEL_TABLE_ENTRIES = 4_000_000


def _tree_tables(trees: list[dict]) -> list[tuple[list[int], np.ndarray] | None]:
    return [_tree_table(tree) for tree in trees]


def _tree_tables_of(trees: list[dict]) -> list[tuple[list[int], np.ndarray] | None]:
    """:func:`_tree_table` of each tree, in order; big forests in contiguous parts of equal work on
    several processes (spawned: the caller may be a step with threads), the first part here. The same
    function on the same trees: the same tables, bit for bit (tested).
    """
    cost = [2 ** max(_count_internal(tree), 0) for tree in trees]
    parts = min(os.cpu_count() or 1, 4, len(trees))
    if parts < 2 or sum(cost) * 8 < PARALLEL_TABLE_ENTRIES:  # ~8 features a tree: entries, roughly
        return _tree_tables(trees)
    bounds, done, share = [0], 0, sum(cost) / parts
    for i, c in enumerate(cost):
        done += c
        if done >= share * len(bounds) and len(bounds) < parts:
            bounds.append(i + 1)
    bounds.append(len(trees))
    chunks = [trees[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
    if len(chunks) < 2:
        return _tree_tables(trees)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(len(chunks) - 1, mp_context=multiprocessing.get_context("spawn")) as pool:
        others = [pool.submit(_tree_tables, chunk) for chunk in chunks[1:]]
        first = _tree_tables(chunks[0])
        return first + [made for future in others for made in future.result()]


def _count_internal(tree: dict) -> int:
    count, stack = 0, [tree]
    while stack:
        item = stack.pop()
        if "split_index" in item:
            count += 1
            stack += [item["left_child"], item["right_child"]]
    return count


def _packed_tables(dump: dict) -> dict[str, np.ndarray]:
    """Every tree's nodes and SHAP table in flat arrays, the layout the kernel reads (:data:`_PACKED`)."""
    nodes: dict[str, list] = {"feature": [], "threshold": [], "kind": [], "default_left": [], "lut": []}
    starts, offsets, widths, features_at, tree_features, tables = [0], [], [], [], [], []
    category_lists: list[tuple[int, list[int]]] = []
    expected, offset = 0.0, 0
    trees = [info["tree_structure"] for info in dump["tree_info"]]
    for tree, made in zip(trees, _tree_tables_of(trees), strict=True):
        expected += _expected_value(tree)
        if made is None:  # a single leaf: its value is all in the expected value
            continue
        features, table = made
        for node in _internal_nodes(tree):
            nodes["feature"].append(int(node["split_feature"]))
            categorical = node["decision_type"] == "=="
            if categorical:  # its categories, "1||3||5", go to the look-up table below
                category_lists.append((len(nodes["lut"]), _categories(node)))
            nodes["threshold"].append(0.0 if categorical else float(node["threshold"]))
            nodes["kind"].append(_CATEGORICAL if categorical else _KINDS[node["missing_type"]])
            nodes["default_left"].append(int(bool(node.get("default_left", False))))
            nodes["lut"].append(0)
        starts.append(len(nodes["feature"]))
        offsets.append(offset)
        widths.append(len(features))
        features_at.append(len(tree_features))
        tree_features += features
        tables.append(table.ravel())
        offset += table.size
    # categorical node i looks category c up at lut[node_lut[i] + c], c < categories (else: right)
    categories = max((max(cats) for _, cats in category_lists), default=0) + 1
    lut = np.zeros(max(1, len(category_lists) * categories), dtype=np.uint8)
    for i, (node, cats) in enumerate(category_lists):
        nodes["lut"][node] = i * categories
        lut[i * categories + np.asarray(cats, dtype=np.int64)] = 1
    ints = lambda values: np.asarray(values, dtype=np.int64)  # noqa: E731
    return {
        "node_start": ints(starts), "node_feature": ints(nodes["feature"]),
        "node_threshold": np.asarray(nodes["threshold"], dtype=np.float64), "node_kind": ints(nodes["kind"]),
        "node_default_left": ints(nodes["default_left"]), "node_lut": ints(nodes["lut"]), "lut": lut,
        "tree_offset": ints(offsets), "tree_width": ints(widths), "tree_features_at": ints(features_at),
        "tree_features": ints(tree_features),
        "table": np.concatenate(tables) if tables else np.zeros(1),
        "categories": ints([categories]), "expected": np.array([expected]),
        "n_features": ints([int(dump["max_feature_idx"]) + 1]),
    }  # fmt: skip


_KERNEL: Any = None
_KERNEL_LOCK = threading.Lock()
_SHAP_BLOCK_ROWS = 64  # rows a tree is applied to at a time: its table stays in the cache meanwhile


def _shap_kernel() -> Any:
    """The table-TreeSHAP kernel (:data:`_SHAP_KERNEL_IR`), compiled for this CPU once per process (~50 ms)."""
    global _KERNEL
    with _KERNEL_LOCK:
        if _KERNEL is None:
            import ctypes

            import llvmlite.binding as llvm

            llvm.initialize()
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            machine = llvm.Target.from_default_triple().create_target_machine(
                cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=3
            )
            module = llvm.parse_assembly(_SHAP_KERNEL_IR.replace("BLOCK", str(_SHAP_BLOCK_ROWS)))
            module.verify()
            builder = llvm.PassManagerBuilder()
            builder.opt_level = 3
            builder.inlining_threshold = (
                225  # the @at / @arr helpers inline (without an inliner they stay calls)
            )
            passes = llvm.ModulePassManager()
            builder.populate(passes)
            passes.run(module)
            engine = llvm.create_mcjit_compiler(module, machine)
            engine.finalize_object()
            double_p = ctypes.POINTER(ctypes.c_double)
            signature = ctypes.CFUNCTYPE(
                None, double_p, double_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p
            )
            function = signature(engine.get_function_address("tree_shap_tables"))
            function.engine = engine  # keeps the code alive as long as the function
            _KERNEL = function
    return _KERNEL


# The kernel, for rows [start, end) of X (rows x n_cols, C order): out[row, feature] += the table entry of
# every tree for the row's decision pattern. Rows go in blocks of BLOCK; a block takes one tree at a time:
# first every node's decision for each row of the block (bit k of a row's pattern: it goes left at node k,
# LightGBM's NumericalDecision / CategoricalDecision), then each row's table row is added to its
# features, tree by tree (LightGBM's order of additions). The model's arrays come in a parameter block p
# of int64: n_cols, n_out, trees, then the addresses of _PACKED's arrays (the number of categories
# after node_lut's), read through @arr.
_SHAP_KERNEL_IR = r"""
define void @tree_shap_tables(double* noalias %X, double* noalias %out, i64 %start, i64 %end, i64* noalias %p) {
entry:
  %pats = alloca i64, i64 BLOCK, align 64
  %ncols = load i64, i64* %p
  %p1 = getelementptr i64, i64* %p, i64 1
  %nout = load i64, i64* %p1
  %p2 = getelementptr i64, i64* %p, i64 2
  %ntrees = load i64, i64* %p2
  %ns = call i64* @arr(i64* %p, i64 3)
  %nf = call i64* @arr(i64* %p, i64 4)
  %nthr_i = call i64* @arr(i64* %p, i64 5)
  %nthr = bitcast i64* %nthr_i to double*
  %nkind = call i64* @arr(i64* %p, i64 6)
  %ndl = call i64* @arr(i64* %p, i64 7)
  %ncat = call i64* @arr(i64* %p, i64 8)
  %lut_i = call i64* @arr(i64* %p, i64 9)
  %lut = bitcast i64* %lut_i to i8*
  %p10 = getelementptr i64, i64* %p, i64 10
  %cmax = load i64, i64* %p10
  %cmaxd = sitofp i64 %cmax to double
  %toff = call i64* @arr(i64* %p, i64 11)
  %twidth = call i64* @arr(i64* %p, i64 12)
  %tfoff = call i64* @arr(i64* %p, i64 13)
  %pfeat = call i64* @arr(i64* %p, i64 14)
  %table_i = call i64* @arr(i64* %p, i64 15)
  %table = bitcast i64* %table_i to double*
  br label %blk_cond

blk_cond:
  ; rows [b0, b1): one block
  %b0 = phi i64 [ %start, %entry ], [ %b1, %tree_cond ]
  %more_blk = icmp slt i64 %b0, %end
  br i1 %more_blk, label %blk_body, label %exit

blk_body:
  %b1a = add i64 %b0, BLOCK
  %b1lt = icmp slt i64 %b1a, %end
  %b1 = select i1 %b1lt, i64 %b1a, i64 %end
  %nb = sub i64 %b1, %b0
  br label %tree_cond

tree_cond:
  ; each tree over the block: its node range [ks, ke), table offset, width, features
  %t = phi i64 [ 0, %blk_body ], [ %t_next, %add_cond ]
  %more_trees = icmp slt i64 %t, %ntrees
  br i1 %more_trees, label %tree_body, label %blk_cond

tree_body:
  %t_next = add i64 %t, 1
  %ks = call i64 @at(i64* %ns, i64 %t)
  %ke = call i64 @at(i64* %ns, i64 %t_next)
  %to = call i64 @at(i64* %toff, i64 %t)
  %w = call i64 @at(i64* %twidth, i64 %t)
  %fo = call i64 @at(i64* %tfoff, i64 %t)
  br label %zero_cond

zero_cond:
  %z = phi i64 [ 0, %tree_body ], [ %z_next, %zero_body ]
  %more_z = icmp slt i64 %z, %nb
  br i1 %more_z, label %zero_body, label %node_cond

zero_body:
  %zp = getelementptr i64, i64* %pats, i64 %z
  store i64 0, i64* %zp
  %z_next = add i64 %z, 1
  br label %zero_cond

node_cond:
  ; each node: set its bit in every row's pattern
  %k = phi i64 [ %ks, %zero_cond ], [ %k_next, %nrow_cond ]
  %more_nodes = icmp slt i64 %k, %ke
  br i1 %more_nodes, label %node_body, label %add_cond0

node_body:
  %k_next = add i64 %k, 1
  %f = call i64 @at(i64* %nf, i64 %k)
  %thr = call double @atd(double* %nthr, i64 %k)
  %kind = call i64 @at(i64* %nkind, i64 %k)
  %dl64 = call i64 @at(i64* %ndl, i64 %k)
  %dl = icmp ne i64 %dl64, 0
  %co = call i64 @at(i64* %ncat, i64 %k)
  %sh = sub i64 %k, %ks
  %is0 = icmp eq i64 %kind, 0
  %is1 = icmp eq i64 %kind, 1
  %is2 = icmp eq i64 %kind, 2
  %xcol = getelementptr double, double* %X, i64 %f
  br label %nrow_cond

nrow_cond:
  %i = phi i64 [ 0, %node_body ], [ %i_next, %nrow_body ]
  %more_i = icmp slt i64 %i, %nb
  br i1 %more_i, label %nrow_body, label %node_cond

nrow_body:
  ; kind 0: NaN goes the default way; 1: NaN reads as 0; 2: 0 (and NaN) the default way;
  ; 3: category c goes left when in the node's set, NaN / negative / past the table go right
  %i_next = add i64 %i, 1
  %r = add i64 %b0, %i
  %xoff = mul i64 %r, %ncols
  %x = call double @atd(double* %xcol, i64 %xoff)
  %isnan = fcmp uno double %x, 0.0
  %le = fcmp ole double %x, %thr
  %l0 = select i1 %isnan, i1 %dl, i1 %le
  %x0 = select i1 %isnan, double 0.0, double %x
  %le0 = fcmp ole double %x0, %thr
  %ax = call double @llvm.fabs.f64(double %x0)
  %iszero = fcmp ole double %ax, 1.0e-35
  %l2 = select i1 %iszero, i1 %dl, i1 %le0
  %gt = fcmp ogt double %x, -1.0
  %lt = fcmp olt double %x, %cmaxd
  %valid = and i1 %gt, %lt
  %xc = select i1 %valid, double %x, double 0.0
  %code = fptosi double %xc to i64
  %li = add i64 %co, %code
  %lut_p = getelementptr i8, i8* %lut, i64 %li
  %lutv = load i8, i8* %lut_p
  %inlut = icmp ne i8 %lutv, 0
  %l3 = and i1 %valid, %inlut
  %s23 = select i1 %is2, i1 %l2, i1 %l3
  %s123 = select i1 %is1, i1 %le0, i1 %s23
  %left = select i1 %is0, i1 %l0, i1 %s123
  %bit = zext i1 %left to i64
  %b = shl i64 %bit, %sh
  %pp = getelementptr i64, i64* %pats, i64 %i
  %pat = load i64, i64* %pp
  %pat2 = or i64 %pat, %b
  store i64 %pat2, i64* %pp
  br label %nrow_cond

add_cond0:
  br label %add_cond

add_cond:
  ; each row: add its table row to its features
  %a = phi i64 [ 0, %add_cond0 ], [ %a_next, %pair_cond ]
  %more_a = icmp slt i64 %a, %nb
  br i1 %more_a, label %add_body, label %tree_cond

add_body:
  %a_next = add i64 %a, 1
  %ra = add i64 %b0, %a
  %ooff = mul i64 %ra, %nout
  %orow = getelementptr double, double* %out, i64 %ooff
  %pa = call i64 @at(i64* %pats, i64 %a)
  %pw = mul i64 %pa, %w
  %base = add i64 %to, %pw
  br label %pair_cond

pair_cond:
  %j = phi i64 [ 0, %add_body ], [ %j_next, %pair_body ]
  %more_pairs = icmp slt i64 %j, %w
  br i1 %more_pairs, label %pair_body, label %add_cond

pair_body:
  %j_next = add i64 %j, 1
  %fj = add i64 %fo, %j
  %o = call i64 @at(i64* %pfeat, i64 %fj)
  %bj = add i64 %base, %j
  %v = call double @atd(double* %table, i64 %bj)
  %acc_p = getelementptr double, double* %orow, i64 %o
  %acc = load double, double* %acc_p
  %sum = fadd double %acc, %v
  store double %sum, double* %acc_p
  br label %pair_cond

exit:
  ret void
}

define internal i64* @arr(i64* %p, i64 %i) alwaysinline {
  %q = getelementptr i64, i64* %p, i64 %i
  %a = load i64, i64* %q
  %ptr = inttoptr i64 %a to i64*
  ret i64* %ptr
}

define internal i64 @at(i64* %a, i64 %i) alwaysinline {
  %q = getelementptr i64, i64* %a, i64 %i
  %v = load i64, i64* %q
  ret i64 %v
}

define internal double @atd(double* %a, i64 %i) alwaysinline {
  %q = getelementptr double, double* %a, i64 %i
  %v = load double, double* %q
  ret double %v
}

declare double @llvm.fabs.f64(double)
"""
