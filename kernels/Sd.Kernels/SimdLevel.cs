using System.Runtime.Intrinsics;

namespace Sd.Kernels;

/// <summary>The widest vector path this process uses, chosen once at startup.</summary>
public enum SimdLevel
{
    Scalar,
    Vector256,
    Vector512,
}

/// <summary>
/// Picks the kernel variant family once. <c>DOTNET_EnableAVX512=0</c> makes the runtime report no 512-bit
/// acceleration, so the Vector256 paths run (CI uses that to test them).
/// </summary>
public static class Simd
{
    public static SimdLevel Level { get; } =
        Vector512.IsHardwareAccelerated ? SimdLevel.Vector512
        : Vector256.IsHardwareAccelerated ? SimdLevel.Vector256
        : SimdLevel.Scalar;
}
