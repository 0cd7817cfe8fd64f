using Sd.Engine.Modules;
using Sd.Kernels.Elementwise;
using Sd.Engine.Tensors;
using Sd.Loaders;

namespace Sd.Engine.Adapters;

/// <summary>
/// The full-face IP-Adapter's image projection (ip-adapter-full-face_sd15): every position of the encoder's
/// penultimate hidden states becomes a token, LayerNorm(proj.2(GELU(proj.0(h)))), h94's proj.0 / proj.2 / proj.3.
/// Reference: diffusers 0.27 IPAdapterFullImageProjection (embeddings.py; FeedForward mult 1, exact GELU);
/// h94/IP-Adapter MLPProjModel.
/// </summary>
internal sealed unsafe class MlpImageProjection : IImageProjection
{
    private readonly ImageProjectionShape _shape;
    private Linear? _first;
    private Linear? _second;
    private LayerNormModule? _norm;

    public MlpImageProjection(WeightBinder imageProj, ImageProjectionShape shape)
    {
        _shape = shape;
        try
        {
            WeightBinder proj = imageProj.Child("proj");
            _first = new Linear(proj.Child(0), shape.InputWidth, shape.Width);
            _second = new Linear(proj.Child(2), shape.Width, shape.CrossAttentionDim);
            _norm = new LayerNormModule(proj.Child(3), shape.CrossAttentionDim, 1e-5);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public int TokensFor(int positions) => positions;

    public void Forward(float* input, int batch, int positions, float* tokens)
    {
        int rows = batch * positions;
        using var hidden = new NativeBlock((long)rows * _shape.Width, zero: false);
        _first!.Forward(input, rows, _shape.InputWidth, hidden.Pointer, _shape.Width);
        Pointwise.Apply(Activation.Gelu, hidden.Pointer, hidden.Pointer, (nint)rows * _shape.Width);
        _second!.Forward(hidden.Pointer, rows, _shape.Width, tokens, _shape.CrossAttentionDim);
        _norm!.Forward(tokens, tokens, rows);
    }

    public void Dispose()
    {
        _first?.Dispose();
        _second?.Dispose();
        _norm?.Dispose();
    }
}
