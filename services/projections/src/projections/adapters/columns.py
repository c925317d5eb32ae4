"""Column types and SQL functions of the projections database, in either dialect: an amount
(`Money`), seconds since 1970 of an instant (`epoch`)."""

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class epoch(FunctionElement[float]):  # noqa: N801 - reads like the SQL function it stands for
    """Seconds since 1970 of an instant column, in either dialect."""

    type = sa.Float()
    inherit_cache = True


@compiles(epoch, "postgresql")
def _epoch_pg(element: epoch, compiler: SQLCompiler, **kw: Any) -> str:
    return f"EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})"


@compiles(epoch, "sqlite")
def _epoch_sqlite(element: epoch, compiler: SQLCompiler, **kw: Any) -> str:
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


class Money(sa.TypeDecorator[Decimal]):
    """An amount with 2 decimals: NUMERIC(18, 2) unless `precision` says otherwise; SQLite
    gets it as text and stores a number."""

    impl = sa.Numeric
    cache_ok = True

    def __init__(self, precision: int = 18) -> None:
        super().__init__(precision, 2)
        self.precision = precision

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.Numeric(self.precision, 2, asdecimal=False))
        return dialect.type_descriptor(sa.Numeric(self.precision, 2))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        return str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:  # noqa: ARG002
        if value is None:
            return None
        return Decimal(str(value)).quantize(CENT)


CENT = Decimal("0.01")
Amount = Money
# A company's registered capital or annual revenue: up to 20 digits (contracts.customer).
COMPANY_FIGURE = 20
