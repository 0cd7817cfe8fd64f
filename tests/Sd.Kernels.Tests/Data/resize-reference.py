# Writes resize-reference.json: torch.nn.functional.interpolate as A1111's latent upscalers call it (size given,
# align_corners unset, antialias per mode), float32 NCHW, on aten's portable CPU kernels.
# Run: ATEN_CPU_CAPABILITY=default python3 resize-reference.py > resize-reference.json (PyTorch 1.13).
import json
import os
import torch
import torch.nn.functional as F

torch.manual_seed(1124)
modes = [("bilinear", "bilinear", False), ("bilinear-antialiased", "bilinear", True), ("bicubic", "bicubic", False),
         ("bicubic-antialiased", "bicubic", True), ("nearest", "nearest", False), ("nearest-exact", "nearest-exact", False)]
sizes = [((3, 5), (6, 10)), ((3, 5), (7, 9)), ((4, 4), (5, 11)), ((2, 3), (3, 3)), ((5, 7), (4, 6)), ((1, 3), (2, 7)),
         ((9, 7), (4, 3)), ((6, 6), (13, 17)),
         # latent-sized axes, where the index's rounding shows: 64 -> 96, 34 -> 46, 40 -> 13, 96 -> 152, 64 -> 144, 7 -> 3
         ((1, 64), (1, 96)), ((2, 34), (3, 46)), ((40, 1), (13, 1)), ((1, 96), (2, 152)), ((64, 2), (144, 3)), ((7, 7), (3, 3))]
cases = []
for name, mode, antialias in modes:
    for (h, w), (oh, ow) in sizes:
        x = torch.randn(1, 4, h, w) * 2
        y = F.interpolate(x, size=(oh, ow), mode=mode, antialias=antialias) if antialias else F.interpolate(x, size=(oh, ow), mode=mode)
        cases.append({"mode": name, "in": list(x.shape), "out": list(y.shape),
                      "x": [float(v) for v in x.reshape(-1)], "y": [float(v) for v in y.reshape(-1)]})
print(json.dumps({"torch": torch.__version__, "aten_cpu_capability": os.environ.get("ATEN_CPU_CAPABILITY", ""), "cases": cases}))
