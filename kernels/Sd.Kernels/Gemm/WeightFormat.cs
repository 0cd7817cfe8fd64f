namespace Sd.Kernels.Gemm;

/// <summary>
/// How packed weights are stored. F16 and BF16 stay 16-bit in memory (half the resident size and half the bandwidth
/// of F32) and are widened exactly, one B micro-panel at a time, right before the float32 microkernel uses it.
/// </summary>
public enum WeightFormat : byte
{
    F32,
    F16,
    BF16,
}

public static class WeightFormatExtensions
{
    public static int ElementBytes(this WeightFormat format) => format == WeightFormat.F32 ? sizeof(float) : sizeof(ushort);
}
