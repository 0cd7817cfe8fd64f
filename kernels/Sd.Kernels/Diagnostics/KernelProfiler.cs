using System.Diagnostics;

namespace Sd.Kernels.Diagnostics;

/// <summary>The kernel families a profile reports (sd bench --profile).</summary>
public enum KernelKind
{
    Conv3x3,
    ConvOther,
    Gemm,
    Attention,
    Norm,
    Elementwise,
}

/// <summary>
/// Wall time per <see cref="KernelKind"/>, measured at the kernels' public entry points when <see cref="Enabled"/>.
/// Only the outermost entry point is timed (an implicit-GEMM convolution is a convolution, not also a GEMM).
/// Entry points are called from one orchestrating thread (each parallelizes internally), so plain statics suffice;
/// time outside every kernel is the caller's "other". Costs two timestamps per kernel call, nothing when disabled.
/// </summary>
public static class KernelProfiler
{
    private static readonly long[] s_ticks = new long[Enum.GetValues<KernelKind>().Length];
    private static int s_depth;

    public static bool Enabled { get; set; }

    public static void Reset()
    {
        Array.Clear(s_ticks);
        s_depth = 0;
    }

    public static TimeSpan Total(KernelKind kind) => Stopwatch.GetElapsedTime(0, s_ticks[(int)kind]);

    /// <summary>Times the enclosing kernel call: <c>using var _ = KernelProfiler.Measure(kind);</c></summary>
    public static Scope Measure(KernelKind kind)
    {
        if (!Enabled)
        {
            return default;
        }
        return s_depth++ == 0 ? new Scope(kind, Stopwatch.GetTimestamp()) : new Scope(kind, -1);
    }

    /// <summary>One timed call; a struct, so profiling allocates nothing.</summary>
    public readonly struct Scope : IDisposable
    {
        private readonly KernelKind _kind;
        private readonly long _start; // 0: profiling was off; -1: nested in another kernel

        internal Scope(KernelKind kind, long start)
        {
            _kind = kind;
            _start = start;
        }

        public void Dispose()
        {
            if (_start == 0)
            {
                return;
            }
            s_depth--;
            if (_start > 0)
            {
                s_ticks[(int)_kind] += Stopwatch.GetTimestamp() - _start;
            }
        }
    }
}
