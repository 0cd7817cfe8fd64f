using System.Runtime.InteropServices;
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
    /// U = G g G^T for the output channels of one packed panel (one thread per panel: no shared cache lines).
    /// </summary>
    private static void TransformPanel(void* state, int panel)
    {
        TransformJob* job = (TransformJob*)state;
        int nr = job->PanelWidth, cin = job->InChannels;
        int co0 = panel * nr, co1 = Math.Min(co0 + nr, job->OutChannels);
        nint panelBase = (nint)panel * nr * cin;
        double* gg = stackalloc double[18];
        double* row = stackalloc double[6];
        // Blocks of input channels: each output channel's kernels are then read in a sequential run (instead of
        // one 36-byte kernel per row per step, which thrashes the TLB) while the block's outputs stay in L2.
        const int Block = 64;
        for (int ci0 = 0; ci0 < cin; ci0 += Block)
        {
            int ci1 = Math.Min(cin, ci0 + Block);
            for (int co = co0; co < co1; co++)
            {
                for (int ci = ci0; ci < ci1; ci++)
                {
                    float* g = job->Weights + ((nint)co * cin + ci) * 9;
                    for (int j = 0; j < 3; j++)
                    {
                        Transform3(g[j], g[3 + j], g[6 + j], gg + j, 3); // G g: columns
                    }
                    nint offset = panelBase + (nint)ci * nr + (co - co0);
                    for (int i = 0; i < 6; i++)
                    {
                        Transform3(gg[i * 3], gg[i * 3 + 1], gg[i * 3 + 2], row, 1); // (G g) G^T: rows
                        for (int j = 0; j < 6; j++)
                        {
                            job->Targets[i * 6 + j][offset] = (float)row[j];
                        }
                    }
                }
            }
        }
    }

    /// <summary>The 6 outputs of G (6x3) applied to one 3-vector, written with a stride.</summary>
    private static void Transform3(double a, double b, double c, double* output, int stride)
    {
        output[0] = a / 4;
        output[stride] = -(a + b + c) / 6;
        output[2 * stride] = -(a - b + c) / 6;
        output[3 * stride] = a / 24 + b / 12 + c / 6;
        output[4 * stride] = a / 24 - b / 12 + c / 6;
        output[5 * stride] = c;
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
