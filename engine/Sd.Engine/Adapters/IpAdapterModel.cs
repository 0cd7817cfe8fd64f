using Sd.Engine.Modules;
using Sd.Engine.Tensors;
using Sd.Loaders;

namespace Sd.Engine.Adapters;

/// <summary>
/// An IP-Adapter: a picture as a prompt. Its image projection (<see cref="LinearImageProjection"/>,
/// <see cref="ResamplerImageProjection"/> or <see cref="MlpImageProjection"/>, as its file holds) turns a CLIP image
/// encoder's output for the picture into tokens of the text's width; in every UNet cross-attention layer its own key
/// and value projections of those tokens make a second attention of the same queries, added to the attention to the
/// text with a scale before to_out (decoupled cross-attention). The unconditioned half of a guided batch takes the
/// projection of zero embeddings (plain) or of the encoding of zero pixels (Plus, full-face).
/// Reference: diffusers 0.27 MultiIPAdapterImageProjection's members (embeddings.py) and IPAdapterAttnProcessor2_0
/// (attention_processor.py), with h94/IP-Adapter's weights (<see cref="IpAdapterSource"/>).
/// </summary>
public sealed unsafe class IpAdapterModel : IDisposable
{
    // Set one by one while loading; a load that fails frees those already made (Dispose skips the rest).
    private IImageProjection? _projection;
    private readonly Linear?[] _keyValues;
    private readonly int[] _widths;
    private readonly object _gate = new();
    private bool _disposed;

    public IpAdapterModel(IpAdapterSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        Projection = source.Projection;
        _widths = [.. source.LayerWidths];
        _keyValues = new Linear?[_widths.Length];
        try
        {
            using var binder = new WeightBinder(source.Weights);
            WeightBinder imageProj = binder.Child("image_proj");
            _projection = Projection.Kind switch
            {
                ImageProjectionKind.Resampler => new ResamplerImageProjection(imageProj, Projection),
                ImageProjectionKind.Mlp => new MlpImageProjection(imageProj, Projection),
                _ => new LinearImageProjection(imageProj, Projection),
            };
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

    /// <summary>Its image projection's kind and sizes.</summary>
    public ImageProjectionShape Projection { get; }

    /// <summary>Whether it takes the image encoder's penultimate hidden states (Plus, full-face) rather than its image_embeds.</summary>
    public bool TakesHiddenStates => Projection.TakesHiddenStates;

    /// <summary>The width of what it takes: the image encoder's projection_dim, or its hidden_size when it takes hidden states.</summary>
    public int InputWidth => Projection.InputWidth;

    /// <summary>The width of its image tokens: the UNet's cross_attention_dim.</summary>
    public int CrossAttentionDim => Projection.CrossAttentionDim;

    /// <summary>The width of each cross-attention layer it steers, in diffusers' processor order.</summary>
    public ReadOnlySpan<int> LayerWidths => _widths;

    /// <summary>
    /// Image tokens [N, T, D] from the encoder's image_embeds [N, E] or, when it <see cref="TakesHiddenStates"/>, its
    /// penultimate hidden states [N, positions, E]: T is 4 (plain), the Resampler's queries (Plus) or the positions
    /// (full-face).
    /// </summary>
    public Tensor Project(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        bool fits = TakesHiddenStates
            ? input.Rank == 3 && input.Dim(0) >= 1 && input.Dim(1) >= 1 && input.Dim(2) == InputWidth
            : input.Rank == 2 && input.Dim(0) >= 1 && input.Dim(1) == InputWidth;
        if (!fits)
        {
            string expected = TakesHiddenStates ? $"[N, positions, {InputWidth}] (the image encoder's penultimate hidden states)" : $"[N, {InputWidth}] (the image encoder's image_embeds)";
            throw new ArgumentException($"the IP-Adapter's input must be {expected}, got {input}", nameof(input));
        }
        input.ThrowIfNotFinite("the IP-Adapter's input contains NaN or infinity");
        int batch = input.Dim(0), positions = TakesHiddenStates ? input.Dim(1) : 1;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            Tensor tokens = Tensor.Allocate([batch, _projection!.TokensFor(positions), CrossAttentionDim]);
            try
            {
                _projection.Forward(input.Data, batch, positions, tokens.Data);
            }
            catch
            {
                tokens.Dispose();
                throw;
            }
            return tokens;
        }
    }

    /// <summary>
    /// The UNet's condition from image <paramref name="tokens"/> [batch, N x T, D] (one row per UNet image, holding
    /// the tokens of N pictures side by side; with classifier-free guidance the unconditioned rows hold the projection
    /// of zero embeddings or zero pixels) and the
    /// <paramref name="scale"/> of the image attention in every layer (diffusers' set_ip_adapter_scale with a number).
    /// </summary>
    public ImagePrompt Condition(Tensor tokens, float scale)
    {
        var scales = new float[_widths.Length];
        Array.Fill(scales, scale);
        return Condition(tokens, scales);
    }

    /// <summary>
    /// The UNet's condition with a scale per cross-attention layer, in diffusers' processor order
    /// (<see cref="IpAdapterBlockScales.Expand"/>); a layer of scale 0 skips the image attention.
    /// </summary>
    public ImagePrompt Condition(Tensor tokens, ReadOnlySpan<float> layerScales)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        if (tokens.Rank != 3 || tokens.Dim(0) < 1 || tokens.Dim(1) < 1 || tokens.Dim(2) != CrossAttentionDim
            || (Projection.Tokens > 0 && tokens.Dim(1) % Projection.Tokens != 0))
        {
            string perPicture = Projection.Tokens > 0 ? $"{Projection.Tokens}" : "positions";
            throw new ArgumentException($"image tokens must be [batch, N x {perPicture}, {CrossAttentionDim}] (N pictures' tokens side by side), got {tokens}", nameof(tokens));
        }
        if (layerScales.Length != _widths.Length)
        {
            throw new ArgumentException($"the IP-Adapter has {_widths.Length} cross-attention layers, got {layerScales.Length} scales", nameof(layerScales));
        }
        foreach (float scale in layerScales)
        {
            if (!float.IsFinite(scale)) throw new ArgumentOutOfRangeException(nameof(layerScales), scale, "IP-Adapter scales must be finite");
        }
        tokens.ThrowIfNotFinite("image tokens contain NaN or infinity");
        int count = tokens.Dim(1), rows = tokens.Dim(0) * count;
        float[] scales = layerScales.ToArray();
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
                        for (int j = 0; j < c; j++) v[j] *= scales[i];
                    }
                }
            }
            catch
            {
                foreach (NativeBlock block in keyValues) block?.Dispose();
                throw;
            }
            return new ImagePrompt(keyValues, (int[])_widths.Clone(), tokens.Dim(0), count, scales);
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _projection?.Dispose();
            foreach (Linear? layer in _keyValues) layer?.Dispose();
        }
    }
}
