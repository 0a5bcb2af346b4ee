"""Cluster process events by what they run, so that the rare commands stand out.

:func:`events` groups events whose command lines, process paths and account kinds look alike
(DBSCAN-style density clustering) and marks the events that belong to no dense group as noise
(``cluster == -1``). :func:`rare` returns what an analyst should read: the noise and the small clusters.

How it works (numpy and pandas only):

1. Every feature value is normalised once per distinct value: lower case, numbers, hex values and
   GUIDs masked (``chrome.exe --renderer-client-id=412`` and ``...=7`` become one shape), accounts
   reduced to ``system`` (SYSTEM, LOCAL/NETWORK SERVICE, machine accounts ``HOST$``, ``S-1-5-18``
   ...) or ``user``. Identical normalised events form one *shape*, weighted by how many rows have it.
2. Shapes are tokenised (command-line words, the process path and its file name, the account kind).
   Tokens are weighted by their rarity (inverse document frequency over the rows), and two shapes are
   *neighbours* when their weighted Jaccard similarity is at least ``1 - eps``. Candidate pairs come
   from an inverted index with prefix filtering, so no all-pairs matrix is ever built.
3. DBSCAN on the weighted shapes: a shape whose neighbourhood (itself included) holds at least
   ``min_samples`` rows is a core shape; connected core shapes form a cluster; a shape next to a core
   shape joins that cluster; everything else is noise.

Clusters are numbered by size, largest first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from huntbook.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["COMMAND_COLUMNS", "events", "features", "rare"]

# Default feature columns, first match wins per kind: Sentinel SecurityEvent, ASIM, Sysmon, MDE, ECS-ish.
COMMAND_COLUMNS = ("CommandLine", "TargetProcessCommandLine", "ProcessCommandLine", "process.command_line")
_PATH_COLUMNS = (
    "NewProcessName",
    "TargetProcessName",
    "Image",
    "FolderPath",
    "ProcessName",
    "process.executable",
)
_ACCOUNT_COLUMNS = (
    "SubjectUserName",
    "ActorUsername",
    "AccountName",
    "User",
    "InitiatingProcessAccountName",
    "user.name",
    "SubjectUserSid",
    "ActorUserId",
)
_SYSTEM_ACCOUNTS = frozenset(
    {
        "system",
        "local service",
        "network service",
        "localservice",
        "networkservice",
        "nt authority\\system",
        "nt authority\\local service",
        "nt authority\\network service",
        "s-1-5-18",
        "s-1-5-19",
        "s-1-5-20",
        "-",
        "",
    }
)
_GUID = re.compile(r"\{?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}?")
_HEX = re.compile(r"\b0x[0-9a-f]+\b|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{16,}\b")
_DIGITS = re.compile(r"\d+")
# a bare path (spaces allowed), not a command line: no argument after it
_PATH = re.compile(
    r"^(?:[a-z]:\\|\\\\|/)(?!.*\s(?:[-/]|[a-z]:\\|\\))(?!.*\.(?:exe|com|bat|cmd|ps1)\s)[^\"<>|*?]*$"
)
_SPLIT = re.compile(r"[\s\"'`,;=|()<>]+")
_CAP_PAIRS = 200_000_000  # candidate pairs beyond this mean a too-loose eps: refuse rather than run for ages
_CHUNK_PAIRS = 4_000_000  # candidate pairs handled at once


def _normalise_text(value: str) -> str:
    text = value.lower()
    text = _GUID.sub("<guid>", text)
    text = _HEX.sub("<hex>", text)
    return _DIGITS.sub("0", text)


def _account_kind(value: str) -> str:
    text = value.strip().lower()
    if (
        text in _SYSTEM_ACCOUNTS
        or text.endswith("$")
        or text.startswith(("dwm-", "umfd-", "font driver host"))
    ):
        return "system"
    return "user"


def _pick(frame: pd.DataFrame, names: Sequence[str]) -> str | None:
    return next((name for name in names if name in frame.columns), None)


def _resolve(
    frame: pd.DataFrame, columns: Sequence[str] | None, accounts: Sequence[str] | None
) -> tuple[list[str], list[str]]:
    """(text columns, account columns) to cluster on."""
    if columns is None:
        text = [c for c in (_pick(frame, COMMAND_COLUMNS), _pick(frame, _PATH_COLUMNS)) if c]
        account = [c for c in (_pick(frame, _ACCOUNT_COLUMNS),) if c] if accounts is None else list(accounts)
        if not text:
            raise DataError(
                "no command-line or process-path column found",
                where="columns",
                hint=f"pass columns=[...]; looked for {', '.join(COMMAND_COLUMNS + _PATH_COLUMNS)}",
            )
    else:
        text = [c for c in columns if accounts is None or c not in accounts]
        account = list(accounts or [])
    for column in [*text, *account]:
        if column not in frame.columns:
            raise DataError(
                f"no column {column!r}",
                where=column,
                hint=f"columns are: {', '.join(map(str, frame.columns))}",
            )
    return text, account


def features(
    events: pd.DataFrame, columns: Sequence[str] | None = None, *, accounts: Sequence[str] | None = None
) -> pd.DataFrame:
    """The normalised feature values :func:`events` clusters on, one column per feature column.

    Example::

        cluster.features(df).drop_duplicates().head()
    """
    import pandas as pd

    if not isinstance(events, pd.DataFrame):
        raise DataError(
            f"cluster needs a pandas DataFrame, got {type(events).__name__}", hint="pass one row per event"
        )
    text, account = _resolve(events, columns, accounts)
    out = {}
    for column in [*text, *account]:
        codes, uniques = pd.factorize(events[column].astype(object).where(events[column].notna(), ""))
        fn = _account_kind if column in account else _normalise_text
        normal = [fn(str(u)) for u in uniques]
        values = pd.Series(normal, dtype=object).to_numpy()
        out[column] = values[codes] if len(values) else codes.astype(object)
    return pd.DataFrame(out, index=events.index)


def _shapes(feats: pd.DataFrame, account: set[str]) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """Row -> shape id, rows per shape, and each shape's tokens."""
    import numpy as np
    import pandas as pd

    codes = []
    uniques = []
    for column in feats.columns:
        c, u = pd.factorize(feats[column])
        codes.append(c.astype(np.int64))
        uniques.append(u)
    key = np.zeros(len(feats), dtype=np.int64)
    for c in codes:
        key = pd.factorize(key * (int(c.max(initial=0)) + 1) + c)[0].astype(np.int64)
    shape_of, _ = pd.factorize(key)
    m = int(shape_of.max(initial=-1)) + 1
    first_row = np.full(m, len(feats), dtype=np.int64)
    np.minimum.at(first_row, shape_of, np.arange(len(feats)))
    counts = np.bincount(shape_of, minlength=m)
    tokens: list[list[str]] = [[] for _ in range(m)]
    for j, column in enumerate(feats.columns):
        values = np.asarray(uniques[j], dtype=object)[codes[j][first_row]]
        for i, value in enumerate(values):
            if column in account:
                tokens[i].append(f"{j}:{value}")
                continue
            words = [value] if _PATH.match(value) else [w for w in _SPLIT.split(value) if w]
            for word in words:
                tokens[i].append(f"{j}:{word}")
                base = word.rsplit("\\", 1)[-1].rsplit("/", 1)[-1]
                if base and base != word:  # the file name of a path: the same program in another folder
                    tokens[i].append(f"{j}:~{base}")
    return shape_of, counts, tokens


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort-based: numpy's hash-based unique is slow on these keys)."""
    import numpy as np

    ordered = np.sort(values)
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if len(ordered) else ordered


def _neighbours(
    tokens: list[list[str]], counts: np.ndarray, min_similarity: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of shapes (a < b) with IDF-weighted Jaccard similarity >= min_similarity, and the similarity."""
    import numpy as np
    import pandas as pd

    m = len(tokens)
    lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=m)
    shape = np.repeat(np.arange(m), lengths)
    tok, _ = pd.factorize(pd.Series([t for ts in tokens for t in ts], dtype=object))
    tok = tok.astype(np.int64)
    # one entry per (shape, token): a token repeated inside a shape counts once
    key = _distinct(shape * (int(tok.max(initial=0)) + 1) + tok)
    n_tok = int(tok.max(initial=0)) + 1
    shape, tok = key // n_tok, key % n_tok
    rows = np.bincount(tok, weights=counts[shape], minlength=n_tok)
    total = counts.sum()
    idf = np.log((total + 1) / (rows + 1)) + 1.0
    weight = idf[tok]
    shape_weight = np.bincount(shape, weights=weight, minlength=m)
    # prefix filter: in rarest-first order, a pair can reach the threshold only if b holds a token of
    # a's shortest prefix whose weight exceeds (1 - t) * weight(a)
    order = np.lexsort((tok, -idf[tok], shape))  # a global order: rarest first, then token id
    s_sorted, w_sorted, t_sorted = shape[order], weight[order], tok[order]
    cum = np.cumsum(w_sorted)
    starts = np.r_[0, np.flatnonzero(s_sorted[1:] != s_sorted[:-1]) + 1]
    before = cum - w_sorted - np.repeat(cum[starts] - w_sorted[starts], np.diff(np.r_[starts, len(s_sorted)]))
    in_prefix = before <= (1 - min_similarity) * shape_weight[s_sorted] + 1e-9
    pa, pt = s_sorted[in_prefix], t_sorted[in_prefix]
    rest = (shape_weight[s_sorted] - before)[in_prefix]  # weight from this token to the shape's end
    # the first shared token of two shapes that can reach the threshold is in both prefixes:
    # posting lists of prefix entries only, sorted by token
    by_tok = np.argsort(pt, kind="stable")
    post_shape = pa[by_tok]
    post_rest = rest[by_tok]
    post_len = np.bincount(pt, minlength=n_tok)
    post_start = np.r_[0, np.cumsum(post_len)[:-1]]
    reps = post_len[pt]
    n_pairs = int(reps.sum())
    if n_pairs > _CAP_PAIRS:
        raise DataError(
            f"eps is too loose for this data ({n_pairs:,} candidate pairs)",
            where="eps",
            hint="use a smaller eps, or cluster fewer or more specific columns",
        )
    entries_of = np.bincount(shape, minlength=m)
    entry_start = np.r_[0, np.cumsum(entries_of)[:-1]]
    found_a: list[np.ndarray] = []
    found_b: list[np.ndarray] = []
    found_sim: list[np.ndarray] = []
    # candidate pairs in chunks of prefix entries, so that memory stays bounded
    bounds = np.searchsorted(np.cumsum(reps), np.arange(_CHUNK_PAIRS, n_pairs + _CHUNK_PAIRS, _CHUNK_PAIRS))
    lo = 0
    for hi in np.unique(np.r_[bounds + 1, len(pa)]).clip(max=len(pa)):
        if hi <= lo:
            continue
        ca, ct, cr, crest = pa[lo:hi], pt[lo:hi], reps[lo:hi], rest[lo:hi]
        lo = int(hi)
        total = int(cr.sum())
        a = np.repeat(ca, cr)
        offsets = np.arange(total) - np.repeat(np.cumsum(cr) - cr, cr)
        at = np.repeat(post_start[ct], cr) + offsets
        b = post_shape[at]
        # positional filter: from the first shared token on, the overlap is at most the smaller rest,
        # and the similarity needs overlap >= t (W_a + W_b) / (1 + t); length filter: min W >= t max W
        wa, wb = shape_weight[a], shape_weight[b]
        upper = np.minimum(np.repeat(crest, cr), post_rest[at])
        keep = (a < b) & (upper >= min_similarity * (wa + wb) / (1 + min_similarity) - 1e-9)
        keep &= np.minimum(wa, wb) >= min_similarity * np.maximum(wa, wb) - 1e-9
        pair_key = _distinct(a[keep] * m + b[keep])
        a, b = pair_key // m, pair_key % m
        # exact overlap: the weight of a's tokens that b holds too
        per = entries_of[a]
        checks = int(per.sum())
        offsets = np.arange(checks) - np.repeat(np.cumsum(per) - per, per)
        entry = np.repeat(entry_start[a], per) + offsets  # entries of `key` (sorted by shape, token)
        probe = np.repeat(b, per) * n_tok + tok[entry]
        hit = np.minimum(np.searchsorted(key, probe), len(key) - 1)
        shared = np.where(key[hit] == probe, weight[entry], 0.0)
        overlap = np.bincount(np.repeat(np.arange(len(a)), per), weights=shared, minlength=len(a))
        similarity = overlap / (shape_weight[a] + shape_weight[b] - overlap)
        close = similarity >= min_similarity - 1e-12
        found_a.append(a[close])
        found_b.append(b[close])
        found_sim.append(similarity[close])
    if not found_a or not sum(map(len, found_a)):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    a, b, similarity = np.concatenate(found_a), np.concatenate(found_b), np.concatenate(found_sim)
    order = np.argsort(a * m + b, kind="stable")  # a pair may come from several chunks
    a, b, similarity = a[order], b[order], similarity[order]
    first = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])]
    return a[first], b[first], similarity[first]


def _dbscan(
    counts: np.ndarray, a: np.ndarray, b: np.ndarray, similarity: np.ndarray, min_samples: int
) -> np.ndarray:
    """Cluster label per shape (-1 = noise), DBSCAN on weighted points given the neighbour pairs."""
    import numpy as np

    m = len(counts)
    reach = (
        counts
        + np.bincount(a, weights=counts[b], minlength=m)
        + np.bincount(b, weights=counts[a], minlength=m)
    )
    core = reach >= min_samples
    label = np.arange(m)
    both = core[a] & core[b]
    ca, cb = a[both], b[both]
    while True:  # connected components of core shapes: propagate the smallest id, then jump pointers
        low = np.minimum(label[ca], label[cb])
        new = label.copy()
        np.minimum.at(new, ca, low)
        np.minimum.at(new, cb, low)
        while True:
            jumped = new[new]
            if np.array_equal(jumped, new):
                break
            new = jumped
        if np.array_equal(new, label):
            break
        label = new
    result = np.where(core, label, -1)
    # border shapes join their most similar core neighbour
    src = np.r_[a, b]
    dst = np.r_[b, a]
    sim = np.r_[similarity, similarity]
    border = ~core[src] & core[dst]
    src, dst, sim = src[border], dst[border], sim[border]
    pick = np.lexsort((-sim, src))
    src, dst = src[pick], dst[pick]
    first = np.r_[True, src[1:] != src[:-1]] if len(src) else np.zeros(0, dtype=bool)
    result[src[first]] = label[dst[first]]
    return result


def events(
    events: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    accounts: Sequence[str] | None = None,
    eps: float = 0.4,
    min_samples: int = 5,
) -> pd.DataFrame:
    """Cluster process events; returns the rows with ``cluster`` (-1 = noise) and ``cluster_size``.

    ``columns``: the feature columns (default: the command line, the process path and the account
    column found among the usual Sentinel, ASIM, Sysmon and Defender names). ``accounts``: which of
    them hold account names or SIDs (reduced to ``system``/``user``; default: the inferred account
    column). ``eps``: the largest weighted-Jaccard distance between neighbours (0 = identical after
    normalisation). ``min_samples``: rows a neighbourhood needs to be dense.

    ``cluster_size`` is the number of rows in the cluster; for noise rows it is the number of rows
    with the same normalised shape (1 for a one-off). Rows keep their order and index.

    Example::

        clustered = cluster.events(process_events)
        cluster.rare(clustered)            # noise and clusters of <= 3 rows: what to read
    """
    import numpy as np
    import pandas as pd

    if not 0 <= eps < 1:
        raise DataError("eps must be in [0, 1)", where="eps", hint="e.g. 0.4")
    if min_samples < 1:
        raise DataError("min_samples must be at least 1", where="min_samples", hint="e.g. 5")
    feats = features(events, columns, accounts=accounts)
    out = events.copy()
    if len(events) == 0:
        out["cluster"] = pd.Series(dtype="int64")
        out["cluster_size"] = pd.Series(dtype="int64")
        return out
    account = set(_resolve(events, columns, accounts)[1])
    shape_of, counts, tokens = _shapes(feats, account)
    a, b, similarity = _neighbours(tokens, counts, 1.0 - eps)
    label = _dbscan(counts, a, b, similarity, min_samples)
    # number the clusters by size, largest first
    clustered = label >= 0
    size = np.bincount(label[clustered], weights=counts[clustered], minlength=len(counts)).astype(np.int64)
    ids = np.flatnonzero(size)
    rank = np.empty(len(counts), dtype=np.int64)
    rank[ids[np.lexsort((ids, -size[ids]))]] = np.arange(len(ids))
    shape_cluster = np.where(clustered, rank[np.maximum(label, 0)], -1)
    shape_size = np.where(clustered, size[np.maximum(label, 0)], counts)
    out["cluster"] = shape_cluster[shape_of]
    out["cluster_size"] = shape_size[shape_of]
    return out


def rare(clustered: pd.DataFrame, max_size: int = 3) -> pd.DataFrame:
    """The rows to review: noise and members of clusters of at most ``max_size`` rows, rarest first.

    Example::

        cluster.rare(cluster.events(process_events), max_size=3)
    """
    for column in ("cluster", "cluster_size"):
        if column not in clustered.columns:
            raise DataError(f"no column {column!r}", where=column, hint="pass the result of cluster.events()")
    mask = (clustered["cluster"] < 0) | (clustered["cluster_size"] <= max_size)
    return clustered.loc[mask].sort_values(["cluster_size", "cluster"], kind="stable")
