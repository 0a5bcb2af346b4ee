"""Rare sessions: split events into sessions and rank sessions by how unusual their command sequence is.

:func:`sessionize` cuts a stream of events into sessions (per account, host, logon id ... and a
maximum idle gap). :func:`score` learns, from the sessions themselves, how commands follow each other
and which parameters they carry, and ranks the sessions rarest first.

The model (numpy only, no training step to run separately) scores every *observation* of a session:

* each transition ``previous command -> command`` (with ``<start>`` and ``<end>``) under a first-order
  Markov model with additive smoothing (unseen transitions get a small, non-zero probability);
* each command's base rate (how often the command is seen at all), so that a chain of rare commands
  that always follow one another still counts every rare command;
* each parameter name, given its command and by its base rate (the share of commands carrying it).

An observation is *rare* when its probability is below ``rare_below`` (default 0.5 %). A session's
``score`` is the sum of the log-probabilities of its rare observations (natural log, so 0 means
"nothing rare" and lower means rarer): a session with several rare observations ranks above a session
with one, and a never-seen observation weighs more than a merely uncommon one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from huntbook.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["SCORE_COLUMNS", "score", "sessionize"]

SCORE_COLUMNS = [
    "session",
    "score",
    "length",
    "rare_events",
    "min_log_likelihood",
    "mean_log_likelihood",
    "rarest_transition",
    "rarest_reason",
]
_START, _END = "<start>", "<end>"
_DENSE_LIMIT = 4_000_000  # count tables up to this size are dense arrays, beyond it sorted keys


def _require(events: pd.DataFrame, columns: Iterable[str | None], function: str) -> None:
    import pandas as pd

    if not isinstance(events, pd.DataFrame):
        raise DataError(
            f"{function} needs a pandas DataFrame, got {type(events).__name__}",
            hint="pass one row per event",
        )
    for column in columns:
        if column is not None and column not in events.columns:
            raise DataError(
                f"no column {column!r}",
                where=column,
                hint=f"columns are: {', '.join(map(str, events.columns))}",
            )


def sessionize(
    events: pd.DataFrame,
    by: str | Sequence[str],
    *,
    time_column: str = "TimeGenerated",
    gap: str | Any = "30min",
    session_column: str = "session",
) -> pd.DataFrame:
    """Add a session id column: events of one ``by`` key belong together until an idle ``gap``.

    Rows are grouped by the ``by`` columns (e.g. account and host, or a logon id) and ordered by
    ``time_column``; a new session starts whenever the time since the key's previous event exceeds
    ``gap``. Session ids are integers numbered in (key, time) order. Rows with a missing key or time
    get session ``-1``. The input is not changed; rows keep their order.

    Example::

        df = sessions.sessionize(events, by=["ActorUsername", "DvcHostname"], gap="30min")
        sessions.score(df, session_column="session", command_column="TargetProcessName")
    """
    import numpy as np
    import pandas as pd

    keys = [by] if isinstance(by, str) else list(by)
    if not keys:
        raise DataError("sessionize needs at least one 'by' column", hint="e.g. by=['Account', 'Host']")
    _require(events, [*keys, time_column], "sessionize")
    out = events.copy()
    n = len(events)
    if n == 0:
        out[session_column] = pd.Series(dtype="int64", index=events.index)
        return out
    max_gap = pd.Timedelta(gap)
    times = pd.to_datetime(events[time_column], utc=True, errors="coerce")
    codes = [pd.factorize(events[k])[0] for k in keys]
    key_code = np.zeros(n, dtype=np.int64)
    for c in codes:  # combine the key columns into one code (factorize again to stay small)
        key_code = pd.factorize(key_code * (int(c.max()) + 2) + c + 1)[0].astype(np.int64)
    missing = np.logical_or.reduce([c < 0 for c in codes]) | times.isna().to_numpy()
    t = times.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    order = np.lexsort((t, key_code))
    order = order[~missing[order]]
    k_sorted, t_sorted = key_code[order], t[order]
    new = np.ones(len(order), dtype=bool)
    if len(order) > 1:
        new[1:] = (k_sorted[1:] != k_sorted[:-1]) | (np.diff(t_sorted) > max_gap.value)
    session = np.full(n, -1, dtype=np.int64)
    session[order] = np.cumsum(new) - 1
    out[session_column] = session
    return out


def _param_lists(values: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row parameter counts, flat parameter codes and the distinct names (lists, sets, dicts, strings)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    cells = values.to_numpy(dtype=object)
    try:  # lists/tuples of names: Arrow converts and encodes them in C (it would split a string into letters)
        if not set(map(type, cells)) <= {list, tuple, type(None)}:
            raise TypeError("not only lists of names")
        lists = pa.array(cells, type=pa.list_(pa.string()), from_pandas=True)
    except (TypeError, pa.ArrowInvalid, pa.ArrowTypeError):
        normal: list[list[str]] = []
        for v in cells:
            if v is None or (isinstance(v, float) and v != v):
                normal.append([])
            elif isinstance(v, str):
                normal.append(v.replace(",", " ").replace(";", " ").split())
            elif isinstance(v, (Mapping, set, frozenset)):
                normal.append(sorted(map(str, v)))
            elif isinstance(v, Iterable):
                normal.append([str(p) for p in v])
            else:
                normal.append([str(v)])
        lists = pa.array(normal, type=pa.list_(pa.string()))
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    encoded = pc.fill_null(lists.flatten(), "<missing>").dictionary_encode()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return lengths, codes, np.asarray(encoded.dictionary.to_pylist(), dtype=object)


def _unique_counts(key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct keys, each key's index among them, and their counts (sort-based, like np.unique)."""
    import numpy as np

    order = np.argsort(key, kind="stable")
    ordered = key[order]
    new = np.r_[True, ordered[1:] != ordered[:-1]]
    inverse = np.empty(len(key), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    return ordered[starts], inverse, np.diff(np.r_[starts, len(key)])


def _cond_log_prob(
    context: np.ndarray, outcome: np.ndarray, totals: np.ndarray, n_outcomes: int, alpha: float
) -> np.ndarray:
    """log P(outcome | context), additively smoothed; ``totals[c]`` is how often context c was seen."""
    import numpy as np

    width = max(int(outcome.max(initial=0)) + 1, 1)
    key = context.astype(np.int64) * width + outcome
    if len(totals) * width <= _DENSE_LIMIT:
        counts = np.bincount(key, minlength=len(totals) * width).reshape(len(totals), width)
        table: np.ndarray = np.log((counts + alpha) / (totals[:, None] + alpha * n_outcomes))
        result: np.ndarray = table.ravel()[key]
        return result
    unique, inverse, counts = _unique_counts(key)
    per_pair: np.ndarray = np.log((counts + alpha) / (totals[unique // width] + alpha * n_outcomes))
    gathered: np.ndarray = per_pair[inverse]
    return gathered


def _pair_index(
    a: np.ndarray, b: np.ndarray, n_a: int, n_b: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Index of each (a, b) pair among the distinct pairs, and the pairs' a, b and counts."""
    import numpy as np

    key = a.astype(np.int64) * n_b + b
    if n_a * n_b <= _DENSE_LIMIT:
        counts = np.bincount(key, minlength=n_a * n_b)
        used = np.flatnonzero(counts)
        remap = np.zeros(n_a * n_b, dtype=np.int64)
        remap[used] = np.arange(len(used))
        return remap[key], used // n_b, used % n_b, counts[used]
    unique, inverse, counts = _unique_counts(key)
    return inverse, unique // n_b, unique % n_b, counts


def _rare_ll(log_p: np.ndarray, log_threshold: float) -> np.ndarray:
    """The log-likelihood of the observations rarer than the threshold, 0 for the others."""
    import numpy as np

    return np.where(log_p < log_threshold, log_p, 0.0)


def _first_per_group(groups: np.ndarray) -> np.ndarray:
    """Positions where a sorted group array starts a new group."""
    import numpy as np

    return np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]]) if len(groups) else groups


def score(
    events: pd.DataFrame,
    session_column: str = "session",
    command_column: str = "command",
    params_column: str | None = None,
    *,
    time_column: str | None = None,
    rare_below: float = 0.005,
    smoothing: float = 1.0,
) -> pd.DataFrame:
    """Rank sessions by the rarity of their command sequences; one row per session, rarest first.

    ``events`` has one row per command: the session id, the command (cmdlet, process name, event
    type ...) and optionally its parameters (``params_column``: a list/tuple/set of parameter names,
    a dict whose keys are the names, or a comma- or space-separated string). Commands follow each
    other in row order within a session, or in ``time_column`` order when given. The model is
    learnt from ``events`` itself (module docstring); ``smoothing`` is the additive pseudo-count.

    Columns: ``session``; ``score`` (sum of ``log(p)`` over the session's observations rarer than
    ``rare_below``: 0 = nothing rare, lower = rarer); ``length`` (commands);
    ``rare_events`` (rare observations); ``min_log_likelihood`` (log-probability of the rarest
    observation); ``mean_log_likelihood`` (Markov log-likelihood per transition, parameters
    included); ``rarest_transition`` (``previous -> command`` where the rarest observation is) and
    ``rarest_reason`` (``transition``, ``command`` or ``parameter <name>``). Sorted by score, then
    by min_log_likelihood. Rows with a missing session id are ignored.

    Example::

        df = pd.DataFrame({"session": [1, 1, 2, 2], "cmd": ["Get-User", "Set-User", "Get-User", "New-X"]})
        ranked = sessions.score(df, "session", "cmd")
        ranked.head(10)
    """
    import numpy as np
    import pandas as pd

    _require(events, [session_column, command_column, params_column, time_column], "sessions.score")
    if not 0 < rare_below < 1:
        raise DataError("rare_below must be between 0 and 1", where="rare_below", hint="e.g. 0.005")
    if smoothing <= 0:
        raise DataError("smoothing must be positive", where="smoothing", hint="e.g. 1.0")
    sess_code, sess_values = pd.factorize(events[session_column])
    if (sess_code < 0).any():  # rows without a session id take no part
        events = events.loc[sess_code >= 0]
        sess_code, sess_values = pd.factorize(events[session_column])
    if time_column is not None:
        t = pd.to_datetime(events[time_column], utc=True, errors="coerce")
        order = np.lexsort((t.to_numpy(dtype="datetime64[ns]").astype(np.int64), sess_code))
    else:
        order = np.argsort(sess_code, kind="stable")
    n = len(order)
    if n == 0:
        return pd.DataFrame({c: [] for c in SCORE_COLUMNS})
    s = sess_code[order]
    cmd_all, cmd_uniques = pd.factorize(events[command_column])
    names = np.append(np.asarray(cmd_uniques, dtype=object).astype(str), ["<missing>", _START, _END])
    k = len(cmd_uniques) + 1  # command codes, the last one for a missing command
    c = np.where(cmd_all < 0, k - 1, cmd_all)[order].astype(np.int64)
    first = np.r_[True, s[1:] != s[:-1]]
    last = np.r_[first[1:], True]
    starts = np.flatnonzero(first)
    prev = np.r_[k, c[:-1]]
    prev[first] = k  # <start>
    log_threshold = float(np.log(rare_below))

    # transitions: one per command, plus command -> <end> per session (codes: k = <start> / <end>)
    all_prev = np.concatenate([prev, c[last]])
    all_next = np.concatenate([c, np.full(len(starts), k, dtype=np.int64)])
    lp = _cond_log_prob(all_prev, all_next, np.bincount(all_prev, minlength=k + 1), k + 1, smoothing)
    lp_trans, lp_end = lp[:n], lp[n:]
    cmd_count = np.bincount(c, minlength=k)
    lp_cmd = np.log((cmd_count + smoothing) / (n + smoothing * k))[c]

    row_ll = lp_trans.copy()  # Markov log-likelihood of each command (transition + parameters)
    row_excess = _rare_ll(lp_trans, log_threshold) + _rare_ll(lp_cmd, log_threshold)
    row_rare = (lp_trans < log_threshold).astype(np.int64) + (lp_cmd < log_threshold)
    row_min = np.minimum(lp_trans, lp_cmd)
    row_reason = (lp_cmd < lp_trans).astype(np.int64)  # 0 transition, 1 command, 2 parameter
    row_param = np.full(n, -1, dtype=np.int64)
    param_names = np.array([], dtype=object)
    if params_column is not None:
        lengths, p_all, p_uniques = _param_lists(events[params_column])
        if len(p_all):
            param_names = p_uniques.astype(str)
            # flat parameter lists follow the input's row order; ``row_of`` is their row in session order
            in_row = np.repeat(np.arange(n), lengths)
            position = np.empty(n, dtype=np.int64)
            position[order] = np.arange(n)
            row_of = position[in_row]
            p = p_all.astype(np.int64)
            # everything below depends on the (command, parameter) pair only: compute per pair, then gather
            idx, pair_cmd, pair_param, pair_count = _pair_index(c[row_of], p, k, len(param_names))
            given = np.log((pair_count + smoothing) / (cmd_count[pair_cmd] + 2 * smoothing))
            param_count = np.bincount(p, minlength=len(param_names))
            base = np.log((param_count[pair_param] + smoothing) / (n + 2 * smoothing))
            row_ll += np.bincount(row_of, weights=given[idx], minlength=n)
            excess = _rare_ll(given, log_threshold) + _rare_ll(base, log_threshold)
            row_excess += np.bincount(row_of, weights=excess[idx], minlength=n)
            rare = (given < log_threshold).astype(np.int64) + (base < log_threshold)
            row_rare += np.bincount(row_of, weights=rare[idx], minlength=n).astype(np.int64)
            # the rarest parameter of each row (rows' parameters are contiguous in input order)
            obs_min = np.minimum(given, base)[idx]
            with_params = np.flatnonzero(lengths)
            row_pmin = np.full(n, np.inf)
            row_pmin[with_params] = np.minimum.reduceat(obs_min, (np.cumsum(lengths) - lengths)[with_params])
            hits = np.flatnonzero(obs_min == row_pmin[in_row])
            hits = hits[_first_per_group(in_row[hits])]
            rarest_param = np.full(n, -1, dtype=np.int64)
            rarest_param[in_row[hits]] = p[hits]
            row_pmin, rarest_param = row_pmin[order], rarest_param[order]
            better = row_pmin < row_min
            row_min[better] = row_pmin[better]
            row_reason[better] = 2
            row_param[better] = rarest_param[better]

    length = np.diff(np.r_[starts, n])
    session_excess = np.add.reduceat(row_excess, starts) + _rare_ll(lp_end, log_threshold)
    session_rare = np.add.reduceat(row_rare, starts) + (lp_end < log_threshold)
    session_ll = np.add.reduceat(row_ll, starts) + lp_end
    # the rarest observation of each session (the end transition counts as the last row's)
    end_min = np.minimum(row_min[last], lp_end)
    row_min_end = row_min.copy()
    row_min_end[last] = end_min
    session_min = np.minimum.reduceat(row_min_end, starts)
    hits = np.flatnonzero(row_min_end == np.repeat(session_min, length))
    rarest_row = hits[_first_per_group(s[hits])]
    end_is_rarest = last[rarest_row] & (lp_end[np.cumsum(first)[rarest_row] - 1] < row_min[rarest_row])
    # labels are built once per distinct transition / reason, then gathered
    width = k + 2  # command codes, <start> (k) and <end> (k + 1)
    source = np.where(end_is_rarest, c[rarest_row], prev[rarest_row])
    target = np.where(end_is_rarest, k + 1, c[rarest_row])
    distinct, which, _ = _unique_counts(source * width + target)
    labels = np.array([f"{names[d // width]} -> {names[d % width]}" for d in distinct.tolist()], dtype=object)
    transition = labels[which]
    reason_code = np.where(end_is_rarest, 0, row_reason[rarest_row])
    reasons = np.array(["transition", "command", *("parameter " + param_names).tolist()], dtype=object)
    reason = reasons[np.where(reason_code == 2, 2 + row_param[rarest_row], reason_code)]
    rank = np.lexsort((session_min, session_excess))  # rarest first; stable for equal keys
    columns = {
        "session": np.asarray(sess_values)[s[starts]],
        "score": session_excess,
        "length": length,
        "rare_events": session_rare.astype(np.int64),
        "min_log_likelihood": session_min,
        "mean_log_likelihood": session_ll / (length + 1),
        "rarest_transition": transition,
        "rarest_reason": reason,
    }
    result = pd.DataFrame({name: values[rank] for name, values in columns.items()})
    return result
