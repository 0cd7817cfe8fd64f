"""Times one guided UNet call (batch 2) in PyTorch and ONNX Runtime, for the side-by-side rows of
bench/RESULTS.md. Run it on the machine that runs `sd bench --part unet`, on the same `unet/` folder.

  python3 compare_unet.py check CASE_DIR UNET_DIR          # against CASE_DIR/noise_pred.npy: a fixtures unet case
                                                           # (diffusers' output) or `sd unet`'s output on its inputs
  python3 compare_unet.py torch UNET_DIR --threads T [--latent 64] [--reps 3]
  python3 compare_unet.py export UNET_DIR OUT.onnx [--latent 64]
  python3 compare_unet.py ort OUT.onnx --threads T [--latent 64] [--reps 3] [--against UNET_DIR]

Like sd bench, every timing mode does one warm-up call, then prints the median of the timed calls.
--against also runs the PyTorch model once on the same inputs and prints how far ONNX Runtime's output is.
"""
import argparse
import inspect
import statistics
import time

import numpy as np
import torch

from torch_unet import TorchUNet


def guided_inputs(latent, context_dim, seed=0):
    """Batch 2 as classifier-free guidance builds it: repeated latents, one timestep, two contexts."""
    g = torch.Generator().manual_seed(seed)
    half = torch.randn(1, 4, latent, latent, generator=g)
    sample = torch.cat([half, half])
    timestep = torch.tensor(500, dtype=torch.int64)
    context = torch.randn(2, 77, context_dim, generator=g)
    return sample, timestep, context


def report(label, seconds):
    print(f"{label}: median {statistics.median(seconds):.3f} s (min {min(seconds):.3f}, max {max(seconds):.3f}, "
          f"{len(seconds)} runs)", flush=True)


def time_calls(call, reps):
    call()  # warm-up
    seconds = []
    for _ in range(reps):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["check", "torch", "export", "ort"])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--latent", type=int, default=64)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--against")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.mode == "check":
        case, unet_dir = args.paths
        model = TorchUNet(unet_dir).eval()
        load = lambda name: torch.from_numpy(np.load(f"{case}/{name}.npy"))
        with torch.inference_mode():
            out = model(load("sample"), load("timestep"), load("encoder_hidden_states")).numpy()
        ref = np.load(f"{case}/noise_pred.npy")
        rel = np.linalg.norm(out - ref) / np.linalg.norm(ref)
        print(f"check {case}: max abs {np.abs(out - ref).max():.3e}, rel L2 {rel:.3e}")
        return

    if args.mode == "ort":
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        start = time.perf_counter()
        session = ort.InferenceSession(args.paths[0], options, providers=["CPUExecutionProvider"])
        print(f"ort {ort.__version__} session {time.perf_counter() - start:.1f} s", flush=True)
        context_dim = session.get_inputs()[2].shape[2]
        sample, timestep, context = guided_inputs(args.latent, context_dim)
        feeds = {"sample": sample.numpy(), "timestep": timestep.numpy(), "context": context.numpy()}
        report(f"ort unet {args.latent}x{args.latent} batch 2, {args.threads} threads",
               time_calls(lambda: session.run(None, feeds), args.reps))
        if args.against:
            with torch.inference_mode():
                ref = TorchUNet(args.against).eval()(sample, timestep, context).numpy()
            out = session.run(None, feeds)[0]
            print(f"ort vs torch: max abs {np.abs(out - ref).max():.3e}, "
                  f"rel L2 {np.linalg.norm(out - ref) / np.linalg.norm(ref):.3e}", flush=True)
        return

    model = TorchUNet(args.paths[0]).eval()
    sample, timestep, context = guided_inputs(args.latent, model.config["cross_attention_dim"])
    if args.mode == "torch":
        with torch.inference_mode():
            report(f"torch {torch.__version__} unet {args.latent}x{args.latent} batch 2, "
                   f"{torch.get_num_threads()} threads",
                   time_calls(lambda: model(sample, timestep, context), args.reps))
        return

    start = time.perf_counter()
    with torch.no_grad():
        # The TorchScript exporter: what diffusers' own conversion script uses (newer torch defaults to dynamo).
        legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
        torch.onnx.export(model, (sample, timestep, context), args.paths[1], opset_version=17,
                          input_names=["sample", "timestep", "context"], output_names=["noise_pred"], **legacy)
    print(f"exported {args.paths[1]} in {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
