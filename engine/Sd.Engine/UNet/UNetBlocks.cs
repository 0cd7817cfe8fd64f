using Sd.Engine.Modules;
using Sd.Kernels.Elementwise;

namespace Sd.Engine.UNet;

/// <summary>An activation buffer of the UNet with its shape: NHWC [batch, Height, Width, Channels].</summary>
internal unsafe struct FeatureMap
{
    public float* Data;
    public int Channels;
    public int Height;
    public int Width;
}

/// <summary>
/// A down block: ResNet blocks, each followed by a transformer when the block has cross-attention, then an optional
/// stride-2 downsampler. Every layer's output is a skip connection for the up path, written straight into its skip
/// buffer. Reference: diffusers CrossAttnDownBlock2D and DownBlock2D (unet_2d_blocks.py), Downsample2D (padding 1).
/// </summary>
internal sealed unsafe class DownBlock : IDisposable
{
    private readonly ResnetBlock2D[] _resnets;
    private readonly Transformer2DModel[]? _attentions;
    private readonly Conv2d? _downsampler;

    public DownBlock(WeightBinder binder, UNetLevel level, int inChannels, int tembChannels, bool addDownsample)
    {
        OutChannels = level.Channels;
        _resnets = new ResnetBlock2D[level.Layers];
        _attentions = level.HasAttention ? new Transformer2DModel[level.Layers] : null;
        for (int j = 0; j < level.Layers; j++)
        {
            _resnets[j] = level.CreateResnet(binder.Child("resnets").Child(j), j == 0 ? inChannels : OutChannels, tembChannels);
            if (_attentions != null)
            {
                _attentions[j] = level.CreateTransformer(binder.Child("attentions").Child(j));
            }
        }
        if (addDownsample)
        {
            _downsampler = new Conv2d(binder.Child("downsamplers").Child(0).Child("conv"), OutChannels, OutChannels, kernel: 3, stride: 2);
        }
    }

    public int OutChannels { get; }

    /// <summary>Skip connections this block produces: one per layer plus the downsampler's.</summary>
    public int SkipCount => _resnets.Length + (_downsampler != null ? 1 : 0);

    /// <summary>The block's transformers in order; none for a plain block.</summary>
    public ReadOnlySpan<Transformer2DModel> Transformers => _attentions;

    public void Plan(Workspace workspace, int batch, int height, int width, int contextLength)
    {
        foreach (ResnetBlock2D resnet in _resnets) resnet.Plan(workspace, batch, height, width);
        if (_attentions != null)
        {
            foreach (Transformer2DModel attention in _attentions) attention.Plan(workspace, batch, height, width, contextLength);
        }
        _downsampler?.Plan(workspace, batch, height, width);
    }

    /// <summary>
    /// Runs the block on <paramref name="input"/>; skips[0..SkipCount) are its (pre-shaped) outputs. With
    /// <paramref name="repeatedHalves"/> the input's halves are equal (<see cref="RepeatedHalves"/>): the first layer
    /// runs on the first half up to its first cross-attention, then fills the second. <paramref name="adapter"/>, a
    /// T2I-Adapter feature [h, w, c] for every image, is added as diffusers adds it: with cross-attention to the last
    /// layer's output (a skip) before the downsampler reads it, else to the block's last output (a skip too).
    /// </summary>
    public void Forward(FeatureMap input, int batch, float* siluTemb, in TextContext context,
        Span<FeatureMap> skips, Workspace ws, bool repeatedHalves, float* adapter = null)
    {
        FeatureMap current = input;
        for (int j = 0; j < _resnets.Length; j++)
        {
            bool halves = repeatedHalves && j == 0;
            FeatureMap output = skips[j];
            _resnets[j].Forward(current.Data, halves ? batch / 2 : batch, current.Height, current.Width, siluTemb, output.Data, ws);
            if (_attentions != null)
            {
                _attentions[j].Forward(output.Data, batch, current.Height, current.Width, context, ws, halves);
            }
            else if (halves)
            {
                RepeatedHalves.CopyFirstToSecond(output, batch);
            }
            current = output;
        }
        if (adapter != null && _attentions != null)
        {
            AddToEveryImage(current, batch, adapter);
        }
        _downsampler?.Forward(current.Data, batch, current.Height, current.Width, skips[_resnets.Length].Data, ws);
        if (adapter != null && _attentions == null)
        {
            AddToEveryImage(skips[^1], batch, adapter);
        }
    }

    /// <summary>Adds <paramref name="feature"/> [h, w, c] to every image of <paramref name="map"/>.</summary>
    private static void AddToEveryImage(FeatureMap map, int batch, float* feature)
    {
        nint perImage = (nint)map.Height * map.Width * map.Channels;
        for (int n = 0; n < batch; n++)
        {
            Pointwise.Add(map.Data + n * perImage, feature, map.Data + n * perImage, perImage);
        }
    }

    /// <summary>The shape a T2I-Adapter's feature for this block has: the output it is added to.</summary>
    public FeatureMap AdapterTarget(ReadOnlySpan<FeatureMap> skips) => _attentions != null ? skips[_resnets.Length - 1] : skips[^1];

    public void Dispose()
    {
        foreach (ResnetBlock2D resnet in _resnets) resnet.Dispose();
        if (_attentions != null)
        {
            foreach (Transformer2DModel attention in _attentions) attention.Dispose();
        }
        _downsampler?.Dispose();
    }
}

/// <summary>
/// ResNet, then (transformer, ResNet) pairs, at the lowest resolution.
/// Reference: diffusers UNetMidBlock2DCrossAttn (unet_2d_blocks.py).
/// </summary>
internal sealed unsafe class MidBlock : IDisposable
{
    private readonly ResnetBlock2D[] _resnets;
    private readonly Transformer2DModel[] _attentions;

    public MidBlock(WeightBinder binder, UNetLevel level, int tembChannels)
    {
        int layers = level.Layers;
        _resnets = new ResnetBlock2D[layers + 1];
        _attentions = new Transformer2DModel[layers];
        for (int j = 0; j <= layers; j++)
        {
            _resnets[j] = level.CreateResnet(binder.Child("resnets").Child(j), level.Channels, tembChannels);
            if (j < layers)
            {
                _attentions[j] = level.CreateTransformer(binder.Child("attentions").Child(j));
            }
        }
    }

    /// <summary>The block's transformers in order.</summary>
    public ReadOnlySpan<Transformer2DModel> Transformers => _attentions;

    public void Plan(Workspace workspace, int batch, int height, int width, int contextLength)
    {
        foreach (ResnetBlock2D resnet in _resnets) resnet.Plan(workspace, batch, height, width);
        foreach (Transformer2DModel attention in _attentions) attention.Plan(workspace, batch, height, width, contextLength);
    }

    /// <summary>input -> pingA/pingB alternately; returns the buffer holding the result.</summary>
    public float* Forward(FeatureMap input, int batch, float* siluTemb, in TextContext context,
        float* pingA, float* pingB, Workspace ws)
    {
        float* output = pingA;
        _resnets[0].Forward(input.Data, batch, input.Height, input.Width, siluTemb, output, ws);
        for (int j = 0; j < _attentions.Length; j++)
        {
            _attentions[j].Forward(output, batch, input.Height, input.Width, context, ws, repeatedHalves: false);
            float* next = output == pingA ? pingB : pingA;
            _resnets[j + 1].Forward(output, batch, input.Height, input.Width, siluTemb, next, ws);
            output = next;
        }
        return output;
    }

    public void Dispose()
    {
        foreach (ResnetBlock2D resnet in _resnets) resnet.Dispose();
        foreach (Transformer2DModel attention in _attentions) attention.Dispose();
    }
}

/// <summary>
/// An up block: for each layer, concatenate [hidden | skip] along channels, ResNet, transformer when the block has
/// cross-attention; then an optional up-sampler to the next skip's size.
/// Reference: diffusers CrossAttnUpBlock2D and UpBlock2D (unet_2d_blocks.py).
/// </summary>
internal sealed unsafe class UpBlock : IDisposable
{
    private readonly ResnetBlock2D[] _resnets;
    private readonly Transformer2DModel[]? _attentions;
    private readonly Upsample2D? _upsampler;
    private readonly int[] _skipChannels;

    /// <param name="upsampleWinograd">The up-sampler's convolution runs at the next finer level: its Winograd choice.</param>
    public UpBlock(WeightBinder binder, UNetLevel level, int prevOutputChannels, int[] skipChannels, int tembChannels,
        bool addUpsample, bool upsampleWinograd)
    {
        OutChannels = level.Channels;
        _skipChannels = skipChannels;
        int layers = skipChannels.Length;
        _resnets = new ResnetBlock2D[layers];
        _attentions = level.HasAttention ? new Transformer2DModel[layers] : null;
        for (int j = 0; j < layers; j++)
        {
            int hiddenChannels = j == 0 ? prevOutputChannels : OutChannels;
            _resnets[j] = level.CreateResnet(binder.Child("resnets").Child(j), hiddenChannels + skipChannels[j], tembChannels);
            if (_attentions != null)
            {
                _attentions[j] = level.CreateTransformer(binder.Child("attentions").Child(j));
            }
        }
        if (addUpsample)
        {
            _upsampler = new Upsample2D(binder.Child("upsamplers").Child(0), OutChannels, upsampleWinograd);
        }
    }

    public int OutChannels { get; }

    public int SkipCount => _resnets.Length;

    /// <summary>The block's transformers in order; none for a plain block.</summary>
    public ReadOnlySpan<Transformer2DModel> Transformers => _attentions;

    public void Plan(Workspace workspace, int batch, int height, int width, int contextLength, int outHeight, int outWidth)
    {
        long pixels = (long)batch * height * width;
        foreach (ResnetBlock2D resnet in _resnets)
        {
            workspace.Need(Scratch.Concat, pixels * resnet.InChannels);
            resnet.Plan(workspace, batch, height, width);
        }
        if (_attentions != null)
        {
            foreach (Transformer2DModel attention in _attentions) attention.Plan(workspace, batch, height, width, contextLength);
        }
        _upsampler?.Plan(workspace, batch, outHeight, outWidth);
    }

    /// <summary>
    /// Consumes skips (last first), ping-pongs through pingA/pingB and returns the output buffer; with an up-sampler
    /// the output is at (outHeight, outWidth).
    /// </summary>
    public float* Forward(float* hidden, int hiddenChannels, int batch, int height, int width, ReadOnlySpan<FeatureMap> skips,
        float* siluTemb, in TextContext context, float* pingA, float* pingB, int outHeight, int outWidth, Workspace ws)
    {
        float* concat = ws[Scratch.Concat];
        long rows = (long)batch * height * width;
        for (int j = 0; j < _resnets.Length; j++)
        {
            FeatureMap skip = skips[skips.Length - 1 - j];
            ResizeKernels.ConcatChannels(hidden, hiddenChannels, skip.Data, skip.Channels, concat, (nint)rows);
            float* output = hidden == pingA ? pingB : pingA;
            _resnets[j].Forward(concat, batch, height, width, siluTemb, output, ws);
            _attentions?[j].Forward(output, batch, height, width, context, ws, repeatedHalves: false);
            hidden = output;
            hiddenChannels = OutChannels;
        }
        if (_upsampler != null)
        {
            float* output = hidden == pingA ? pingB : pingA;
            _upsampler.Forward(hidden, batch, height, width, output, outHeight, outWidth, ws);
            hidden = output;
        }
        return hidden;
    }

    public void Dispose()
    {
        foreach (ResnetBlock2D resnet in _resnets) resnet.Dispose();
        if (_attentions != null)
        {
            foreach (Transformer2DModel attention in _attentions) attention.Dispose();
        }
        _upsampler?.Dispose();
    }
}
