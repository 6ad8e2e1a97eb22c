"""Type stubs for plait.scaling."""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, overload

__all__ = [
    "MODELS",
    "AmdahlFit",
    "Coefficient",
    "Fit",
    "GustafsonFit",
    "Interpreter",
    "ModelResult",
    "Peak",
    "Point",
    "ScaleReport",
    "Skipped",
    "USLFit",
    "amdahl",
    "cpu_count",
    "fit_points",
    "gustafson",
    "measure",
    "merge",
    "plot",
    "read_csv",
    "run_sweep",
    "text_chart",
    "usl",
    "verdict",
]

MODELS: tuple[str, ...]

@dataclass(frozen=True)
class Coefficient:
    name: str
    estimate: float
    std_error: float
    t_value: float
    p_value: float
    ci_lower: float
    ci_upper: float
    def __float__(self) -> float: ...

class Peak(NamedTuple):
    n: float
    x: float

@dataclass(frozen=True, repr=False)
class Fit:
    load: tuple[float, ...]
    throughput: tuple[float, ...]
    coefficients: tuple[Coefficient, ...]
    level: float
    covariance: tuple[tuple[float, ...], ...]
    fitted: tuple[float, ...]
    residuals: tuple[float, ...]
    rss: float
    df: int
    residual_se: float
    r_squared: float
    model: ClassVar[str]
    formula: ClassVar[str]
    def __getitem__(self, name: str) -> Coefficient: ...
    @property
    def coef(self) -> dict[str, float]: ...
    @property
    def gamma(self) -> float: ...
    @property
    def efficiency(self) -> tuple[float, ...]: ...
    @property
    def adj_r_squared(self) -> float: ...
    @overload
    def predict(self, n: float) -> float: ...
    @overload
    def predict(self, n: Iterable[float]) -> list[float]: ...
    def confint(self, level: float | None = None) -> dict[str, tuple[float, float]]: ...
    def summary(self) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...

@dataclass(frozen=True, repr=False)
class USLFit(Fit):
    @property
    def alpha(self) -> float: ...
    @property
    def beta(self) -> float: ...
    def peak(self) -> Peak: ...
    def optimal(self) -> float: ...
    def limit(self) -> float: ...

@dataclass(frozen=True, repr=False)
class AmdahlFit(Fit):
    @property
    def sigma(self) -> float: ...
    @property
    def serial_fraction(self) -> float: ...
    def max_speedup(self) -> float: ...
    def limit(self) -> float: ...

@dataclass(frozen=True, repr=False)
class GustafsonFit(Fit):
    @property
    def serial_fraction(self) -> float: ...
    def speedup(self, n: float) -> float: ...

def usl(
    load: Iterable[float], throughput: Iterable[float], *, level: float = 0.95, warn: bool = True
) -> USLFit: ...
def amdahl(
    load: Iterable[float], throughput: Iterable[float], *, level: float = 0.95, warn: bool = True
) -> AmdahlFit: ...
def gustafson(
    load: Iterable[float], throughput: Iterable[float], *, level: float = 0.95, warn: bool = True
) -> GustafsonFit: ...

@dataclass(frozen=True)
class Point:
    model: str
    workers: int
    throughput: float
    low: float
    high: float
    calls: int
    repeats: tuple[float, ...] = ()

class Skipped(Exception): ...

def measure(
    func: Callable[..., Any],
    model: str,
    workers: int,
    args: Sequence[tuple[Any, ...]] = (),
    *,
    duration: float = 5.0,
    repeats: int = 3,
) -> Point: ...

@dataclass(frozen=True)
class Interpreter:
    version: tuple[int, int, int]
    free_threaded: bool = False
    gil_enabled: bool = True
    implementation: str = "cpython"
    executable: str = ""
    tag: str = ""
    @classmethod
    def current(cls) -> Interpreter: ...
    @property
    def short(self) -> str: ...
    @property
    def label(self) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Interpreter: ...

@dataclass(frozen=True)
class ModelResult:
    model: str
    points: tuple[Point, ...] = ()
    amdahl: AmdahlFit | None = None
    usl: USLFit | None = None
    notes: tuple[str, ...] = ()
    skipped: str | None = None
    python: Interpreter | None = None
    @property
    def name(self) -> str: ...
    @property
    def speedup(self) -> float: ...
    @property
    def best(self) -> Point | None: ...
    def to_dict(self) -> dict[str, Any]: ...
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelResult: ...

@dataclass(frozen=True)
class ScaleReport:
    target: str
    models: tuple[ModelResult, ...]
    cores: int = ...
    source: str = "sweep"
    python: Interpreter | None = None
    def __getitem__(self, name: str) -> ModelResult: ...
    def verdict(self) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScaleReport: ...

def cpu_count() -> int: ...
def fit_points(model: str, points: Sequence[Point]) -> ModelResult: ...
def run_sweep(
    func: Callable[..., Any],
    args: Sequence[tuple[Any, ...]] = (),
    *,
    target: str = "",
    models: Iterable[str] = ...,
    workers: Iterable[int] = (1, 2, 4, 8),
    duration: float = 5.0,
    repeats: int = 3,
    progress: Callable[[str], None] | None = None,
) -> ScaleReport: ...
def merge(reports: Sequence[ScaleReport]) -> ScaleReport: ...
def read_csv(path: str, *, default_model: str = "data") -> ScaleReport: ...
def verdict(report: ScaleReport) -> str: ...
def text_chart(report: ScaleReport, *, width: int = 60, height: int = 12) -> str: ...
def plot(report: ScaleReport, path: str, *, title: str | None = None) -> None: ...
