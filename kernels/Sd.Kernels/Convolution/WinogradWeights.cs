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

    private static readonly double[,] G =
    {
        { 1.0 / 4, 0, 0 },
        { -1.0 / 6, -1.0 / 6, -1.0 / 6 },
        { -1.0 / 6, 1.0 / 6, -1.0 / 6 },
        { 1.0 / 24, 1.0 / 12, 1.0 / 6 },
        { 1.0 / 24, -1.0 / 12, 1.0 / 6 },
        { 0, 0, 1 },
    };

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
    /// Transforms PyTorch weights [Cout, Cin, 3, 3] (in double, rounded once) straight into the 36 packed matrices.
    /// </summary>
    public static WinogradWeights Create(float* weights, int outChannels, int inChannels, int panelWidth)
    {
        var matrices = new PackedWeights[Positions];
        for (int p = 0; p < Positions; p++)
        {
            matrices[p] = PackedWeights.CreateZero(outChannels, inChannels, panelWidth);
        }
        Span<double> gg = stackalloc double[18]; // G g: 6 x 3
        for (int co = 0; co < outChannels; co++)
        {
            for (int ci = 0; ci < inChannels; ci++)
            {
                float* g = weights + ((nint)co * inChannels + ci) * 9;
                for (int i = 0; i < 6; i++)
                {
                    for (int j = 0; j < 3; j++)
                    {
                        gg[i * 3 + j] = G[i, 0] * g[j] + G[i, 1] * g[3 + j] + G[i, 2] * g[6 + j];
                    }
                }
                for (int i = 0; i < 6; i++)
                {
                    for (int j = 0; j < 6; j++)
                    {
                        double value = gg[i * 3] * G[j, 0] + gg[i * 3 + 1] * G[j, 1] + gg[i * 3 + 2] * G[j, 2];
                        *matrices[i * 6 + j].Element(co, ci) = (float)value;
                    }
                }
            }
        }
        return new WinogradWeights(matrices, outChannels, inChannels);
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
