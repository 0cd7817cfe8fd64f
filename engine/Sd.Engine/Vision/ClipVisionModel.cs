using Sd.Engine.Modules;
using Sd.Engine.Tensors;
using Sd.Engine.Text;
using Sd.Loaders.Config;
using Sd.Loaders.Weights;

namespace Sd.Engine.Vision;

/// <summary>
/// CLIP's image encoder with its projection (IP-Adapter's image encoder): the picture cut into patch x patch squares,
/// each a token (a stride = kernel convolution, run as one GEMM), after a learned class token; position embeddings;
/// pre_layrnorm; unmasked pre-LN encoder layers; post_layernorm of the class token; visual_projection (or, for
/// IP-Adapter Plus and full-face, the states before the last layer). F16/BF16
/// weights stay packed in 16 bits; compute is float32.
/// Reference: transformers CLIPVisionModelWithProjection / CLIPVisionTransformer (4.38).
/// </summary>
public sealed unsafe class ClipVisionModel : IDisposable
{
    // Set one by one while loading; a load that fails frees those already made (Dispose skips the rest).
    private NativeBlock? _classEmbedding;
    private Linear? _patchEmbedding;
    private NativeBlock? _positionEmbedding;
    private LayerNormModule? _preLayerNorm;
    private readonly ClipEncoderLayer?[] _layers;
    private LayerNormModule? _postLayerNorm;
    private Linear? _visualProjection;

    /// <summary>hidden_states[-2] of zero pixel values [1, positions, W], made on first use and kept (see <see cref="ZeroPixelHiddenStates"/>).</summary>
    private Tensor? _zeroPixelStates;

    /// <summary>Held by every call and by Dispose, which must not free weights a running call reads.</summary>
    private readonly object _gate = new();
    private bool _disposed;

    public ClipVisionModel(ClipVisionConfig config, WeightSet weights)
    {
        Config = config;
        config.Validate(weights.Source); // a config built in code passes the checks a loaded one did
        _layers = new ClipEncoderLayer?[config.NumHiddenLayers];
        try
        {
            Bind(config, weights);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private void Bind(ClipVisionConfig config, WeightSet weights)
    {
        int width = config.HiddenSize;
        using var binder = new WeightBinder(weights);
        WeightBinder vision = binder.Child("vision_model");
        WeightBinder embeddings = vision.Child("embeddings");
        _classEmbedding = embeddings.Load("class_embedding", [width]);
        _patchEmbedding = Linear.Patches(embeddings.Child("patch_embedding"), config.NumChannels, config.PatchSize, width, bias: false);
        _positionEmbedding = embeddings.Child("position_embedding").Load("weight", [config.Positions, width]);
        _preLayerNorm = new LayerNormModule(vision.Child("pre_layrnorm"), width, config.LayerNormEps);
        WeightBinder layers = vision.Child("encoder").Child("layers");
        for (int i = 0; i < _layers.Length; i++)
        {
            _layers[i] = new ClipEncoderLayer(layers.Child(i), width, config.NumAttentionHeads, config.IntermediateSize,
                config.HiddenAct, config.LayerNormEps, causal: false);
        }
        _postLayerNorm = new LayerNormModule(vision.Child("post_layernorm"), width, config.LayerNormEps);
        _visualProjection = new Linear(binder.Child("visual_projection"), width, config.ProjectionDim, bias: false);
        binder.RequireAllUsed();
    }

    public ClipVisionConfig Config { get; }

    /// <summary>
    /// image_embeds [N, projection_dim] of <paramref name="pixels"/> [N, S, S, 3] (NHWC, S = image_size), which
    /// <see cref="ClipImageProcessor"/> makes from pictures.
    /// </summary>
    public Tensor Encode(Tensor pixels)
    {
        CheckPixels(pixels);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            int batch = pixels.Dim(0), width = Config.HiddenSize, length = Config.Positions;
            using var hidden = new NativeBlock((long)batch * length * width, zero: false);
            RunLayers(pixels, hidden.Pointer, _layers.Length);
            // pooler_output: post_layernorm of each image's class token, [N, W], then projected.
            using var pooled = new NativeBlock((long)batch * width, zero: false);
            for (int n = 0; n < batch; n++)
            {
                _postLayerNorm!.Forward(hidden.Pointer + (long)n * length * width, pooled.Pointer + (long)n * width, 1);
            }
            Tensor embeds = Tensor.Allocate([batch, Config.ProjectionDim]);
            _visualProjection!.Forward(pooled.Pointer, batch, width, embeds.Data, Config.ProjectionDim);
            return embeds;
        }
    }

    /// <summary>
    /// hidden_states[-2] [N, positions, hidden_size] of <paramref name="pixels"/> (as <see cref="Encode"/> takes
    /// them): the encoder's states before its last layer, with no final norm, which IP-Adapter Plus and full-face take
    /// (transformers' output_hidden_states=True). The last layer is not run.
    /// </summary>
    public Tensor PenultimateHiddenStates(Tensor pixels)
    {
        CheckPixels(pixels);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            Tensor states = Tensor.Allocate([pixels.Dim(0), Config.Positions, Config.HiddenSize]);
            RunLayers(pixels, states.Data, _layers.Length - 1);
            return states;
        }
    }

    /// <summary>
    /// <see cref="PenultimateHiddenStates"/> of zero pixel values, [1, positions, hidden_size]: what IP-Adapter Plus and
    /// full-face show the unconditioned rows of guidance (diffusers' encode_image of zeros_like(pixel_values)). The same
    /// for every picture, so it is computed once per encoder and copied out after.
    /// </summary>
    public Tensor ZeroPixelHiddenStates()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_zeroPixelStates is null)
            {
                using Tensor zeros = Tensor.Allocate([1, Config.ImageSize, Config.ImageSize, Config.NumChannels]);
                _zeroPixelStates = PenultimateHiddenStates(zeros);
            }
            Tensor copy = Tensor.Allocate(_zeroPixelStates.Shape);
            _zeroPixelStates.Span.CopyTo(copy.Span);
            return copy;
        }
    }

    private void CheckPixels(Tensor pixels)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        int side = Config.ImageSize;
        if (pixels.Rank != 4 || pixels.Dim(0) < 1 || pixels.Dim(1) != side || pixels.Dim(2) != side || pixels.Dim(3) != Config.NumChannels)
        {
            throw new ArgumentException($"pixels must be [N, {side}, {side}, {Config.NumChannels}] (NHWC, the image processor's output), got {pixels}", nameof(pixels));
        }
        pixels.ThrowIfNotFinite("pixels contain NaN or infinity");
    }

    /// <summary>hidden [N x positions, W] = the first <paramref name="layers"/> encoder layers over the embedded, pre-normed pictures.</summary>
    private void RunLayers(Tensor pixels, float* hidden, int layers)
    {
        int batch = pixels.Dim(0), width = Config.HiddenSize, length = Config.Positions;
        int patchValues = _patchEmbedding!.InFeatures, patchesPerImage = length - 1;
        long rows = (long)batch * length;
        using (var patches = new NativeBlock((long)patchesPerImage * patchValues, zero: false))
        {
            for (int n = 0; n < batch; n++)
            {
                // [S, S, 3] picture n -> [patches, 3 x P x P] rows -> tokens 1.. of image n, plus their position rows.
                Patchify(pixels.Data + (long)n * Config.ImageSize * Config.ImageSize * Config.NumChannels, patches.Pointer);
                float* tokens = hidden + (long)n * length * width;
                _patchEmbedding!.Forward(patches.Pointer, patchesPerImage, patchValues, tokens + width, width,
                    residual: _positionEmbedding!.Pointer + width, ldr: width);
                for (int c = 0; c < width; c++)
                {
                    tokens[c] = _classEmbedding!.Pointer[c] + _positionEmbedding!.Pointer[c];
                }
            }
        }
        _preLayerNorm!.Forward(hidden, hidden, (int)rows);
        if (layers == 0)
        {
            return;
        }
        using var x = new NativeBlock(rows * width, zero: false);
        using var qkv = new NativeBlock(rows * 3 * width, zero: false);
        using var mlp = new NativeBlock(rows * Config.IntermediateSize, zero: false);
        for (int i = 0; i < layers; i++)
        {
            _layers[i]!.Forward(hidden, batch, length, x.Pointer, qkv.Pointer, mlp.Pointer);
        }
    }

    /// <summary>One NHWC picture's patches as GEMM rows, row-major over the patch grid, values in (channel, y, x) order as the convolution's weights.</summary>
    private void Patchify(float* picture, float* rows)
    {
        int side = Config.ImageSize, patch = Config.PatchSize, channels = Config.NumChannels, grid = Config.PatchesPerSide;
        for (int py = 0; py < grid; py++)
        {
            for (int px = 0; px < grid; px++)
            {
                float* row = rows + (long)(py * grid + px) * channels * patch * patch;
                for (int c = 0; c < channels; c++)
                {
                    for (int y = 0; y < patch; y++)
                    {
                        float* source = picture + ((long)(py * patch + y) * side + px * patch) * channels + c;
                        float* target = row + (c * patch + y) * patch;
                        for (int x = 0; x < patch; x++)
                        {
                            target[x] = source[x * channels];
                        }
                    }
                }
            }
        }
    }

    /// <summary>Frees the weights, after a call running on another thread has finished; later calls throw.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _classEmbedding?.Dispose();
            _patchEmbedding?.Dispose();
            _positionEmbedding?.Dispose();
            _preLayerNorm?.Dispose();
            foreach (ClipEncoderLayer? layer in _layers) layer?.Dispose();
            _postLayerNorm?.Dispose();
            _visualProjection?.Dispose();
            _zeroPixelStates?.Dispose();
        }
    }
}
