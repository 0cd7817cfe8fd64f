namespace Sd.Kernels.Diagnostics;

/// <summary>
/// Counts the floating-point work of GEMM, convolution and attention calls while enabled, for benchmarks that report
/// effective GFLOP/s. Winograd counts its direct-convolution FLOPs (the work it replaces), so its rate is "effective".
/// Per thread, like <see cref="KernelProfiler"/>: kernels count at their entry points, on the calling thread (each
/// parallelizes internally), so a count sees the kernels its own thread called. One branch per kernel call when
/// disabled.
/// </summary>
public static class FlopCounter
{
    [ThreadStatic]
    private static long t_total;

    [ThreadStatic]
    private static bool t_enabled;

    /// <summary>Whether kernels called from this thread add to its count.</summary>
    public static bool Enabled
    {
        get => t_enabled;
        set => t_enabled = value;
    }

    /// <summary>This thread's count since the last <see cref="Reset"/>.</summary>
    public static long Total => t_total;

    public static void Reset() => t_total = 0;

    public static void Add(long flops)
    {
        if (t_enabled)
        {
            t_total += flops;
        }
    }
}
