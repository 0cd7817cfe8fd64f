using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Sd.Kernels.Gemm;

namespace Sd.Kernels.Convolution;

/// <summary>
/// 3x3 weights transformed once for Winograd F(4x4, 3x3): U = G g G^T gives a 6x6 matrix per (co, ci); the 36
/// positions become 36 packed GEMM weight matrices [Cout, Cin]. That is 4x the memory of the 3x3 weights.
/// </summary>
public sealed unsafe class WinogradWeights : IDisposable
{
    /// <summary>Transform positions: 6 x 6.</summary>
    public const int Positions = 36;

    private readonly PackedWeights[] _matrices;

    private WinogradWeights(PackedWeights[] matrices, int outChannels, int inChannels)
    {
        _matrices = matrices;
        OutChannels = outChannels;
        InChannels = inChannels;
        Views = (PackedWeightsView*)NativeMemory.Alloc((nuint)Positions, (nuint)sizeof(PackedWeightsView));
        for (int p = 0; p < Positions; p++)
        {
            Views[p] = new PackedWeightsView(matrices[p]);
        }
    }

    /// <summary>The 36 matrices as unmanaged views, for kernel task contexts.</summary>
    public PackedWeightsView* Views { get; private set; }

    public int OutChannels { get; }

    public int InChannels { get; }

    public PackedWeights this[int position] => _matrices[position];

    public long SizeInBytes => _matrices[0].SizeInBytes * Positions;

    /// <summary>
    /// Transforms PyTorch weights [Cout, Cin, 3, 3] (in double, rounded once) straight into the 36 packed matrices,
    /// output channels spread over the worker pool (SD 1.5 has 60M kernels to transform at load).
    /// </summary>
    public static WinogradWeights Create(float* weights, int outChannels, int inChannels, int panelWidth)
    {
        var matrices = new PackedWeights[Positions];
        for (int p = 0; p < Positions; p++)
        {
            matrices[p] = PackedWeights.CreateForFill(outChannels, inChannels, panelWidth);
        }
        var result = new WinogradWeights(matrices, outChannels, inChannels);
        float** targets = stackalloc float*[Positions];
        for (int p = 0; p < Positions; p++)
        {
            targets[p] = matrices[p].Data;
        }
        var job = new TransformJob
        {
            Weights = weights, InChannels = inChannels, OutChannels = outChannels, PanelWidth = panelWidth, Targets = targets,
        };
        Threading.WorkerPool.Shared.Run(&TransformPanel, &job, matrices[0].Panels);
        return result;
    }

    private struct TransformJob
    {
        public float* Weights;
        public int InChannels;
        public int OutChannels;
        public int PanelWidth;
        public float** Targets;
    }

    /// <summary>
    /// U = G g G^T for the output channels of one packed panel (one thread per panel: no shared cache lines), eight
    /// output channels at a time in vectors of doubles where AVX-512 allows (the same double operations in the same
    /// order as <see cref="TransformKernel"/>, the reference, which takes the rest: bit-identical), their 36
    /// positions each stored as 8 adjacent floats. Compiled optimized from the first call (it runs once per layer).
    /// One pass over SD 1.5's VAE decoder: 1 CPU-s one kernel at a time, a load's largest part.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TransformPanel(void* state, int panel)
    {
        TransformJob* job = (TransformJob*)state;
        int nr = job->PanelWidth, cin = job->InChannels;
        int co0 = panel * nr, co1 = Math.Min(co0 + nr, job->OutChannels);
        nint panelBase = (nint)panel * nr * cin;
        bool vector = Avx512F.IsSupported;
        double* gg = stackalloc double[18];
        double* row = stackalloc double[6];
        Vector512<double>* ggs = stackalloc Vector512<double>[18];
        Vector512<double>* rows = stackalloc Vector512<double>[6];
        // Blocks of input channels: each output channel's kernels are then read in a sequential run (instead of
        // one 36-byte kernel per row per step, which thrashes the TLB) while the block's outputs stay in L2.
        const int Block = 64;
        for (int ci0 = 0; ci0 < cin; ci0 += Block)
        {
            int ci1 = Math.Min(cin, ci0 + Block);
            int co = co0;
            for (; vector && co + VectorChannels <= co1; co += VectorChannels)
            {
                for (int ci = ci0; ci < ci1; ci++)
                {
                    TransformKernels8(job, co, ci, panelBase + (nint)ci * nr + (co - co0), ggs, rows);
                }
            }
            for (; co < co1; co++)
            {
                for (int ci = ci0; ci < ci1; ci++)
                {
                    TransformKernel(job, co, ci, panelBase + (nint)ci * nr + (co - co0), gg, row);
                }
            }
        }
    }

    /// <summary>Output channels per vector of doubles.</summary>
    private const int VectorChannels = 8;

    /// <summary>
    /// The reference: one kernel g (3x3) of (co, ci) to its 36 values of U, at <paramref name="offset"/> of each
    /// position's matrix (<paramref name="gg"/> and <paramref name="row"/>: 18 and 6 doubles of scratch).
    /// </summary>
    private static void TransformKernel(TransformJob* job, int co, int ci, nint offset, double* gg, double* row)
    {
        float* g = job->Weights + ((nint)co * job->InChannels + ci) * 9;
        for (int j = 0; j < 3; j++)
        {
            Transform3<double, OneLane>(g[j], g[3 + j], g[6 + j], gg + j, 3); // G g: columns
        }
        for (int i = 0; i < 6; i++)
        {
            Transform3<double, OneLane>(gg[i * 3], gg[i * 3 + 1], gg[i * 3 + 2], row, 1); // (G g) G^T: rows
            for (int j = 0; j < 6; j++)
            {
                job->Targets[i * 6 + j][offset] = (float)row[j];
            }
        }
    }

    /// <summary><see cref="TransformKernel"/> for output channels co .. co + 7 of input channel ci, one lane each.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void TransformKernels8(TransformJob* job, int co, int ci, nint offset, Vector512<double>* gg, Vector512<double>* row)
    {
        int kernelStride = job->InChannels * 9;
        float* g = job->Weights + ((nint)co * job->InChannels + ci) * 9;
        Vector256<int> lanes = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7) * kernelStride;
        for (int j = 0; j < 3; j++)
        {
            Transform3<Vector512<double>, EightLanes>(Tap(g, lanes, j), Tap(g, lanes, 3 + j), Tap(g, lanes, 6 + j), gg + j, 3);
        }
        for (int i = 0; i < 6; i++)
        {
            Transform3<Vector512<double>, EightLanes>(gg[i * 3], gg[i * 3 + 1], gg[i * 3 + 2], row, 1);
            for (int j = 0; j < 6; j++)
            {
                Avx512F.ConvertToVector256Single(row[j]).Store(job->Targets[i * 6 + j] + offset);
            }
        }
    }

    /// <summary>Tap t of eight kernels <paramref name="lanes"/> floats apart, widened to double.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<double> Tap(float* g, Vector256<int> lanes, int t) =>
        Avx512F.ConvertToVector512Double(Avx2.GatherVector256(g + t, lanes, 4));

    /// <summary>
    /// The 6 outputs of G (6x3) applied to one 3-vector, written with a stride: written once for a double
    /// (<see cref="OneLane"/>, the reference) and for eight lanes of them (<see cref="EightLanes"/>), the same
    /// operations in the same order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transform3<T, L>(T a, T b, T c, T* output, int stride)
        where T : unmanaged
        where L : struct, ILanes<T>
    {
        output[0] = L.Divide(a, 4);
        output[stride] = L.Divide(L.Negate(L.Add(L.Add(a, b), c)), 6);
        output[2 * stride] = L.Divide(L.Negate(L.Add(L.Subtract(a, b), c)), 6);
        output[3 * stride] = L.Add(L.Add(L.Divide(a, 24), L.Divide(b, 12)), L.Divide(c, 6));
        output[4 * stride] = L.Add(L.Subtract(L.Divide(a, 24), L.Divide(b, 12)), L.Divide(c, 6));
        output[5 * stride] = c;
    }

    /// <summary>The double arithmetic <see cref="Transform3{T, L}"/> needs, on one value or on a vector of them.</summary>
    private interface ILanes<T>
    {
        static abstract T Add(T x, T y);

        static abstract T Subtract(T x, T y);

        static abstract T Negate(T x);

        static abstract T Divide(T x, double divisor);
    }

    private readonly struct OneLane : ILanes<double>
    {
        public static double Add(double x, double y) => x + y;

        public static double Subtract(double x, double y) => x - y;

        public static double Negate(double x) => -x;

        public static double Divide(double x, double divisor) => x / divisor;
    }

    private readonly struct EightLanes : ILanes<Vector512<double>>
    {
        public static Vector512<double> Add(Vector512<double> x, Vector512<double> y) => x + y;

        public static Vector512<double> Subtract(Vector512<double> x, Vector512<double> y) => x - y;

        public static Vector512<double> Negate(Vector512<double> x) => -x;

        public static Vector512<double> Divide(Vector512<double> x, double divisor) => x / divisor;
    }

    public void Dispose()
    {
        foreach (PackedWeights matrix in _matrices)
        {
            matrix.Dispose();
        }
        if (Views != null)
        {
            NativeMemory.Free(Views);
            Views = null;
        }
    }
}
