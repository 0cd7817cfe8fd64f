namespace Sd.Kernels.Diagnostics;

/// <summary>
/// Counts the floating-point work of GEMM, convolution and attention calls while enabled, for benchmarks that report
/// effective GFLOP/s. Winograd counts its direct-convolution FLOPs (the work it replaces), so its rate is "effective".
/// One branch per kernel call when disabled.
/// </summary>
public static class FlopCounter
{
    private static long s_total;

    public static bool Enabled { get; set; }

    public static long Total => Interlocked.Read(ref s_total);

    public static void Reset() => Interlocked.Exchange(ref s_total, 0);

    public static void Add(long flops)
    {
        if (Enabled)
        {
            Interlocked.Add(ref s_total, flops);
        }
    }
}
