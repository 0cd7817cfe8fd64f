using Sd.Engine.Modules;
using Sd.Engine.Tensors;
using Sd.Kernels.Attention;
using Sd.Kernels.Elementwise;
using Sd.Loaders;

namespace Sd.Engine.Adapters;

/// <summary>
/// One layer of IP-Adapter Plus's Resampler: the latents (learned queries) attend to the image features and to
/// themselves, latents += to_out(attn(to_q(norm2(latents)), to_kv([norm1(features); norm2(latents)]))), then
/// latents += ff(latents) with ff = Linear(GELU(Linear(LayerNorm))) without biases. h94's keys: layers.i.0 is the
/// attention (norm1, norm2, to_q, to_kv = k | v, to_out), layers.i.1 the feed-forward (0 LayerNorm, 1 and 3 Linear).
/// Reference: diffusers 0.27 IPAdapterPlusImageProjectionBlock (embeddings.py); h94/IP-Adapter resampler.py
/// PerceiverAttention and FeedForward.
/// </summary>
internal sealed unsafe class PerceiverBlock : IDisposable
{
    private readonly int _width;
    private readonly int _heads;
    private readonly int _inner;
    private readonly int _feedForward;
    private LayerNormModule? _featureNorm;
    private LayerNormModule? _latentNorm;
    private Linear? _query;
    private Linear? _keyValue;
    private Linear? _out;
    private LayerNormModule? _ffNorm;
    private Linear? _ffIn;
    private Linear? _ffOut;

    public PerceiverBlock(WeightBinder layer, ImageProjectionShape shape)
    {
        _width = shape.Width;
        _heads = shape.Heads;
        _inner = shape.Heads * ImageProjectionShape.HeadDim;
        _feedForward = shape.FeedForward;
        try
        {
            WeightBinder attention = layer.Child(0), ff = layer.Child(1);
            _featureNorm = new LayerNormModule(attention.Child("norm1"), _width, 1e-5);
            _latentNorm = new LayerNormModule(attention.Child("norm2"), _width, 1e-5);
            _query = new Linear(attention.Child("to_q"), _width, _inner, bias: false);
            _keyValue = new Linear(attention.Child("to_kv"), _width, 2 * _inner, bias: false);
            _out = new Linear(attention.Child("to_out"), _inner, _width, bias: false);
            _ffNorm = new LayerNormModule(ff.Child(0), _width, 1e-5);
            _ffIn = new Linear(ff.Child(1), _width, _feedForward, bias: false);
            _ffOut = new Linear(ff.Child(3), _feedForward, _width, bias: false);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>latents [batch x queries, W] updated in place from features [batch x positions, W].</summary>
    public void Forward(float* features, float* latents, int batch, int positions, int queries)
    {
        int w = _width, keys = positions + queries;
        using var keyInput = new NativeBlock((long)batch * keys * w, zero: false);
        using var keyValues = new NativeBlock((long)batch * keys * 2 * _inner, zero: false);
        using var query = new NativeBlock((long)batch * queries * _inner, zero: false);
        using var attended = new NativeBlock((long)batch * queries * _inner, zero: false);
        for (int n = 0; n < batch; n++)
        {
            // Picture n's keys: [positions + queries, W] = [norm1(features); norm2(latents)]; the queries are the latter rows.
            float* keyRows = keyInput.Pointer + (long)n * keys * w;
            float* normedLatents = keyRows + (long)positions * w;
            _featureNorm!.Forward(features + (long)n * positions * w, keyRows, positions);
            _latentNorm!.Forward(latents + (long)n * queries * w, normedLatents, queries);
            _query!.Forward(normedLatents, queries, w, query.Pointer + (long)n * queries * _inner, _inner);
        }
        // [batch x keys, 2I] rows of k | v, heads of 64 channels side by side in each, as the kernel reads them.
        _keyValue!.Forward(keyInput.Pointer, batch * keys, w, keyValues.Pointer, 2 * _inner);
        AttentionKernels.Run(new AttentionProblem(query.Pointer, _inner, keyValues.Pointer, 2 * _inner, keyValues.Pointer + _inner, 2 * _inner,
            attended.Pointer, _inner, batch, _heads, queries, keys, ImageProjectionShape.HeadDim));
        int rows = batch * queries;
        _out!.Forward(attended.Pointer, rows, _inner, latents, w, residual: latents, ldr: w);

        using var normed = new NativeBlock((long)rows * w, zero: false);
        using var hidden = new NativeBlock((long)rows * _feedForward, zero: false);
        _ffNorm!.Forward(latents, normed.Pointer, rows);
        _ffIn!.Forward(normed.Pointer, rows, w, hidden.Pointer, _feedForward);
        Pointwise.Apply(Activation.Gelu, hidden.Pointer, hidden.Pointer, (nint)rows * _feedForward);
        _ffOut!.Forward(hidden.Pointer, rows, _feedForward, latents, w, residual: latents, ldr: w);
    }

    public void Dispose()
    {
        _featureNorm?.Dispose();
        _latentNorm?.Dispose();
        _query?.Dispose();
        _keyValue?.Dispose();
        _out?.Dispose();
        _ffNorm?.Dispose();
        _ffIn?.Dispose();
        _ffOut?.Dispose();
    }
}
