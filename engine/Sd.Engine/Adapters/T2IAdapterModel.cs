using Sd.Engine.Modules;
using Sd.Engine.Tensors;
using Sd.Kernels.Convolution;
using Sd.Loaders.Config;
using Sd.Loaders.Weights;

namespace Sd.Engine.Adapters;

/// <summary>
/// A T2I-Adapter (full_adapter): a small network that turns a picture (edges, depth, a sketch...) into one feature per
/// UNet down block, which the UNet adds inside its down path (<see cref="AdapterFeatures"/>). It depends on the picture
/// alone, so a generation runs it once, not per step: nearly free beside a ControlNet, which runs with every UNet call.
/// The picture is pixel-unshuffled (each f x f patch's values become channels), conv_in, then per block a 2x2 average
/// pool (ceil mode) from the second on, a 1x1 in_conv where the width changes, and resnets of a 3x3 convolution, ReLU
/// and a 1x1 convolution added to their input. Activations are NHWC.
/// Reference: diffusers T2IAdapter, FullAdapter, AdapterBlock and AdapterResnetBlock (adapter.py, 0.27).
/// </summary>
public sealed unsafe class T2IAdapterModel : IDisposable
{
    private Conv2d _convIn = null!;
    private readonly Conv2d?[] _inConvs;
    private readonly Conv2d[][] _block1;
    private readonly Conv2d[][] _block2;
    private readonly object _gate = new();
    private bool _disposed;

    public T2IAdapterModel(T2IAdapterConfig config, WeightSet weights)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate(weights.Source);
        Config = config;
        using var binder = new WeightBinder(weights);
        WeightBinder adapter = binder.Child("adapter");
        int[] channels = config.Channels;
        _inConvs = new Conv2d?[channels.Length];
        _block1 = new Conv2d[channels.Length][];
        _block2 = new Conv2d[channels.Length][];
        try
        {
            Bind(adapter, config);
            binder.RequireAllUsed();
        }
        catch
        {
            Dispose(); // the layers packed so far
            throw;
        }
    }

    private void Bind(WeightBinder adapter, T2IAdapterConfig config)
    {
        int[] channels = config.Channels;
        // The 3x3 weights stay as loaded (streamed Winograd or implicit GEMM): stored Winograd weights would take 4x
        // their memory (SD 1.5's adapter: 1.18 GiB peak against 0.40) to save 0.02 s of a run made once per pass.
        _convIn = new Conv2d(adapter.Child("conv_in"), config.InChannels * config.DownscaleFactor * config.DownscaleFactor, channels[0], winograd: false);
        for (int i = 0; i < channels.Length; i++)
        {
            WeightBinder block = adapter.Child("body").Child(i);
            if (i > 0 && channels[i - 1] != channels[i])
            {
                _inConvs[i] = new Conv2d(block.Child("in_conv"), channels[i - 1], channels[i], kernel: 1);
            }
            _block1[i] = new Conv2d[config.NumResBlocks];
            _block2[i] = new Conv2d[config.NumResBlocks];
            for (int j = 0; j < config.NumResBlocks; j++)
            {
                _block1[i][j] = new Conv2d(block.Child("resnets").Child(j).Child("block1"), channels[i], channels[i], winograd: false);
                _block2[i][j] = new Conv2d(block.Child("resnets").Child(j).Child("block2"), channels[i], channels[i], kernel: 1);
            }
        }
    }

    public T2IAdapterConfig Config { get; }

    /// <summary>
    /// The features of <paramref name="picture"/> ([1, H, W, in_channels] NHWC, values in [0, 1] as diffusers'
    /// adapter image preprocessing gives them; H and W multiples of the downscale factor), each times
    /// <paramref name="scale"/> (adapter_conditioning_scale): feature i is [1, H / (f 2^i), W / (f 2^i), channels[i]]
    /// with each halving rounded up. The caller disposes them.
    /// </summary>
    public AdapterFeatures Forward(Tensor picture, float scale)
    {
        ArgumentNullException.ThrowIfNull(picture);
        int factor = Config.DownscaleFactor;
        if (picture.Rank != 4 || picture.Dim(0) != 1 || picture.Dim(3) != Config.InChannels || picture.Dim(1) % factor != 0 || picture.Dim(2) % factor != 0
            || picture.Dim(1) == 0 || picture.Dim(2) == 0)
        {
            throw new ArgumentException($"the adapter's picture must be [1, H, W, {Config.InChannels}] with H and W multiples of {factor}, got {picture}", nameof(picture));
        }
        if (!float.IsFinite(scale))
        {
            throw new ArgumentException($"the adapter scale {scale} is not finite", nameof(scale));
        }
        picture.ThrowIfNotFinite("the adapter's picture contains NaN or infinity");
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return Run(picture, scale);
        }
    }

    private AdapterFeatures Run(Tensor picture, float scale)
    {
        int factor = Config.DownscaleFactor, channels0 = Config.Channels[0];
        int h = picture.Dim(1) / factor, w = picture.Dim(2) / factor;
        using var workspace = new Workspace();
        Plan(workspace, h, w);
        workspace.Allocate();
        var features = new Tensor[Config.Channels.Length];
        try
        {
            using Tensor unshuffled = PixelUnshuffle(picture, factor);
            // Two work buffers as large as the first feature (every later one is smaller or as large per pixel count x width).
            long largest = 0;
            for (int i = 0, fh = h, fw = w; i < features.Length; i++, (fh, fw) = ((fh + 1) / 2, (fw + 1) / 2))
            {
                largest = Math.Max(largest, (long)fh * fw * Config.Channels[i]);
            }
            using var hidden = new NativeBlock(largest, zero: false);
            using var pooled = new NativeBlock(largest, zero: false);
            Tensor current = features[0] = Tensor.Allocate([1, h, w, channels0]);
            _convIn.Forward(unshuffled.Data, 1, h, w, current.Data, workspace);
            for (int i = 0; i < features.Length; i++)
            {
                int c = Config.Channels[i];
                if (i > 0)
                {
                    // The block's input: the previous feature, pooled, then widened.
                    int inChannels = Config.Channels[i - 1];
                    (int ph, int pw) = ((h + 1) / 2, (w + 1) / 2);
                    AveragePool2x2(current.Data, h, w, inChannels, pooled.Pointer);
                    (h, w) = (ph, pw);
                    current = features[i] = Tensor.Allocate([1, h, w, c]);
                    if (_inConvs[i] is { } inConv)
                        inConv.Forward(pooled.Pointer, 1, h, w, current.Data, workspace);
                    else
                        new Span<float>(pooled.Pointer, (int)current.Length).CopyTo(current.Span);
                }
                for (int j = 0; j < Config.NumResBlocks; j++)
                {
                    // x = block2(relu(block1(x))) + x, in place in the feature.
                    _block1[i][j].Forward(current.Data, 1, h, w, hidden.Pointer, workspace, activation: ConvActivation.LeakyRelu(0f));
                    _block2[i][j].Forward(hidden.Pointer, 1, h, w, current.Data, workspace, residual: current.Data);
                }
            }
            foreach (Tensor feature in features)
            {
                Span<float> values = feature.Span;
                for (int k = 0; k < values.Length; k++) values[k] *= scale; // once per generation: a plain loop
            }
            return new AdapterFeatures(features);
        }
        catch
        {
            foreach (Tensor? feature in features) feature?.Dispose();
            throw;
        }
    }

    /// <summary>Declares every convolution's Winograd scratch for a first feature of <paramref name="height"/> x <paramref name="width"/>.</summary>
    private void Plan(Workspace workspace, int height, int width)
    {
        _convIn.Plan(workspace, 1, height, width);
        for (int i = 0; i < _block1.Length; i++)
        {
            if (i > 0) (height, width) = ((height + 1) / 2, (width + 1) / 2);
            for (int j = 0; j < _block1[i].Length; j++)
            {
                _block1[i][j].Plan(workspace, 1, height, width);
                _block2[i][j].Plan(workspace, 1, height, width);
            }
        }
    }

    /// <summary>
    /// PyTorch's pixel_unshuffle in NHWC: [1, H, W, C] to [1, H / f, W / f, C f^2], output channel c f^2 + dy f + dx
    /// taking input pixel (y f + dy, x f + dx), channel c.
    /// </summary>
    internal static Tensor PixelUnshuffle(Tensor picture, int factor)
    {
        int height = picture.Dim(1), width = picture.Dim(2), channels = picture.Dim(3);
        int h = height / factor, w = width / factor, outChannels = channels * factor * factor;
        Tensor result = Tensor.Allocate([1, h, w, outChannels]);
        ReadOnlySpan<float> source = picture.Span;
        Span<float> target = result.Span;
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                int o = (y * w + x) * outChannels;
                for (int c = 0; c < channels; c++)
                {
                    for (int dy = 0; dy < factor; dy++)
                    {
                        for (int dx = 0; dx < factor; dx++)
                        {
                            target[o + (c * factor + dy) * factor + dx] = source[((y * factor + dy) * width + x * factor + dx) * channels + c];
                        }
                    }
                }
            }
        }
        return result;
    }

    /// <summary>
    /// AvgPool2d(kernel 2, stride 2, ceil_mode=True) in NHWC: a window the edge cuts averages the pixels it has, as
    /// PyTorch divides by the window clipped to the input when there is no padding.
    /// </summary>
    internal static void AveragePool2x2(float* input, int height, int width, int channels, float* output)
    {
        int h = (height + 1) / 2, w = (width + 1) / 2;
        for (int y = 0; y < h; y++)
        {
            int rows = Math.Min(2, height - 2 * y);
            for (int x = 0; x < w; x++)
            {
                int columns = Math.Min(2, width - 2 * x);
                float divisor = rows * columns;
                float* o = output + ((long)y * w + x) * channels;
                for (int c = 0; c < channels; c++)
                {
                    float sum = 0;
                    for (int dy = 0; dy < rows; dy++)
                    {
                        for (int dx = 0; dx < columns; dx++) sum += input[((long)(2 * y + dy) * width + 2 * x + dx) * channels + c];
                    }
                    o[c] = sum / divisor;
                }
            }
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            // Null-tolerant: a constructor that failed half-way disposes what it had packed.
            _convIn?.Dispose();
            foreach (Conv2d? conv in _inConvs) conv?.Dispose();
            foreach (Conv2d?[]? convs in _block1) foreach (Conv2d? conv in convs ?? []) conv?.Dispose();
            foreach (Conv2d?[]? convs in _block2) foreach (Conv2d? conv in convs ?? []) conv?.Dispose();
        }
    }
}
