using Sd.Engine.Modules;
using Sd.Engine.Tensors;
using Sd.Loaders;

namespace Sd.Engine.Adapters;

/// <summary>
/// IP-Adapter Plus's image projection (ip-adapter-plus_sd15, ip-adapter-plus-face_sd15): a perceiver Resampler. The
/// encoder's penultimate hidden states [N x positions, E] go through proj_in to the Resampler's width; learned latents
/// [queries, W], the same for every picture, attend to them through <see cref="PerceiverBlock"/> layers; proj_out and
/// norm_out make them the image tokens [N x queries, D].
/// Reference: diffusers 0.27 IPAdapterPlusImageProjection (embeddings.py); h94/IP-Adapter resampler.py Resampler.
/// </summary>
internal sealed unsafe class ResamplerImageProjection : IImageProjection
{
    private readonly ImageProjectionShape _shape;
    private NativeBlock? _latents;
    private Linear? _projIn;
    private Linear? _projOut;
    private LayerNormModule? _normOut;
    private readonly PerceiverBlock?[] _layers;

    public ResamplerImageProjection(WeightBinder imageProj, ImageProjectionShape shape)
    {
        _shape = shape;
        _layers = new PerceiverBlock?[shape.Depth];
        try
        {
            _latents = imageProj.Load("latents", [1, shape.Tokens, shape.Width]);
            _projIn = new Linear(imageProj.Child("proj_in"), shape.InputWidth, shape.Width);
            _projOut = new Linear(imageProj.Child("proj_out"), shape.Width, shape.CrossAttentionDim);
            _normOut = new LayerNormModule(imageProj.Child("norm_out"), shape.CrossAttentionDim, 1e-5);
            for (int i = 0; i < _layers.Length; i++)
            {
                _layers[i] = new PerceiverBlock(imageProj.Child("layers").Child(i), shape);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public int TokensFor(int positions) => _shape.Tokens;

    public void Forward(float* input, int batch, int positions, float* tokens)
    {
        int w = _shape.Width, queries = _shape.Tokens;
        using var features = new NativeBlock((long)batch * positions * w, zero: false);
        using var latents = new NativeBlock((long)batch * queries * w, zero: false);
        _projIn!.Forward(input, batch * positions, _shape.InputWidth, features.Pointer, w);
        long latentFloats = (long)queries * w;
        for (int n = 0; n < batch; n++)
        {
            // latents.repeat(N, 1, 1): every picture starts from the same queries.
            Buffer.MemoryCopy(_latents!.Pointer, latents.Pointer + n * latentFloats, latentFloats * sizeof(float), latentFloats * sizeof(float));
        }
        foreach (PerceiverBlock? layer in _layers)
        {
            layer!.Forward(features.Pointer, latents.Pointer, batch, positions, queries);
        }
        _projOut!.Forward(latents.Pointer, batch * queries, w, tokens, _shape.CrossAttentionDim);
        _normOut!.Forward(tokens, tokens, batch * queries);
    }

    public void Dispose()
    {
        _latents?.Dispose();
        _projIn?.Dispose();
        _projOut?.Dispose();
        _normOut?.Dispose();
        foreach (PerceiverBlock? layer in _layers) layer?.Dispose();
    }
}
