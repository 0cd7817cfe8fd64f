using Sd.Engine.Tensors;
using Sd.Kernels.Gemm;

namespace Sd.Engine.Modules;

/// <summary>
/// y = x W^T + b over rows of x (tokens or pixels). W is packed once for the GEMM microkernel at load.
/// Reference: torch.nn.Linear (also 1x1 Conv2d weights [out, in, 1, 1], same element order).
/// </summary>
public sealed unsafe class Linear : IDisposable
{
    private readonly PackedWeights _weight;
    private readonly NativeBlock? _bias;

    public Linear(WeightBinder binder, int inFeatures, int outFeatures, bool bias = true, bool conv1x1 = false)
        : this(binder, [""], inFeatures, outFeatures, bias, conv1x1)
    {
    }

    /// <summary>
    /// Several Linear layers over the same input, children <paramref name="parts"/> of <paramref name="parent"/>,
    /// fused into one (weights stacked along the outputs), e.g. attention's to_q/to_k/to_v: one GEMM with N = 3 x
    /// width instead of three. A single part "" is the parent itself.
    /// </summary>
    public Linear(WeightBinder parent, string[] parts, int inFeatures, int outFeaturesEach, bool bias = true, bool conv1x1 = false)
    {
        InFeatures = inFeatures;
        OutFeatures = outFeaturesEach * parts.Length;
        long[] shape = conv1x1 ? [outFeaturesEach, inFeatures, 1, 1] : [outFeaturesEach, inFeatures];
        void* w = parent.StageNative(Names(parts, "weight"), shape, out WeightFormat format);
        _weight = PackedWeights.Pack(w, format, OutFeatures, inFeatures, inFeatures, GemmKernels.PanelWidth);
        if (bias)
        {
            _bias = new NativeBlock(OutFeatures, zero: false);
            new Span<float>(parent.Stage(Names(parts, "bias"), [outFeaturesEach]), OutFeatures).CopyTo(_bias.Span);
        }
    }

    private static string[] Names(string[] parts, string tensor) =>
        Array.ConvertAll(parts, part => part.Length == 0 ? tensor : $"{part}.{tensor}");

    public int InFeatures { get; }

    /// <summary>The packed weights, for callers that run the GEMM with their own epilogue.</summary>
    public PackedWeights Weight => _weight;

    public float* BiasPointer => _bias == null ? null : _bias.Pointer;

    public int OutFeatures { get; }

    /// <summary>
    /// y[rows, ldy] = x[rows, ldx] W^T + b (+ residual [rows, ldr]; residual == y accumulates in place).
    /// </summary>
    public void Forward(float* x, int rows, int ldx, float* y, int ldy, float* residual = null, int ldr = 0)
    {
        GemmKernels.Multiply(rows, x, ldx, _weight, y, ldy, _bias == null ? null : _bias.Pointer, residual, ldr);
    }

    public long SizeInBytes => _weight.SizeInBytes + (_bias?.Length ?? 0) * sizeof(float);

    public void Dispose()
    {
        _weight.Dispose();
        _bias?.Dispose();
    }
}
