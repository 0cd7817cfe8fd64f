namespace Sd.Kernels.Gemm;

/// <summary>A row-major A matrix (rows <see cref="Ld"/> floats apart) for <see cref="GemmArgs.A"/>.</summary>
public unsafe struct RowMajorMatrix
{
    public float* Data;
    public int Ld;

    /// <summary>The packer over a matrix that lives (e.g. on the caller's stack) until the GEMM returns.</summary>
    public static APacker Packer(RowMajorMatrix* matrix) => new() { Pack = &Pack, State = matrix };

    private static void Pack(void* state, int row0, int rows, int k0, int kc, int mr, float* packed)
    {
        RowMajorMatrix* matrix = (RowMajorMatrix*)state;
        GemmKernels.PackRowMajor(matrix->Data, matrix->Ld, row0, rows, k0, kc, mr, packed);
    }
}
