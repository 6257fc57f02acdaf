"""Search spaces: dotted config overrides with a distribution each, validated like `reid train` overrides.

A space is a mapping (built in below, or a YAML file passed to `reid tune search --space FILE`):

```yaml
method: asanet                       # the method the space is written for
params:                              # dotted key -> distribution
  loss.lambda_pmi: loguniform(1e-3, 5e-2)
  data.seq_len: choice([4, 6, 8])
tied:                                # optional: keys derived from a sampled key (factor * key)
  loss.lambda_pmi_raised: 2 * loss.lambda_pmi
fixed: {train.eval_every: 1}         # optional: constant overrides for every trial
```

Distributions: uniform(lo, hi), loguniform(lo, hi), quniform(lo, hi, q), qloguniform(lo, hi, q), randint(lo, hi)
(hi exclusive, as in Tune), qrandint(lo, hi, q) (hi inclusive), choice([a, b, ...]).

`validate_space` checks every key at its extreme values (and every choice) through
`reid.config.validate_overrides`, the same validation as the `reid train` command line, so a typo or an
out-of-range bound is an error before Ray starts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reid.config import ConfigError, ExperimentConfig, validate_overrides
from reid.config.loader import read_yaml_mapping
from reid.errors import ReidError

# The parameter names are those of the method files (reid/models/<method>.py, reid/losses/*.py).
# asanet: the paper's objective (eq. 19) has no triplet margin (the WRT loss of eq. 14 and the PMI triplet of eqs.
# 11-13 are margin-free), so its metric-learning knob here is the WRT weight instead.
BUILTIN_SPACES: dict[str, dict[str, Any]] = {
    "baseline": {"method": "baseline", "params": {
        "loss.triplet_margin": "uniform(0.1, 0.8)",
        "data.seq_len": "choice([2, 4, 6, 8])"}},
    "adfta": {"method": "adfta", "params": {
        "model.sigma": "uniform(0.1, 1.5)",          # eq. 2 temperature (table 4 rows E-H: 0.3 .. 1.2)
        "loss.weight_attr": "loguniform(0.1, 10.0)",  # weight of the attribute recognition loss
        "data.seq_len": "choice([2, 4, 6, 8])"}},
    "asanet": {"method": "asanet", "params": {
        "loss.lambda_pmi": "loguniform(1e-3, 5e-2)",
        # both weight orders: the paper's text (cent 1.5, BCE 5e-4, the default) and the swapped one (5e-4, 1.5)
        "loss.lambda_cent": "loguniform(1e-4, 3.0)",
        "loss.lambda_bce": "loguniform(1e-4, 3.0)",
        "loss.weight_wrt": "uniform(0.5, 2.0)",
        "data.seq_len": "choice([2, 4, 6, 8])"},
        # the paper doubles lambda_PMI once the pose / motion BCE is low (0.005 -> 0.01); keep that ratio
        "tied": {"loss.lambda_pmi_raised": "2 * loss.lambda_pmi"}},
    "posetap": {"method": "posetap", "params": {
        "loss.margin": "uniform(0.1, 0.8)",           # ranking (triplet) margin
        "data.seq_len": "choice([4, 6, 8])"}},
    "fcnta": {"method": "fcnta", "params": {
        "loss.margin": "uniform(0.5, 4.0)",           # siamese hinge margin
        "data.seq_len": "choice([4, 8, 12, 16])"}},
    "astpn": {"method": "astpn", "params": {
        "loss.margin": "uniform(1.0, 5.0)",           # eq. 6 hinge margin m
        "data.seq_len": "choice([4, 8, 12, 16])"}},
}
for _m in list(BUILTIN_SPACES):  # one-parameter spaces: `<method>-T` sweeps only the sequence length
    BUILTIN_SPACES[f"{_m}-T"] = {"method": _m, "params": {"data.seq_len": BUILTIN_SPACES[_m]["params"]["data.seq_len"]}}

_ARITY = {"uniform": 2, "loguniform": 2, "quniform": 3, "qloguniform": 3, "randint": 2, "qrandint": 3, "choice": 1}
_EXPR = re.compile(r"^\s*([a-z]+)\s*\((.*)\)\s*$", re.S)
_TIED = re.compile(r"^\s*([-+0-9.eE]+)\s*\*\s*([A-Za-z_][\w.]*)\s*$")


@dataclass(frozen=True)
class Dimension:
    """One searched key: `kind` is a distribution name, `args` its arguments (choice: the list of options)."""

    key: str
    kind: str
    args: tuple

    def to_tune(self):
        from ray import tune

        if self.kind == "choice":
            return tune.choice(list(self.args))
        return getattr(tune, self.kind)(*self.args)

    @property
    def log_scale(self) -> bool:
        return self.kind in ("loguniform", "qloguniform")

    def probe_values(self) -> list[Any]:
        """Values that must all pass config validation: the bounds (just inside an exclusive one), every choice."""
        if self.kind == "choice":
            return list(self.args)
        lo, hi = self.args[0], self.args[1]
        if self.kind == "randint":
            return [lo, hi - 1]
        if self.kind == "qrandint":
            return [lo, hi]
        inner = hi - (hi - lo) * 1e-9
        mid = math.sqrt(lo * hi) if self.log_scale else (lo + hi) / 2
        return [lo, mid, inner]

    def describe(self) -> str:
        if self.kind == "choice":
            return f"choice({list(self.args)})"
        return f"{self.kind}({', '.join(repr(a) for a in self.args)})"


@dataclass
class SearchSpace:
    name: str
    method: str | None
    params: dict[str, Dimension]
    tied: dict[str, tuple[float, str]] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)

    def to_tune(self) -> dict[str, Any]:
        return {key: dim.to_tune() for key, dim in self.params.items()}

    def overrides(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """The dotted overrides of one trial: fixed keys, the sampled keys, then the tied keys."""
        out = dict(self.fixed)
        out.update({k: sample[k] for k in self.params if k in sample})
        for key, (factor, source) in self.tied.items():
            out[key] = factor * out[source]
        return out


def parse_distribution(key: str, text: Any) -> Dimension:
    """`loguniform(1e-3, 5e-2)` -> Dimension; a bad expression is a ReidError naming the key."""
    if isinstance(text, list):  # a bare YAML list means choice(list)
        return Dimension(key, "choice", tuple(text))
    m = _EXPR.match(str(text))
    if not m or m.group(1) not in _ARITY:
        raise ReidError(f"search space key '{key}': cannot parse '{text}'; expected one of "
                        + ", ".join(f"{k}(...)" for k in _ARITY))
    kind = m.group(1)
    try:
        args = yaml.safe_load(f"[{m.group(2)}]")
    except yaml.YAMLError as exc:
        raise ReidError(f"search space key '{key}': bad arguments in '{text}': {exc}") from None
    if kind == "choice":
        options = args[0] if len(args) == 1 and isinstance(args[0], list) else args
        if not options:
            raise ReidError(f"search space key '{key}': choice() needs at least one option")
        return Dimension(key, kind, tuple(options))
    if len(args) != _ARITY[kind]:
        raise ReidError(f"search space key '{key}': {kind} takes {_ARITY[kind]} numbers, got '{text}'")
    nums = []
    for a in args:
        if isinstance(a, str):
            try:
                a = float(a)  # YAML 1.1 reads `1e-3` (no dot) as a string
            except ValueError:
                raise ReidError(f"search space key '{key}': '{a}' in '{text}' is not a number") from None
        if isinstance(a, bool) or not isinstance(a, int | float):
            raise ReidError(f"search space key '{key}': '{a}' in '{text}' is not a number")
        nums.append(a)
    lo, hi = nums[0], nums[1]
    if not lo < hi:
        raise ReidError(f"search space key '{key}': lower bound {lo} must be below upper bound {hi}")
    if kind in ("loguniform", "qloguniform") and lo <= 0:
        raise ReidError(f"search space key '{key}': {kind} needs a positive lower bound, got {lo}")
    if kind in ("randint", "qrandint") and not all(float(n).is_integer() for n in nums):
        raise ReidError(f"search space key '{key}': {kind} needs integers, got '{text}'")
    if kind in ("randint", "qrandint"):
        nums = [int(n) for n in nums]
    return Dimension(key, kind, tuple(nums))


def space_from_mapping(name: str, data: Mapping[str, Any]) -> SearchSpace:
    unknown = sorted(set(data) - {"method", "params", "tied", "fixed"})
    if unknown:
        raise ReidError(f"search space '{name}': unknown section(s) {unknown}; allowed: method, params, tied, fixed")
    params = data.get("params") or {}
    if not isinstance(params, Mapping) or not params:
        raise ReidError(f"search space '{name}' needs a non-empty `params` mapping of dotted key -> distribution")
    dims = {str(k): parse_distribution(str(k), v) for k, v in params.items()}
    tied: dict[str, tuple[float, str]] = {}
    for key, expr in (data.get("tied") or {}).items():
        m = _TIED.match(str(expr))
        if not m:
            raise ReidError(f"search space '{name}': tied key '{key}' must read '<factor> * <searched key>', "
                            f"got '{expr}'")
        if m.group(2) not in dims:
            raise ReidError(f"search space '{name}': tied key '{key}' refers to '{m.group(2)}', which is not "
                            f"searched; searched keys: {', '.join(dims)}")
        tied[str(key)] = (float(m.group(1)), m.group(2))
    fixed = dict(data.get("fixed") or {})
    clash = sorted((set(tied) | set(fixed)) & set(dims))
    if clash:
        raise ReidError(f"search space '{name}': {clash} both searched and tied/fixed")
    return SearchSpace(name=name, method=data.get("method"), params=dims, tied=tied, fixed=fixed)


def load_space(name_or_path: str) -> SearchSpace:
    """A built-in space by name (`adfta`, `asanet-T`, ...) or a YAML file."""
    if name_or_path in BUILTIN_SPACES:
        return space_from_mapping(name_or_path, BUILTIN_SPACES[name_or_path])
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return space_from_mapping(path.stem, read_yaml_mapping(path, "search space file"))
    raise ReidError(f"unknown search space '{name_or_path}'; built-in spaces: {', '.join(sorted(BUILTIN_SPACES))} "
                    f"(or pass a YAML file)")


def validate_space(space: SearchSpace, cfg: ExperimentConfig) -> None:
    """Every key of `space`, at every probe value, must pass the `reid train` override validation of `cfg`."""
    if space.method and space.method != cfg.method:
        raise ReidError(f"search space '{space.name}' is written for method '{space.method}', "
                        f"but the config trains '{cfg.method}'")
    first = {k: d.probe_values()[0] for k, d in space.params.items()}
    _check(space, cfg, space.overrides(first), "fixed and lower-bound values")
    for key, dim in space.params.items():
        for value in dim.probe_values():
            _check(space, cfg, space.overrides({**first, key: value}), f"{key}={value!r}")


def _check(space: SearchSpace, cfg: ExperimentConfig, overrides: dict[str, Any], what: str) -> None:
    try:
        validate_overrides(cfg, overrides)
    except ConfigError as exc:
        raise ConfigError(f"search space '{space.name}' is invalid ({what}): {exc}") from None
