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
        : this(parent, parts, conv1x1 ? [outFeaturesEach, inFeatures, 1, 1] : [outFeaturesEach, inFeatures], bias)
    {
    }

    /// <summary>
    /// A convolution whose stride is its kernel and that has no padding (a ViT's patch embedding), weights
    /// [out, in, patch, patch]: the GEMM over rows of one patch's in x patch x patch values in (channel, y, x) order.
    /// </summary>
    public static Linear Patches(WeightBinder binder, int inChannels, int patch, int outFeatures, bool bias) =>
        new(binder, [""], [outFeatures, inChannels, patch, patch], bias);

    /// <param name="shapeEach">Each part's weight shape: [out, ...] with the product of the rest the input features.</param>
    private Linear(WeightBinder parent, string[] parts, long[] shapeEach, bool bias)
    {
        long inFeatures = 1;
        for (int i = 1; i < shapeEach.Length; i++) inFeatures *= shapeEach[i];
        int outFeaturesEach = checked((int)shapeEach[0]);
        InFeatures = checked((int)inFeatures);
        OutFeatures = outFeaturesEach * parts.Length;
        void* w = parent.StageNative(Names(parts, "weight"), shapeEach, out WeightFormat format);
        _weight = PackedWeights.Pack(w, format, OutFeatures, InFeatures, InFeatures, GemmKernels.PanelWidth);
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
