using Sd.Engine.Modules;
using Sd.Engine.Tensors;
using Sd.Loaders;

namespace Sd.Engine.Adapters;

/// <summary>
/// An IP-Adapter: a picture as a prompt. Its image projection turns a CLIP image encoder's image_embeds into a few
/// tokens of the text's width; in every UNet cross-attention layer its own key and value projections of those tokens
/// make a second attention of the same queries, added to the attention to the text with a scale before to_out
/// (decoupled cross-attention). The unconditioned half of a guided batch takes the projection of zero embeddings.
/// Reference: diffusers 0.27 ImageProjection (embeddings.py) and IPAdapterAttnProcessor2_0 (attention_processor.py),
/// with h94/IP-Adapter's ip-adapter_sd15 weights (<see cref="IpAdapterSource"/>).
/// </summary>
public sealed unsafe class IpAdapterModel : IDisposable
{
    // Set one by one while loading; a load that fails frees those already made (Dispose skips the rest).
    private Linear? _projection;
    private LayerNormModule? _norm;
    private readonly Linear?[] _keyValues;
    private readonly int[] _widths;
    private readonly object _gate = new();
    private bool _disposed;

    public IpAdapterModel(IpAdapterSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        ImageEmbedDim = source.ImageEmbedDim;
        CrossAttentionDim = source.CrossAttentionDim;
        Tokens = source.Tokens;
        _widths = [.. source.LayerWidths];
        _keyValues = new Linear?[_widths.Length];
        try
        {
            using var binder = new WeightBinder(source.Weights);
            WeightBinder projection = binder.Child("image_proj");
            _projection = new Linear(projection.Child("proj"), ImageEmbedDim, Tokens * CrossAttentionDim);
            _norm = new LayerNormModule(projection.Child("norm"), CrossAttentionDim, 1e-5);
            for (int i = 0; i < _widths.Length; i++)
            {
                // ip_adapter.N (N = 2i + 1): to_k_ip | to_v_ip fused into one GEMM over the tokens.
                _keyValues[i] = new Linear(binder.Child("ip_adapter").Child(2 * i + 1), ["to_k_ip", "to_v_ip"], CrossAttentionDim, _widths[i], bias: false);
            }
            binder.RequireAllUsed();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The image encoder's projection_dim it takes.</summary>
    public int ImageEmbedDim { get; }

    /// <summary>The width of its image tokens: the UNet's cross_attention_dim.</summary>
    public int CrossAttentionDim { get; }

    /// <summary>Image tokens per picture.</summary>
    public int Tokens { get; }

    /// <summary>The width of each cross-attention layer it steers, in diffusers' processor order.</summary>
    public ReadOnlySpan<int> LayerWidths => _widths;

    /// <summary>Image tokens [N, Tokens, D] = LayerNorm(proj(<paramref name="imageEmbeds"/> [N, E]) as [N, Tokens, D]).</summary>
    public Tensor Project(Tensor imageEmbeds)
    {
        ArgumentNullException.ThrowIfNull(imageEmbeds);
        if (imageEmbeds.Rank != 2 || imageEmbeds.Dim(0) < 1 || imageEmbeds.Dim(1) != ImageEmbedDim)
        {
            throw new ArgumentException($"image embeds must be [N, {ImageEmbedDim}] (the image encoder's projection), got {imageEmbeds}", nameof(imageEmbeds));
        }
        imageEmbeds.ThrowIfNotFinite("image embeds contain NaN or infinity");
        int batch = imageEmbeds.Dim(0);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            Tensor tokens = Tensor.Allocate([batch, Tokens, CrossAttentionDim]);
            // [N, Tokens x D] rows are [N x Tokens, D] rows: one LayerNorm per token.
            _projection!.Forward(imageEmbeds.Data, batch, ImageEmbedDim, tokens.Data, Tokens * CrossAttentionDim);
            _norm!.Forward(tokens.Data, tokens.Data, batch * Tokens);
            return tokens;
        }
    }

    /// <summary>
    /// The UNet's condition from image <paramref name="tokens"/> [batch, Tokens, D] (one row per UNet image: with
    /// classifier-free guidance the unconditioned rows hold the projection of zero embeddings) and the
    /// <paramref name="scale"/> of the image attention (diffusers' set_ip_adapter_scale).
    /// </summary>
    public ImagePrompt Condition(Tensor tokens, float scale)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        if (tokens.Rank != 3 || tokens.Dim(0) < 1 || tokens.Dim(1) != Tokens || tokens.Dim(2) != CrossAttentionDim)
        {
            throw new ArgumentException($"image tokens must be [batch, {Tokens}, {CrossAttentionDim}], got {tokens}", nameof(tokens));
        }
        if (!float.IsFinite(scale))
        {
            throw new ArgumentOutOfRangeException(nameof(scale), scale, "the IP-Adapter scale must be finite");
        }
        tokens.ThrowIfNotFinite("image tokens contain NaN or infinity");
        int rows = tokens.Dim(0) * Tokens;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var keyValues = new NativeBlock[_widths.Length];
            try
            {
                for (int i = 0; i < _widths.Length; i++)
                {
                    int c = _widths[i];
                    keyValues[i] = new NativeBlock((long)rows * 2 * c, zero: false);
                    float* kv = keyValues[i].Pointer;
                    _keyValues[i]!.Forward(tokens.Data, rows, CrossAttentionDim, kv, 2 * c);
                    // scale x softmax(q k^T) v = softmax(q k^T) (scale x v): the scale goes into the values once.
                    for (int r = 0; r < rows; r++)
                    {
                        float* v = kv + (long)r * 2 * c + c;
                        for (int j = 0; j < c; j++) v[j] *= scale;
                    }
                }
            }
            catch
            {
                foreach (NativeBlock block in keyValues) block?.Dispose();
                throw;
            }
            return new ImagePrompt(keyValues, (int[])_widths.Clone(), tokens.Dim(0), Tokens, scale);
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _projection?.Dispose();
            _norm?.Dispose();
            foreach (Linear? layer in _keyValues) layer?.Dispose();
        }
    }
}
