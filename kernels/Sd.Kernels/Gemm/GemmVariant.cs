namespace Sd.Kernels.Gemm;

/// <summary>
/// A GEMM microkernel and its register tile (MR rows x NR columns); weights are packed for one NR. Unmanaged, so
/// kernel task contexts can carry it.
/// </summary>
public readonly unsafe struct GemmVariant
{
    private GemmVariant(SimdLevel level, int mr, int nr, delegate*<int, float*, float*, float*, nint, bool, TileEpilogue*, void> microkernel)
    {
        Level = level;
        Mr = mr;
        Nr = nr;
        Microkernel = microkernel;
    }

    /// <summary>The instruction set the microkernel needs.</summary>
    public SimdLevel Level { get; }

    /// <summary>E.g. "14x32 Vector512".</summary>
    public string Name => $"{Mr}x{Nr} {Level}";

    public int Mr { get; }

    public int Nr { get; }

    /// <summary>(kc, packed A, packed B, dst, ldd, accumulate, epilogue): dst[Mr x Nr] (=|+=) A B (+ epilogue).</summary>
    public delegate*<int, float*, float*, float*, nint, bool, TileEpilogue*, void> Microkernel { get; }

    public static GemmVariant Vector512 { get; } =
        new(SimdLevel.Vector512, GemmMicrokernels.Mr512, GemmMicrokernels.Nr512, &GemmMicrokernels.Kernel_14x32_Vector512);

    public static GemmVariant Vector256 { get; } =
        new(SimdLevel.Vector256, GemmMicrokernels.Mr256, GemmMicrokernels.Nr256, &GemmMicrokernels.Kernel_6x16_Vector256);

    public static GemmVariant Scalar { get; } =
        new(SimdLevel.Scalar, GemmMicrokernels.MrScalar, GemmMicrokernels.NrScalar, &GemmMicrokernels.Kernel_4x16_Scalar);

    public override string ToString() => Name;
}
