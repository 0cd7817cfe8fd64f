# Writes beta-quantiles.json: scipy.stats.beta.ppf, the quantiles diffusers' _convert_to_beta and A1111's
# beta_scheduler take. Run: python3 beta-quantiles.py > beta-quantiles.json (scipy 1.10).
import json
import numpy as np
import scipy
from scipy import stats

pairs = [(0.6, 0.6), (0.5, 0.5), (1.0, 1.0), (2.0, 5.0), (0.3, 3.0), (5.0, 0.8), (40.0, 60.0), (0.2, 8.0), (8.0, 0.2)]
ps = [1e-12, 1e-6, 0.001, 0.05, 0.25, 0.5, 0.6180339887, 0.75, 0.95, 0.999, 1 - 1e-6, 1 - 1e-12]
points = [{"p": p, "a": a, "b": b, "x": float(stats.beta.ppf(p, a, b))} for a, b in pairs for p in ps]
# The ramps' quantiles, as diffusers computes them: ppf(1 - linspace(0, 1, steps), 0.6, 0.6).
ramps = {str(n): [float(stats.beta.ppf(t, 0.6, 0.6)) for t in 1 - np.linspace(0, 1, n)] for n in [1, 2, 7, 9, 20, 48, 50, 150]}
print(json.dumps({"generator": "tests/Sd.Engine.Tests/Data/beta-quantiles.py: scipy " + scipy.__version__ + " stats.beta.ppf",
                  "points": points, "ramps": ramps}))
