using BenchmarkDotNet.Attributes;
using Sd.Kernels.Diagnostics;
using Sd.Kernels.Threading;

namespace Sd.Bench.Kernels;

/// <summary>
/// The FMA ceiling: one burst of independent FMAs per thread, no memory traffic. GFLOP/s = threads x
/// <see cref="FmaPeak.FlopsPerBurst"/> / time; bench/RESULTS.md states every other kernel's rate as a percentage
/// of it.
/// </summary>
[MemoryDiagnoser]
public class PeakBenchmarks
{
    [Params(1, 2)]
    public int Threads { get; set; }

    [Benchmark]
    public void FmaBurst() => FmaPeak.Burst(Math.Min(Threads, WorkerPool.Shared.ThreadCount));
}
