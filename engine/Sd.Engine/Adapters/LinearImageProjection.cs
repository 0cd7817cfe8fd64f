using Sd.Engine.Modules;
using Sd.Loaders;

namespace Sd.Engine.Adapters;

/// <summary>
/// The plain IP-Adapter's image projection (ip-adapter_sd15): image_embeds [N, E] -> proj -> [N, tokens x D] read as
/// [N x tokens, D] rows -> LayerNorm per token.
/// Reference: diffusers 0.27 ImageProjection (embeddings.py).
/// </summary>
internal sealed unsafe class LinearImageProjection : IImageProjection
{
    private readonly ImageProjectionShape _shape;
    private Linear? _proj;
    private LayerNormModule? _norm;

    public LinearImageProjection(WeightBinder imageProj, ImageProjectionShape shape)
    {
        _shape = shape;
        try
        {
            _proj = new Linear(imageProj.Child("proj"), shape.InputWidth, shape.Tokens * shape.CrossAttentionDim);
            _norm = new LayerNormModule(imageProj.Child("norm"), shape.CrossAttentionDim, 1e-5);
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
        // [N, tokens x D] rows are [N x tokens, D] rows: one LayerNorm per token.
        _proj!.Forward(input, batch, _shape.InputWidth, tokens, _shape.Tokens * _shape.CrossAttentionDim);
        _norm!.Forward(tokens, tokens, batch * _shape.Tokens);
    }

    public void Dispose()
    {
        _proj?.Dispose();
        _norm?.Dispose();
    }
}
