using Sd.Engine.Modules;
using Sd.Engine.Tensors;
using Sd.Kernels.Elementwise;
using Sd.Loaders.Config;
using Sd.Loaders.Weights;

namespace Sd.Engine.Vae;

/// <summary>
/// The SD VAE. Decode: post_quant_conv, conv_in, mid block, up levels, GroupNorm+SiLU, conv_out (latents -> image
/// in about [-1, 1]). Encode: conv_in, down levels, mid block, GroupNorm+SiLU, conv_out, quant_conv -> the diagonal
/// Gaussian's mean and log-variance (clamped to [-30, 20]). The scaling factor is applied outside, as in diffusers
/// (<c>decode(latents / scaling_factor)</c>). NHWC tensors; run buffers planned per shape and reused. Calls from
/// several threads run one at a time (they share those buffers), and Dispose waits for a running call.
/// Reference: diffusers AutoencoderKL, Encoder, Decoder (autoencoder_kl.py, vae.py), DiagonalGaussianDistribution.
/// </summary>
public sealed unsafe class AutoencoderKL : IDisposable
{
    private const double Eps = 1e-6;
    private readonly VaeCoder _encoder;
    private readonly VaeCoder _decoder;
    private readonly Conv2d? _quantConv;
    private readonly Conv2d? _postQuantConv;

    /// <summary>Held by every call: they share the coders' run buffers, which Dispose frees.</summary>
    private readonly object _gate = new();
    private bool _disposed;

    public AutoencoderKL(VaeConfig config, WeightSet weights, VaeOptions? options = null)
    {
        Config = config;
        config.Validate(weights.Source); // a config built in code passes the checks a loaded one did
        Options = options ?? new VaeOptions();
        if (config.ActFn != "silu")
        {
            throw new NotSupportedException($"{weights.Source}: VAE act_fn '{config.ActFn}' is not supported (silu only)");
        }
        using var binder = new WeightBinder(weights);
        int latent = config.LatentChannels;
        _encoder = VaeCoder.Encoder(binder.Child("encoder"), config);
        _decoder = VaeCoder.Decoder(binder.Child("decoder"), config);
        _quantConv = config.UseQuantConv ? new Conv2d(binder.Child("quant_conv"), 2 * latent, 2 * latent, kernel: 1) : null;
        _postQuantConv = config.UsePostQuantConv ? new Conv2d(binder.Child("post_quant_conv"), latent, latent, kernel: 1) : null;
        binder.RequireAllUsed();
    }

    public VaeConfig Config { get; }

    public VaeOptions Options { get; }

    /// <summary>Tile edge in image pixels: the config's sample_size (512 for SD), as diffusers' tile_sample_min_size.</summary>
    public int SampleTile => Config.SampleSize;

    /// <summary>Tile edge in latent pixels (64 for SD), as diffusers' tile_latent_min_size.</summary>
    public int LatentTile => Config.SampleSize / Factor;

    /// <summary>Whether a decode of latents [batch, h, w] runs tiled under <see cref="Options"/>.</summary>
    public bool DecodeIsTiled(int batch, int h, int w) =>
        Tiled(h > LatentTile || w > LatentTile, _decoder.PlannedBytes(batch, h, w));

    /// <summary>Whether an encode of an image [batch, H, W] runs tiled under <see cref="Options"/>.</summary>
    public bool EncodeIsTiled(int batch, int height, int width) =>
        Tiled(height > SampleTile || width > SampleTile, _encoder.PlannedBytes(batch, height, width));

    private bool Tiled(bool larger, long plannedBytes) => Options.Tiling switch
    {
        VaeTiling.Always => larger,
        VaeTiling.Never => false,
        _ => larger && plannedBytes > Options.MemoryBudgetBytes,
    };

    /// <summary>Image pixels per latent pixel along each axis (8 for SD).</summary>
    public int Factor => Config.DownscaleFactor;

    /// <summary>image [N, h*f, w*f, out_channels] = decoder(latents [N, h, w, latent]) (latents already divided by the scaling factor).</summary>
    public void Decode(Tensor latents, Tensor image, CancellationToken cancellation = default)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            RunDecode(latents, image, cancellation);
        }
    }

    private void RunDecode(Tensor latents, Tensor image, CancellationToken cancellation)
    {
        Check(latents, Config.LatentChannels, "latents");
        int batch = latents.Dim(0), h = latents.Dim(1), w = latents.Dim(2);
        ExpectShape(image, [batch, h * Factor, w * Factor, Config.OutChannels], nameof(image));
        if (DecodeIsTiled(batch, h, w))
        {
            VaeTilingRunner.Run(latents, image, LatentTile, Factor, 1, (tile, output) => DecodeTile(tile, output, cancellation));
        }
        else
        {
            DecodeTile(latents, image, cancellation);
        }
        image.ThrowIfNotFinite("the VAE decoder produced NaN or infinity");
    }

    /// <summary>
    /// (mean, logvar) [N, H/f, W/f, latent] = encoder(image [N, H, W, in_channels] in [-1, 1]); H and W must be
    /// multiples of the factor.
    /// </summary>
    public void Encode(Tensor image, Tensor mean, Tensor logvar, CancellationToken cancellation = default)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            RunEncode(image, mean, logvar, cancellation);
        }
    }

    private void RunEncode(Tensor image, Tensor mean, Tensor logvar, CancellationToken cancellation)
    {
        Check(image, Config.InChannels, "image");
        int batch = image.Dim(0), height = image.Dim(1), width = image.Dim(2);
        if (height % Factor != 0 || width % Factor != 0)
        {
            throw new ArgumentException($"image size {height}x{width} is not a multiple of {Factor}", nameof(image));
        }
        int h = height / Factor, w = width / Factor, latent = Config.LatentChannels;
        ExpectShape(mean, [batch, h, w, latent], nameof(mean));
        ExpectShape(logvar, [batch, h, w, latent], nameof(logvar));
        using var moments = Tensor.Allocate([batch, h, w, 2 * latent]);
        if (EncodeIsTiled(batch, height, width))
        {
            VaeTilingRunner.Run(image, moments, SampleTile, 1, Factor, (tile, output) => EncodeTile(tile, output, cancellation));
        }
        else
        {
            EncodeTile(image, moments, cancellation);
        }
        // moments rows are [mean | logvar]; logvar is clamped as DiagonalGaussianDistribution does.
        long pixels = (long)batch * h * w;
        float* both = moments.Data, meanOut = mean.Data, logvarOut = logvar.Data;
        for (long p = 0; p < pixels; p++)
        {
            for (int c = 0; c < latent; c++)
            {
                meanOut[p * latent + c] = both[p * 2 * latent + c];
                logvarOut[p * latent + c] = Math.Clamp(both[p * 2 * latent + latent + c], -30f, 20f);
            }
        }
        mean.ThrowIfNotFinite("the VAE encoder produced NaN or infinity");
    }

    /// <summary>
    /// A draw of the posterior: sample = mean + exp(0.5 logvar) * noise, with the caller's standard-normal noise
    /// (so runs are reproducible with a given generator). Any of the tensors may be the same.
    /// Reference: diffusers DiagonalGaussianDistribution.sample.
    /// </summary>
    public static void SamplePosterior(Tensor mean, Tensor logvar, Tensor noise, Tensor sample)
    {
        if (!mean.Shape.SequenceEqual(logvar.Shape) || !mean.Shape.SequenceEqual(noise.Shape) || !mean.Shape.SequenceEqual(sample.Shape))
        {
            throw new ArgumentException($"mean {mean}, logvar {logvar}, noise {noise} and sample {sample} must have one shape");
        }
        for (long i = 0; i < mean.Length; i++)
        {
            sample.Data[i] = mean.Data[i] + MathF.Exp(0.5f * logvar.Data[i]) * noise.Data[i];
        }
    }

    /// <summary>post_quant_conv + decoder on one tile (or the whole image).</summary>
    private void DecodeTile(Tensor latents, Tensor image, CancellationToken cancellation)
    {
        int batch = latents.Dim(0), h = latents.Dim(1), w = latents.Dim(2);
        using var input = Tensor.Allocate(latents.Shape);
        if (_postQuantConv != null)
        {
            _postQuantConv.Forward(latents.Data, batch, h, w, input.Data, workspace: null);
        }
        else
        {
            latents.Span.CopyTo(input.Span);
        }
        _decoder.Forward(input.Data, batch, h, w, image.Data, cancellation);
    }

    /// <summary>Encoder + quant_conv on one tile (or the whole image): the Gaussian's moments [mean | logvar].</summary>
    private void EncodeTile(Tensor image, Tensor moments, CancellationToken cancellation)
    {
        int batch = image.Dim(0), h = moments.Dim(1), w = moments.Dim(2);
        _encoder.Forward(image.Data, batch, image.Dim(1), image.Dim(2), moments.Data, cancellation);
        if (_quantConv != null)
        {
            using var quantized = Tensor.Allocate(moments.Shape);
            _quantConv.Forward(moments.Data, batch, h, w, quantized.Data, workspace: null);
            quantized.Span.CopyTo(moments.Span);
        }
    }

    private static void Check(Tensor tensor, int channels, string name)
    {
        if (tensor.Rank != 4 || tensor.Dim(3) != channels || tensor.Length == 0)
        {
            throw new ArgumentException($"{name} must be [N, H, W, {channels}] (NHWC, none of them 0), got {tensor}", name);
        }
        tensor.ThrowIfNotFinite($"{name} contains NaN or infinity");
    }

    private static void ExpectShape(Tensor tensor, int[] shape, string name)
    {
        if (!tensor.Shape.SequenceEqual(shape))
        {
            throw new ArgumentException($"{name} must be {Tensor.ShapeText(shape)}, got {tensor}", name);
        }
    }

    /// <summary>Frees the activation buffers of the last run shapes (the next call plans them again).</summary>
    public void ReleaseRunBuffers()
    {
        lock (_gate)
        {
            _encoder.ReleaseRunBuffers();
            _decoder.ReleaseRunBuffers();
        }
    }

    /// <summary>Frees the weights and buffers, after a call running on another thread has finished.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            _encoder.Dispose();
            _decoder.Dispose();
            _quantConv?.Dispose();
            _postQuantConv?.Dispose();
        }
    }
}

/// <summary>
/// Encoder or decoder trunk: conv_in, levels (the mid block is the encoder's last level and the decoder's first),
/// GroupNorm+SiLU, conv_out. Buffers are planned per run shape.
/// Reference: diffusers Encoder / Decoder (vae.py).
/// </summary>
internal sealed unsafe class VaeCoder : IDisposable
{
    private readonly Conv2d _convIn;
    private readonly VaeLevel[] _levels;
    private readonly GroupNormModule _normOut;
    private readonly Conv2d _convOut;
    private RunBuffers? _buffers;

    private VaeCoder(Conv2d convIn, VaeLevel[] levels, GroupNormModule normOut, Conv2d convOut)
    {
        _convIn = convIn;
        _levels = levels;
        _normOut = normOut;
        _convOut = convOut;
    }

    public static VaeCoder Encoder(WeightBinder binder, VaeConfig config)
    {
        int[] channels = config.BlockOutChannels;
        int groups = config.NormNumGroups;
        var levels = new VaeLevel[channels.Length + 1];
        for (int i = 0; i < channels.Length; i++)
        {
            levels[i] = VaeLevel.Encoder(binder.Child("down_blocks").Child(i), i == 0 ? channels[0] : channels[i - 1], channels[i],
                config.LayersPerBlock, groups, downsample: i < channels.Length - 1);
        }
        levels[^1] = VaeLevel.Mid(binder.Child("mid_block"), channels[^1], groups, config.MidBlockAddAttention);
        return new VaeCoder(
            new Conv2d(binder.Child("conv_in"), config.InChannels, channels[0]),
            levels,
            new GroupNormModule(binder.Child("conv_norm_out"), groups, channels[^1], 1e-6),
            new Conv2d(binder.Child("conv_out"), channels[^1], 2 * config.LatentChannels));
    }

    public static VaeCoder Decoder(WeightBinder binder, VaeConfig config)
    {
        int[] channels = config.BlockOutChannels;
        int groups = config.NormNumGroups;
        int n = channels.Length;
        var levels = new VaeLevel[n + 1];
        levels[0] = VaeLevel.Mid(binder.Child("mid_block"), channels[^1], groups, config.MidBlockAddAttention);
        for (int i = 0; i < n; i++)
        {
            int output = channels[n - 1 - i];
            int input = i == 0 ? channels[n - 1] : channels[n - i];
            levels[i + 1] = VaeLevel.Decoder(binder.Child("up_blocks").Child(i), input, output, config.LayersPerBlock + 1, groups, upsample: i < n - 1);
        }
        return new VaeCoder(
            new Conv2d(binder.Child("conv_in"), config.LatentChannels, channels[^1]),
            levels,
            new GroupNormModule(binder.Child("conv_norm_out"), groups, channels[0], 1e-6),
            new Conv2d(binder.Child("conv_out"), channels[0], config.OutChannels));
    }

    /// <summary>
    /// y [N, OH, OW, conv_out channels] = trunk(x [N, H, W, conv_in channels]); cancellation is checked between
    /// levels.
    /// </summary>
    public void Forward(float* x, int batch, int height, int width, float* y, CancellationToken cancellation)
    {
        RunBuffers buffers = BuffersFor(batch, height, width);
        Workspace ws = buffers.Workspace;
        float* pingA = buffers.PingA.Pointer, pingB = buffers.PingB.Pointer;
        _convIn.Forward(x, batch, height, width, pingA, ws);
        float* current = pingA;
        int h = height, w = width;
        foreach (VaeLevel level in _levels)
        {
            cancellation.ThrowIfCancellationRequested();
            current = level.Forward(current, batch, h, w, pingA, pingB, ws);
            (h, w) = level.OutputSize(h, w);
        }
        float* normed = ws[Scratch.ResnetNorm];
        _normOut.Forward(current, normed, batch, h * w, Activation.Silu);
        _convOut.Forward(normed, batch, h, w, y, ws);
    }

    /// <summary>Activation memory a run at this shape plans (workspace + ping-pong buffers), in bytes.</summary>
    public long PlannedBytes(int batch, int height, int width)
    {
        using var workspace = new Workspace();
        long ping = Plan(workspace, batch, height, width);
        return workspace.TotalBytes + 2 * ping * sizeof(float);
    }

    private RunBuffers BuffersFor(int batch, int height, int width)
    {
        if (_buffers is { } b && b.Batch == batch && b.Height == height && b.Width == width)
        {
            return b;
        }
        _buffers?.Dispose();
        _buffers = null;
        var workspace = new Workspace();
        long ping = Plan(workspace, batch, height, width);
        workspace.Allocate();
        _buffers = new RunBuffers(batch, height, width, workspace, new NativeBlock(ping, zero: false), new NativeBlock(ping, zero: false));
        return _buffers;
    }

    /// <summary>Declares the run's workspace needs; returns the ping-pong buffer size in floats.</summary>
    private long Plan(Workspace workspace, int batch, int height, int width)
    {
        _convIn.Plan(workspace, batch, height, width);
        long ping = (long)batch * height * width * _convIn.OutChannels;
        int h = height, w = width;
        foreach (VaeLevel level in _levels)
        {
            ping = Math.Max(ping, level.Plan(workspace, batch, h, w));
            (h, w) = level.OutputSize(h, w);
        }
        workspace.Need(Scratch.ResnetNorm, (long)batch * h * w * _normOut.Channels);
        _convOut.Plan(workspace, batch, h, w);
        return ping;
    }

    public void ReleaseRunBuffers()
    {
        _buffers?.Dispose();
        _buffers = null;
    }

    private sealed record RunBuffers(int Batch, int Height, int Width, Workspace Workspace, NativeBlock PingA, NativeBlock PingB) : IDisposable
    {
        public void Dispose()
        {
            Workspace.Dispose();
            PingA.Dispose();
            PingB.Dispose();
        }
    }

    public void Dispose()
    {
        _buffers?.Dispose();
        _convIn.Dispose();
        foreach (VaeLevel level in _levels) level.Dispose();
        _normOut.Dispose();
        _convOut.Dispose();
    }
}
