"""Run celer's / skglm's / scikit-learn's MultiTaskLasso on one design, in whatever Python
runs this file (benchmarks/group_lasso.py starts it with the peers' own environment).

    python _peers_mtl.py IN.npz OUT.json

IN.npz holds X (m, d), Y (m, h), lam, and a JSON string ``jobs``: a list of
{"lib": "celer"|"skglm"|"sklearn", "tol": float|None (None: the library's default),
"repeats": int}. Each job is fitted once untimed (numba compilation, caches), then
``repeats`` times (fewer once 5 s have passed); OUT.json gets, per job, the library's
version, the median and all wall times in ms, and the coefficients (h, d) of the last
fit (as a nested list).
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np


def estimator(lib, lam, tol):
    kw = {} if tol is None else {"tol": tol}
    if lib == "celer":
        import celer

        return celer.MultiTaskLasso(alpha=lam, fit_intercept=False, **kw), celer.__version__
    if lib == "skglm":
        import skglm

        return skglm.MultiTaskLasso(alpha=lam, fit_intercept=False, **kw), skglm.__version__
    if lib == "sklearn":
        import sklearn
        from sklearn.linear_model import MultiTaskLasso

        return MultiTaskLasso(alpha=lam, fit_intercept=False, **kw), sklearn.__version__
    raise ValueError(lib)


def main():
    data = np.load(sys.argv[1])
    x, y, lam = data["X"], data["Y"], float(data["lam"])
    out = []
    for job in json.loads(str(data["jobs"])):
        try:
            est, version = estimator(job["lib"], lam, job.get("tol"))
        except ImportError as e:
            out.append({**job, "error": f"not installed ({e})"})
            continue
        times = []
        try:
            fit_job(est, x, y, job, times)
        except Exception as e:  # noqa: BLE001 - reported per job, the others still run
            out.append({**job, "version": version, "error": f"failed: {type(e).__name__}: {e}"})
            continue
        out.append(
            {
                **job,
                "version": version,
                "time_ms": float(np.median(times)),
                "times_ms": times,
                "coef": np.asarray(est.coef_).tolist(),
            }
        )
    with open(sys.argv[2], "w") as fh:
        json.dump(out, fh)


def fit_job(est, x, y, job, times):
    """One untimed fit, then ``repeats`` timed ones (appended to ``times``, in ms)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(x, y)  # untimed: compilation and caches
        start = time.perf_counter()
        for _ in range(job.get("repeats", 3)):
            if times and time.perf_counter() - start > 5.0:  # slow fits: fewer repeats
                break
            t0 = time.perf_counter()
            est.fit(x, y)
            times.append(1e3 * (time.perf_counter() - t0))


if __name__ == "__main__":
    main()
