"""Scaling-law forms: L(x) over one axis (x = D training structures or N parameters) and
L(N, D) over the grid, with the parameter names used in ``fits.json``.

Conventions
-----------
* L is the validation loss (the package's ``val_loss``: MAE of the interband spectrum + MAE of
  the Drude frequency; the spectrum MAE is dimensionless, the Drude MAE is in eV — the sum is
  treated as a plain number here). D counts training structures, N trainable parameters.
* All forms decrease with x for positive exponents. Exponents are named ``alpha*``; scales
  (``x0``, ``xc``, ``n_c``, ``d_c``) are in units of the axis (structures or parameters);
  ``amplitude``, ``l_inf`` and ``l_0`` are in units of L.
* Broken power law: slope ``alpha1`` well below the crossover ``xc``, ``alpha2`` well above it.
* Internally (:func:`Form.model`) scales and the amplitude are fitted as log10 values and every
  form is evaluated in log space (``logaddexp``) so that no start overflows; ``to_natural`` /
  ``to_internal`` convert between the two parameterisations. 2D inputs are the pair (N, D).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

LN10 = np.log(10.0)

FORMS_1D = ("power", "power_floor", "broken", "broken_amp")
FORMS_2D = ("kaplan", "hoffmann")
SCALES = frozenset({"x0", "xc", "n_c", "d_c"})  # parameters in units of the axis (structures or parameters)


def _softplus_log(u: np.ndarray) -> np.ndarray:
    """ln(1 + e^u), stable for any u."""
    return np.logaddexp(0.0, u)


def _power(lx, alpha, lg_x0):
    return np.exp(alpha * (lg_x0 * LN10 - lx))


def _power_floor(lx, alpha, lg_x0, l_inf):
    return l_inf + np.exp(alpha * (lg_x0 * LN10 - lx))


def _broken_log(lx, alpha1, alpha2, lg_xc):
    u = lg_xc * LN10 - lx  # ln(xc / x)
    return alpha2 * u + (alpha1 - alpha2) * _softplus_log(u)


def _broken(lx, alpha1, alpha2, lg_xc):
    return np.exp(_broken_log(lx, alpha1, alpha2, lg_xc))


def _broken_amp(lx, alpha1, alpha2, lg_xc, lg_amp):
    return np.exp(lg_amp * LN10 + _broken_log(lx, alpha1, alpha2, lg_xc))


def _kaplan(lnd, alpha_n, alpha_d1, alpha_d2, lg_nc, lg_dc):
    ln_n, ln_d = lnd
    u = (lg_nc * LN10 - ln_n) * (alpha_n / alpha_d2)  # ln (Nc/N)^(αN/αD2)
    w = lg_dc * LN10 - ln_d  # ln(Dc/D)
    v = w + (alpha_d1 / alpha_d2 - 1.0) * _softplus_log(w)
    return np.exp(alpha_d2 * np.logaddexp(u, v))


def _hoffmann(lnd, alpha_n, alpha_d1, alpha_d2, lg_nc, lg_dc, l_0):
    ln_n, ln_d = lnd
    w = lg_dc * LN10 - ln_d
    return (l_0 + np.exp(alpha_n * (lg_nc * LN10 - ln_n))
            + np.exp(alpha_d2 * w + (alpha_d1 - alpha_d2) * _softplus_log(w)))


@dataclass(frozen=True)
class Form:
    """One functional form.

    ``params``: names in ``fits.json`` order; ``log10``: those fitted as log10 values;
    ``lower``: natural lower bounds (others unbounded); ``model(lx, *theta)``: the form in the
    internal parameterisation, with ``lx`` = ln x (1D, shape (n,)) or (ln N, ln D) (2D, (2, n)).
    ``reference_start``: the conventional single start (the paper's ``p0``), in natural units,
    as a function of the data (x, y) — kept to show when multi-start finds a better optimum.
    """

    name: str
    dim: int
    params: tuple[str, ...]
    log10: frozenset[str]
    model: Callable
    reference_start: Callable
    lower: dict[str, float] = field(default_factory=dict)
    equation: str = ""

    @property
    def k(self) -> int:
        return len(self.params)

    def to_internal(self, natural) -> np.ndarray:
        values = np.asarray(natural, dtype=float)
        return np.array([np.log10(v) if p in self.log10 else v for p, v in zip(self.params, values)])

    def to_natural(self, theta) -> np.ndarray:
        return np.array([10.0 ** t if p in self.log10 else t for p, t in zip(self.params, theta)])

    def jacobian_to_natural(self, theta) -> np.ndarray:
        """Diagonal of d(natural)/d(internal) at ``theta`` (for the covariance transform)."""
        return np.array([LN10 * 10.0 ** t if p in self.log10 else 1.0 for p, t in zip(self.params, theta)])

    def bounds_internal(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.array([self.lower.get(p, -np.inf) for p in self.params], dtype=float)
        lo = np.array([np.log10(v) if (p in self.log10 and np.isfinite(v)) else v for p, v in zip(self.params, lo)])
        return lo, np.full(self.k, np.inf)

    @property
    def bounded(self) -> bool:
        return bool(self.lower)

    def __call__(self, x, params) -> np.ndarray:
        """L at ``x`` (1D: array of D or N; 2D: pair (N, D) of arrays) for natural ``params``
        (a dict by name or a sequence in ``self.params`` order)."""
        if isinstance(params, dict):
            params = [params[p] for p in self.params]
        theta = self.to_internal(params)
        lx = np.log(np.asarray(x, dtype=float))
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self.model(lx, *theta)


FORMS: dict[str, Form] = {
    "power": Form(
        "power", 1, ("alpha", "x0"), frozenset({"x0"}), _power,
        lambda x, y: [0.1, x[0]], equation="L = (x0/x)^alpha",
    ),
    "power_floor": Form(
        "power_floor", 1, ("alpha", "x0", "l_inf"), frozenset({"x0"}), _power_floor,
        lambda x, y: [0.1, x[0], y[-1]], lower={"l_inf": 0.0}, equation="L = l_inf + (x0/x)^alpha",
    ),
    "broken": Form(
        "broken", 1, ("alpha1", "alpha2", "xc"), frozenset({"xc"}), _broken,
        lambda x, y: [0.1, 0.1, x[0]], equation="L = (xc/x)^alpha2 (1 + xc/x)^(alpha1 - alpha2)",
    ),
    "broken_amp": Form(
        "broken_amp", 1, ("alpha1", "alpha2", "xc", "amplitude"), frozenset({"xc", "amplitude"}), _broken_amp,
        lambda x, y: [0.1, 0.1, x[0], 1.0],
        equation="L = amplitude (xc/x)^alpha2 (1 + xc/x)^(alpha1 - alpha2)",
    ),
    "kaplan": Form(
        "kaplan", 2, ("alpha_n", "alpha_d1", "alpha_d2", "n_c", "d_c"), frozenset({"n_c", "d_c"}), _kaplan,
        lambda x, y: [0.5, 0.5, 0.5, 1e4, 1e4],
        equation="L = [(n_c/N)^(alpha_n/alpha_d2) + (d_c/D)(1 + d_c/D)^(alpha_d1/alpha_d2 - 1)]^alpha_d2",
    ),
    "hoffmann": Form(
        "hoffmann", 2, ("alpha_n", "alpha_d1", "alpha_d2", "n_c", "d_c", "l_0"), frozenset({"n_c", "d_c"}),
        _hoffmann, lambda x, y: [0.5, 0.5, 0.5, 1e4, 1e4, 0.0], lower={"l_0": 0.0},
        equation="L = l_0 + (n_c/N)^alpha_n + (d_c/D)^alpha_d2 (1 + d_c/D)^(alpha_d1 - alpha_d2)",
    ),
}


def starts(form: Form, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Deterministic multi-start set (internal parameters) spanning exponents 0.05–1 and scales
    from well below to well above the measured range; scales are placed so that the start passes
    near the data where the form allows. x: (n,) for 1D, (2, n) = (N, D) for 2D; y: (n,) means.
    """
    out: list[np.ndarray] = []
    y = np.asarray(y, dtype=float)
    if form.dim == 1:
        lx = np.log10(x)
        i_mid = len(x) // 2
        if form.name in ("power", "power_floor"):
            floors = [0.0] if form.name == "power" else [0.0, 0.5 * y.min(), 0.9 * y.min()]
            for alpha in (0.05, 0.15, 0.4, 1.0):
                for floor in floors:
                    excess = max(y[i_mid] - floor, 1e-3 * y[i_mid])
                    lg_x0 = lx[i_mid] + np.log10(excess) / alpha
                    out.append(np.array([alpha, lg_x0] + ([floor] if form.name == "power_floor" else [])))
        else:
            for a1 in (0.05, 0.2, 0.5):
                for a2 in (0.05, 0.2, 0.5, 1.0):
                    for lg_xc in np.linspace(lx.min() - 1.0, lx.max() + 1.0, 5):
                        theta = [a1, a2, lg_xc]
                        if form.name == "broken_amp":
                            shape = _broken_log(np.log(x[0]), a1, a2, lg_xc)
                            theta.append((np.log(y[0]) - shape) / LN10)
                        out.append(np.array(theta))
    else:
        lg_n, lg_d = np.log10(x[0]), np.log10(x[1])
        for an in (0.1, 0.3, 0.7):
            for ad1 in (0.1, 0.3):
                for ad2 in (0.2, 0.5):
                    for lg_nc in np.linspace(lg_n.min() - 1.0, lg_n.max(), 3):
                        for lg_dc in np.linspace(lg_d.min() - 0.5, lg_d.max(), 3):
                            if form.name == "kaplan":
                                out.append(np.array([an, ad1, ad2, lg_nc, lg_dc]))
                            else:
                                for l0 in (0.0, 0.5 * y.min()):
                                    out.append(np.array([an, ad1, ad2, lg_nc, lg_dc, l0]))
    return out
