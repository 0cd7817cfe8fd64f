using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Sd.Kernels.Threading;

namespace Sd.Kernels.Diagnostics;

/// <summary>
/// Measures this machine's float32 FMA throughput with a loop of independent FMAs (more accumulators than
/// latency x pipes, no loads): the ceiling every kernel's GFLOP/s is compared against.
/// </summary>
public static unsafe class FmaPeak
{
    /// <summary>FMAs per accumulator per call of <see cref="Burst512"/>.</summary>
    private const int Iterations = 1 << 16;

    private const int Accumulators = 12;

    /// <summary>GFLOP/s (2 flops per lane per FMA) on <paramref name="threads"/> threads of the shared pool.</summary>
    public static double Measure(int threads, double seconds = 0.5)
    {
        threads = Math.Clamp(threads, 1, WorkerPool.Shared.ThreadCount);
        long flopsPerBurst = FlopsPerBurst;
        Burst(threads); // warm up: JIT, frequency ramp
        var clock = Stopwatch.StartNew();
        long bursts = 0;
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            Burst(threads);
            bursts += threads;
        }
        return bursts * (double)flopsPerBurst / clock.Elapsed.TotalSeconds / 1e9;
    }

    private static int LaneCount => Simd.Level == SimdLevel.Vector512 ? 16 : 8;

    /// <summary>Floating-point operations one thread does in one <see cref="Burst"/>.</summary>
    public static long FlopsPerBurst => 2L * Accumulators * Iterations * LaneCount;

    /// <summary>One burst of independent FMAs on each of <paramref name="threads"/> threads.</summary>
    public static void Burst(int threads)
    {
        float sink = 0;
        WorkerPool.Shared.Run(&Task, &sink, threads);
    }

    private static void Task(void* sink, int index)
    {
        float result = Simd.Level == SimdLevel.Vector512 ? Burst512() : Burst256();
        if (result == 12345.678f)
        {
            *(float*)sink = result; // keeps the loop observable
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Burst512()
    {
        Vector512<float> m = Vector512.Create(0.999999f), x = Vector512.Create(1e-7f);
        Vector512<float> a0 = m, a1 = m, a2 = m, a3 = m, a4 = m, a5 = m, a6 = m, a7 = m, a8 = m, a9 = m, a10 = m, a11 = m;
        for (int i = 0; i < Iterations; i++)
        {
            a0 = Vector512.FusedMultiplyAdd(a0, m, x); a1 = Vector512.FusedMultiplyAdd(a1, m, x);
            a2 = Vector512.FusedMultiplyAdd(a2, m, x); a3 = Vector512.FusedMultiplyAdd(a3, m, x);
            a4 = Vector512.FusedMultiplyAdd(a4, m, x); a5 = Vector512.FusedMultiplyAdd(a5, m, x);
            a6 = Vector512.FusedMultiplyAdd(a6, m, x); a7 = Vector512.FusedMultiplyAdd(a7, m, x);
            a8 = Vector512.FusedMultiplyAdd(a8, m, x); a9 = Vector512.FusedMultiplyAdd(a9, m, x);
            a10 = Vector512.FusedMultiplyAdd(a10, m, x); a11 = Vector512.FusedMultiplyAdd(a11, m, x);
        }
        return Vector512.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static float Burst256()
    {
        Vector256<float> m = Vector256.Create(0.999999f), x = Vector256.Create(1e-7f);
        Vector256<float> a0 = m, a1 = m, a2 = m, a3 = m, a4 = m, a5 = m, a6 = m, a7 = m, a8 = m, a9 = m, a10 = m, a11 = m;
        for (int i = 0; i < Iterations; i++)
        {
            a0 = Vector256.FusedMultiplyAdd(a0, m, x); a1 = Vector256.FusedMultiplyAdd(a1, m, x);
            a2 = Vector256.FusedMultiplyAdd(a2, m, x); a3 = Vector256.FusedMultiplyAdd(a3, m, x);
            a4 = Vector256.FusedMultiplyAdd(a4, m, x); a5 = Vector256.FusedMultiplyAdd(a5, m, x);
            a6 = Vector256.FusedMultiplyAdd(a6, m, x); a7 = Vector256.FusedMultiplyAdd(a7, m, x);
            a8 = Vector256.FusedMultiplyAdd(a8, m, x); a9 = Vector256.FusedMultiplyAdd(a9, m, x);
            a10 = Vector256.FusedMultiplyAdd(a10, m, x); a11 = Vector256.FusedMultiplyAdd(a11, m, x);
        }
        return Vector256.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }
}
