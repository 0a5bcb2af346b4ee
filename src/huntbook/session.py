"""``QueryProvider``: catalogue queries as callables, run through an environment's driver.

::

    qp = QueryProvider("local", store="~/hunts/case-42")
    qp.process.host_processes(host_name="WS01", start="-2d")        # a DataFrame
    qp.process.host_processes(host_name="WS01", print_query=True)   # the rendered query text
    qp.run("authentication.password_spray", min_accounts=3, split_by="1d")
    qp.exec_query("SELECT count(*) FROM events")

Every call takes the query's own parameters plus ``print_query`` (return the text, run nothing),
``split_by`` (queries with ``start``/``end``: run ``[start, end)`` in chunks and concatenate) and
``timeout`` (seconds before the query is cancelled; default ``duckdb.timeout`` from the config for
``local``, else 300).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huntbook import config as hb_config
from huntbook._types import PathLike
from huntbook.drivers.base import Driver
from huntbook.errors import DriverError, HuntbookError, ParameterError, QueryError, QueryNotFoundError
from huntbook.plugins import registry
from huntbook.queries import (
    QuerySpec,
    canonical_environment,
    load_catalogue,
    normalize_family,
    parse_timespan,
    suggest,
)
from huntbook.store import LocalStore

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_TIMEOUT", "MAX_CHUNKS", "CatalogueQuery", "QueryFamily", "QueryProvider"]

DEFAULT_TIMEOUT = 300.0
MAX_CHUNKS = 10_000


class CatalogueQuery:
    """One catalogue query bound to a provider. Call it with the query's parameters (keywords only).

    Returns a DataFrame, or the query text with ``print_query=True``.
    """

    def __init__(self, provider: QueryProvider, spec: QuerySpec) -> None:
        self._provider = provider
        self.spec = spec
        self.__name__ = spec.name
        self.__qualname__ = spec.qualified_name
        self.__doc__ = spec.help()
        self.__signature__ = spec.signature()

    def __call__(self, **params: Any) -> Any:
        return self._provider._call(self.spec, params)

    def __repr__(self) -> str:
        return f"<query {self.spec.qualified_name}({', '.join(self.spec.parameters)})>"


class QueryFamily:
    """The queries of one family, as attributes (``qp.process.host_processes``); tab-completes."""

    def __init__(self, name: str, queries: Mapping[str, CatalogueQuery]) -> None:
        self.name = name
        self._queries = dict(sorted(queries.items()))
        lines = [
            f"    {q.__name__}: {q.spec.description.splitlines()[0] if q.spec.description else ''}"
            for q in self._queries.values()
        ]
        self.__doc__ = "\n".join([f"Queries of the {name} family:", *lines])

    def __getattr__(self, name: str) -> CatalogueQuery:
        queries: dict[str, CatalogueQuery] = self.__dict__.get("_queries", {})
        if name in queries:
            return queries[name]
        raise AttributeError(f"no query {self.__dict__.get('name')}.{name}. {suggest(name, queries)}".strip())

    def __dir__(self) -> list[str]:
        return sorted({*self._queries, "name"})

    def __iter__(self) -> Iterator[CatalogueQuery]:
        return iter(self._queries.values())

    def __len__(self) -> int:
        return len(self._queries)

    def __repr__(self) -> str:
        return f"<query family {self.name}: {', '.join(self._queries)}>"


class QueryProvider:
    """Catalogue and ad-hoc queries for one environment (``local``, ``splunk``, ``sentinel`` ...).

    Args:
        environment: the driver name (MSTICPy names such as ``MSSentinel`` are mapped).
        store: for ``local``: a LocalStore, a store folder, or any object with ``connect()``
            (default: the config's ``store``).
        query_paths: extra catalogue files or folders, loaded after the packaged catalogue and the
            config's ``query_paths``; later files override earlier ones.
        config: settings (default: :func:`huntbook.config.load`).
        timeout: default seconds per query.
        **connection: driver settings, merged over the config's ``connections.<environment>``.

    Catalogue problems in user files do not stop the provider: they are warned about and listed
    in :attr:`catalogue_errors`. The driver connects on the first query (or :meth:`connect`).
    """

    def __init__(
        self,
        environment: str = "local",
        *,
        store: Any = None,
        query_paths: Iterable[PathLike] = (),
        config: hb_config.Config | None = None,
        timeout: float | None = None,
        **connection: Any,
    ) -> None:
        self.environment = canonical_environment(environment)
        self.config = config if config is not None else hb_config.load()
        self._settings = {**self.config.connection(self.environment), **connection}
        self.driver = self._make_driver(store)
        default = self.config.duckdb.get("timeout", DEFAULT_TIMEOUT) if self.environment == "local" else None
        self.timeout = _check_timeout(timeout if timeout is not None else default or DEFAULT_TIMEOUT)
        catalogue = load_catalogue(self.environment, [*self.config.query_paths, *query_paths])
        shared = self.driver.catalogue  # a driver may run another environment's catalogue too
        if shared and canonical_environment(shared) != self.environment:
            catalogue.queries = {**load_catalogue(shared).queries, **catalogue.queries}
        self.catalogue_errors: list[QueryError] = list(catalogue.errors)
        self._specs: dict[str, QuerySpec] = {}
        for name, spec in catalogue.queries.items():
            if spec.language in self.driver.languages:
                self._specs[name] = spec
            else:
                self.catalogue_errors.append(
                    QueryError(
                        f"{spec.language} query skipped: the {self.environment} driver runs "
                        f"{', '.join(self.driver.languages)}",
                        where=f"{spec.source}:{spec.name}",
                    )
                )
        self._families = self._build_families()

    # -------------------------------------------------------------- construction
    def _make_driver(self, store: Any) -> Driver:
        driver_cls = registry("huntbook.drivers").load(self.environment)
        if isinstance(store, str | os.PathLike):
            store = LocalStore(Path(store))
        elif store is None and self.environment == "local" and self.config.store is not None:
            store = LocalStore(self.config.store)
        if store is None:
            driver: Driver = driver_cls()
            return driver
        try:
            driver = driver_cls(store=store)
        except TypeError as exc:
            raise ParameterError(
                f"the {self.environment} driver takes no store", hint="drop store= for this environment"
            ) from exc
        return driver

    def _build_families(self) -> dict[str, QueryFamily]:
        grouped: dict[str, dict[str, CatalogueQuery]] = {}
        for spec in self._specs.values():
            grouped.setdefault(spec.family, {})[spec.name] = CatalogueQuery(self, spec)
        return {name: QueryFamily(name, queries) for name, queries in sorted(grouped.items())}

    # -------------------------------------------------------------- attributes
    def __getattr__(self, name: str) -> QueryFamily:
        families: dict[str, QueryFamily] = self.__dict__.get("_families", {})
        family = families.get(normalize_family(name)) if not name.startswith("_") else None
        if family is None:
            raise AttributeError(f"{type(self).__name__} has no attribute or query family {name!r}")
        return family

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._families})

    def __repr__(self) -> str:
        return (
            f"QueryProvider(environment={self.environment!r}, driver={type(self.driver).__name__}, "
            f"queries={len(self._specs)}, connected={self.driver.connected})"
        )

    @property
    def families(self) -> dict[str, QueryFamily]:
        """Family name -> :class:`QueryFamily`."""
        return dict(self._families)

    # -------------------------------------------------------------- connection
    def connect(self, **settings: Any) -> None:
        """Connect the driver (done on the first query); ``settings`` override the configured ones.

        Queries the driver offers once connected (``driver.catalogue_queries()``, e.g. Splunk saved
        searches) join the catalogue; a catalogue query of the same name keeps precedence."""
        self.driver.connect(**hb_config.resolve_secrets({**self._settings, **settings}))
        try:
            offered = self.driver.catalogue_queries()
        except HuntbookError as exc:
            self.catalogue_errors.append(QueryError(f"driver queries not listed: {exc}"))
            return
        if offered:
            for spec in offered:
                if spec.language in self.driver.languages:
                    self._specs.setdefault(spec.qualified_name, spec)
            self._families = self._build_families()

    def close(self) -> None:
        """Close the driver's connection."""
        self.driver.close()

    def __enter__(self) -> QueryProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- catalogue
    def list_queries(self) -> list[str]:
        """Every query as ``family.name``."""
        return sorted(self._specs)

    def query_spec(self, name: str) -> QuerySpec:
        """The :class:`QuerySpec` for ``family.name`` (or a bare ``name`` when it is unique)."""
        family, _, short = name.rpartition(".")
        key = f"{normalize_family(family)}.{short}" if family else name
        if key in self._specs:
            return self._specs[key]
        matches = [spec for spec in self._specs.values() if spec.name == short]
        if not family and len(matches) == 1:
            return matches[0]
        if not family and matches:
            raise QueryNotFoundError(
                f"query name {name!r} is ambiguous",
                hint=f"use one of {', '.join(s.qualified_name for s in matches)}",
            )
        candidates = [*self._specs, *(s.name for s in self._specs.values())]
        hint = suggest(name, candidates) or "see qp.list_queries()"
        raise QueryNotFoundError(f"no {self.environment} query named {name!r}", hint=hint)

    def query_help(self, name: str) -> str:
        """Description and parameters of a query."""
        return self.query_spec(name).help()

    def search(self, text: str) -> list[str]:
        """Queries whose name, family, description, parameters or tables contain every word of ``text``."""
        terms = text.lower().split()
        return sorted(name for name, spec in self._specs.items() if all(t in _haystack(spec) for t in terms))

    def browse(self) -> pd.DataFrame:
        """One row per query: query, family, name, description, parameters, required, language, source."""
        import pandas as pd

        rows = [
            {
                "query": spec.qualified_name,
                "family": spec.family,
                "name": spec.name,
                "description": spec.description,
                "parameters": ", ".join(p.describe() for p in spec.parameters.values()),
                "required": ", ".join(p.name for p in spec.parameters.values() if p.required),
                "language": spec.language,
                "source": spec.source,
            }
            for spec in (self._specs[name] for name in self.list_queries())
        ]
        columns = ["query", "family", "name", "description", "parameters", "required", "language", "source"]
        return pd.DataFrame(rows, columns=columns)

    # -------------------------------------------------------------- running
    def run(self, name: str, **params: Any) -> Any:
        """Run a catalogue query by name (``family.name`` or a unique ``name``); see the module docs."""
        return self._call(self.query_spec(name), params)

    def render(self, name: str, **params: Any) -> str:
        """The rendered text of a catalogue query (the same as ``print_query=True``)."""
        text = self._call(self.query_spec(name), {**params, "print_query": True})
        assert isinstance(text, str)
        return text

    def exec_query(
        self, text: str, language: str | None = None, timeout: float | None = None
    ) -> pd.DataFrame:
        """Run ad-hoc query text (``language`` defaults to the driver's first language)."""
        seconds = _check_timeout(timeout) if timeout is not None else None
        return self._execute(text, language or self.driver.languages[0], seconds, None)

    def _call(self, spec: QuerySpec, params: Mapping[str, Any]) -> Any:
        values = dict(params)
        print_query = bool(values.pop("print_query", False))
        split_by = values.pop("split_by", None)
        timeout = values.pop("timeout", None)
        timeout = _check_timeout(timeout) if timeout is not None else None
        bound = spec.bind(values)
        literal = self._literal(spec)
        if split_by is None:
            texts = [spec.render(bound, literal)]
        else:
            texts = [
                spec.render({**bound, "start": s, "end": e}, literal)
                for s, e in _chunks(spec, bound, split_by)
            ]
        if print_query:
            return "\n\n".join(texts)
        frames = [self._execute(text, spec.language, timeout, spec.qualified_name) for text in texts]
        return frames[0] if len(frames) == 1 else _concat(frames, "\n\n".join(texts), spec.qualified_name)

    def _literal(self, spec: QuerySpec) -> Any:
        driver, language = self.driver, spec.language

        def literal(value: Any, param_type: str, quoted: str | None) -> str:
            return driver.literal(value, param_type, quoted, language)

        return literal

    def _execute(self, text: str, language: str, timeout: float | None, name: str | None) -> pd.DataFrame:
        if not self.driver.connected:
            self.connect()
        try:
            frame = self.driver.execute(text, language, timeout or self.timeout, name=name)
        except HuntbookError:
            raise
        except Exception as exc:  # a third-party driver's failure, named
            raise DriverError(
                f"{type(exc).__name__}: {exc}", where=name or f"{self.environment} query"
            ) from exc
        frame.attrs.update(query=text, query_name=name)
        return frame


def _haystack(spec: QuerySpec) -> str:
    parts = [spec.qualified_name, spec.description, *spec.parameters, *spec.tables()]
    return " ".join(parts).lower()


def _check_timeout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ParameterError(f"timeout={value!r} is not a positive number of seconds", hint="e.g. timeout=60")
    return float(value)


def _chunks(spec: QuerySpec, bound: Mapping[str, Any], split_by: Any) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut into consecutive ranges of ``split_by``."""
    if not spec.time_range:
        raise ParameterError(
            f"split_by needs a query with start and end parameters; {spec.qualified_name} has none",
            hint="drop split_by=",
        )
    step = parse_timespan(split_by, name="split_by")
    start, end = bound["start"], bound["end"]
    if step <= timedelta(0):
        raise ParameterError(f"split_by={split_by!r} is not a positive timespan", hint="e.g. split_by='1d'")
    if (end - start) / step > MAX_CHUNKS:
        raise ParameterError(
            f"split_by={split_by!r} cuts {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} into more than "
            f"{MAX_CHUNKS} chunks",
            hint="use a larger split_by",
        )
    ranges: list[tuple[datetime, datetime]] = []
    while start < end or not ranges:
        ranges.append((start, min(start + step, end)))
        start += step
    return ranges


def _concat(frames: list[pd.DataFrame], text: str, name: str) -> pd.DataFrame:
    import pandas as pd

    non_empty = [f for f in frames if len(f)]
    frame = pd.concat(_align_dtypes(non_empty), ignore_index=True) if non_empty else frames[0]
    frame.attrs.update(query=text, query_name=name)
    return frame


def _align_dtypes(frames: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """Give all-null chunk columns the dtype the column has where it holds values, so a split result
    has the dtypes of the unsplit one (an all-null text column comes back as ``object``)."""
    import pandas as pd

    dtypes: dict[str, Any] = {}
    for frame in frames:
        for column in frame.columns:
            if column not in dtypes and frame[column].notna().any():
                dtypes[column] = frame[column].dtype
    aligned = []
    for frame in frames:
        casts = {
            column: dtype
            for column, dtype in dtypes.items()
            if column in frame.columns
            and frame[column].dtype != dtype
            and frame[column].isna().all()
            and not (pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))
        }
        aligned.append(frame.astype(casts) if casts else frame)
    return aligned
