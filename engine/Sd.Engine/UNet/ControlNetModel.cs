using Sd.Engine.Modules;
using Sd.Engine.Tensors;
using Sd.Kernels.Elementwise;
using Sd.Loaders.Config;
using Sd.Loaders.Weights;

namespace Sd.Engine.UNet;

/// <summary>
/// A ControlNet: a copy of the UNet's encoder (conv_in, time embedding, down blocks, mid block) whose input is the
/// latents plus an embedding of a conditioning picture (edges, depth, pose...), and a 1x1 convolution per skip
/// connection and for the mid block, whose outputs, scaled, the UNet adds to its own (<see cref="ControlResiduals"/>).
/// Activations are NHWC; the run state is planned once per shape, and the conditioning embedding, which depends on the
/// picture alone, is computed once and kept while the same picture comes back (a sampling loop).
/// Reference: diffusers ControlNetModel (controlnet.py, 0.27).
/// </summary>
public sealed unsafe class ControlNetModel : IDisposable
{
    private readonly Conv2d _convIn;
    private readonly TimestepEmbedding _timeEmbedding;
    private readonly ControlNetConditioningEmbedding _condEmbedding;
    private readonly DownBlock[] _downBlocks;
    private readonly MidBlock _midBlock;
    private readonly Conv2d[] _controlnetDownBlocks;
    private readonly Conv2d _controlnetMidBlock;
    private RunState? _state;
    private readonly object _gate = new();
    private bool _disposed;

    public ControlNetModel(ControlNetConfig config, WeightSet weights, UNetOptions? options = null)
    {
        Config = config;
        config.Validate(weights.Source);
        UNetConfig unet = config.Encoder;
        UNet2DConditionModel.RequireSupported(unet, weights.Source);
        IReadOnlyList<bool> winograd = (options ?? new UNetOptions()).WinogradLevels(unet, UNet2DConditionModel.SixteenBit(weights));
        using var binder = new WeightBinder(weights);
        int[] channels = unet.BlockOutChannels;
        int tembChannels = channels[0] * 4;
        _convIn = new Conv2d(binder.Child("conv_in"), unet.InChannels, channels[0], kernel: unet.ConvInKernel);
        _timeEmbedding = new TimestepEmbedding(binder.Child("time_embedding"), channels[0], tembChannels,
            unet.FlipSinToCos, unet.FreqShift, unet.TimeCondProjDim);
        _condEmbedding = new ControlNetConditioningEmbedding(binder.Child("controlnet_cond_embedding"), config.ConditioningChannels,
            config.ConditioningEmbeddingOutChannels, channels[0]);
        _downBlocks = new DownBlock[channels.Length];
        var skipChannels = new List<int> { channels[0] };
        for (int i = 0; i < channels.Length; i++)
        {
            _downBlocks[i] = new DownBlock(binder.Child("down_blocks").Child(i), UNetLevel.Of(unet, i, down: true, winograd[i]),
                i == 0 ? channels[0] : channels[i - 1], tembChannels, addDownsample: i < channels.Length - 1);
            for (int j = 0; j < _downBlocks[i].SkipCount; j++) skipChannels.Add(channels[i]);
        }
        _midBlock = new MidBlock(binder.Child("mid_block"),
            UNetLevel.Of(unet, channels.Length - 1, down: true, winograd[^1]) with { Layers = 1, HasAttention = true }, tembChannels);
        _controlnetDownBlocks = new Conv2d[skipChannels.Count];
        for (int i = 0; i < skipChannels.Count; i++)
        {
            _controlnetDownBlocks[i] = new Conv2d(binder.Child("controlnet_down_blocks").Child(i), skipChannels[i], skipChannels[i], kernel: 1);
        }
        _controlnetMidBlock = new Conv2d(binder.Child("controlnet_mid_block"), channels[^1], channels[^1], kernel: 1);
        binder.RequireAllUsed();
    }

    public ControlNetConfig Config { get; }

    /// <summary>Residuals for a UNet pass of <paramref name="batch"/> latents of <paramref name="height"/> x <paramref name="width"/>, all 0.</summary>
    public ControlResiduals CreateResiduals(int batch, int height, int width)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        return new ControlResiduals(batch, SkipShapes(height, width));
    }

    /// <summary>Channels and size of each skip connection for latents of <paramref name="height"/> x <paramref name="width"/>, then the mid block's.</summary>
    private (int Channels, int Height, int Width)[] SkipShapes(int height, int width)
    {
        int[] channels = Config.Encoder.BlockOutChannels;
        var shapes = new List<(int, int, int)> { (channels[0], height, width) };
        for (int i = 0; i < channels.Length; i++)
        {
            for (int j = 0; j < Config.Encoder.LayersPerBlock[i]; j++) shapes.Add((channels[i], height, width));
            if (i < channels.Length - 1)
            {
                (height, width) = ((height + 1) / 2, (width + 1) / 2);
                shapes.Add((channels[i], height, width));
            }
        }
        shapes.Add((channels[^1], height, width));
        return shapes.ToArray();
    }

    /// <summary>
    /// Adds this ControlNet's residuals for latents <paramref name="sample"/> [N, h, w, in] at
    /// <paramref name="timesteps"/> (one, or one per image) under <paramref name="context"/> [N, tokens, dim]
    /// (<paramref name="contextLengths"/> as in <see cref="UNet2DConditionModel.Forward(Tensor, ReadOnlySpan{float}, Tensor, ReadOnlySpan{int}, Tensor, ReadOnlySpan{float}, ControlResiduals?, CancellationToken)"/>)
    /// and the conditioning <paramref name="image"/> [1 or N, h x f, w x f, channels] (f =
    /// <see cref="ControlNetConfig.ConditioningScaleFactor"/>; values in [0, 1], RGB, as diffusers' control image
    /// processor gives them), each times <paramref name="scale"/> and the <paramref name="weighting"/>'s weight of its
    /// depth, to images <paramref name="firstImage"/> to <paramref name="firstImage"/> + N of <paramref name="into"/>.
    /// </summary>
    public void Forward(Tensor sample, ReadOnlySpan<float> timesteps, Tensor context, ReadOnlySpan<int> contextLengths, Tensor image,
        float scale, ResidualWeighting weighting, ControlResiduals into, int firstImage = 0, CancellationToken cancellation = default)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            CheckInputs(sample, timesteps, context, contextLengths, image, scale, into, firstImage);
            if (!Enum.IsDefined(weighting))
            {
                throw new ArgumentOutOfRangeException(nameof(weighting), weighting, "not a residual weighting");
            }
            Run(sample, timesteps, context, contextLengths, image, scale, weighting, into, firstImage, cancellation);
        }
    }

    private void CheckInputs(Tensor sample, ReadOnlySpan<float> timesteps, Tensor context, ReadOnlySpan<int> contextLengths, Tensor image,
        float scale, ControlResiduals into, int firstImage)
    {
        UNetConfig unet = Config.Encoder;
        if (sample.Rank != 4 || sample.Dim(3) != unet.InChannels || sample.Length == 0)
        {
            throw new ArgumentException($"sample must be [N, H, W, {unet.InChannels}] (NHWC, none of them 0), got {sample}", nameof(sample));
        }
        int batch = sample.Dim(0), factor = Config.ConditioningScaleFactor;
        if (context.Rank != 3 || context.Dim(0) != batch || context.Dim(2) != unet.CrossAttentionDim[0] || context.Dim(1) == 0)
        {
            throw new ArgumentException($"context must be [{batch}, tokens, {unet.CrossAttentionDim[0]}] with at least one token, got {context}", nameof(context));
        }
        if (timesteps.Length != 1 && timesteps.Length != batch)
        {
            throw new ArgumentException($"a batch of {batch} takes 1 timestep or {batch}, got {timesteps.Length}", nameof(timesteps));
        }
        foreach (float t in timesteps)
        {
            if (!float.IsFinite(t)) throw new ArgumentException($"timestep {t} is not finite", nameof(timesteps));
        }
        UNet2DConditionModel.CheckContextLengths(contextLengths, context);
        long height = (long)sample.Dim(1) * factor, width = (long)sample.Dim(2) * factor;
        if (image.Rank != 4 || (image.Dim(0) != 1 && image.Dim(0) != batch) || image.Dim(1) != height || image.Dim(2) != width
            || image.Dim(3) != Config.ConditioningChannels)
        {
            throw new ArgumentException($"the conditioning image must be [1 or {batch}, {height}, {width}, {Config.ConditioningChannels}] " +
                $"(NHWC, {factor} times the latents' size), got {image}", nameof(image));
        }
        if (!float.IsFinite(scale))
        {
            throw new ArgumentException($"the conditioning scale {scale} is not finite", nameof(scale));
        }
        // The first skip (conv_in's output) has the latents' size; the rest follow from it (CreateResiduals).
        if (firstImage < 0 || firstImage + batch > into.Batch || into.SkipCount != _controlnetDownBlocks.Length
            || into[0].Channels != unet.BlockOutChannels[0] || into[0].Height != sample.Dim(1) || into[0].Width != sample.Dim(2))
        {
            throw new ArgumentException($"residuals of {into.Describe()} cannot take images {firstImage} to {firstImage + batch - 1} " +
                $"of {sample}: make them with CreateResiduals for the UNet pass", nameof(into));
        }
        sample.ThrowIfNotFinite("sample contains NaN or infinity");
        context.ThrowIfNotFinite("context contains NaN or infinity");
        image.ThrowIfNotFinite("the conditioning image contains NaN or infinity");
    }

    private void Run(Tensor sample, ReadOnlySpan<float> timesteps, Tensor context, ReadOnlySpan<int> contextLengths, Tensor image,
        float scale, ResidualWeighting weighting, ControlResiduals into, int firstImage, CancellationToken cancellation)
    {
        int batch = sample.Dim(0), height = sample.Dim(1), width = sample.Dim(2);
        RunState state = StateFor(batch, height, width, context.Dim(1), image.Dim(0));
        Workspace ws = state.Workspace;
        // Two kept embeddings: two units that share this model with two pictures each keep theirs from step to step.
        int slot = state.EmbeddedImages[0].Matches(image.Span) ? 0 : state.EmbeddedImages[1].Matches(image.Span) ? 1 : -1;
        if (slot < 0)
        {
            slot = 1 - state.LastSlot; // the one the other picture did not use last
            state.EmbeddedImages[slot].Holds(image.Span); // saves the picture; complete once embedded
            float* pixels = image.Data;
            if (Config.BgrConditioning)
            {
                ReverseChannels(image, state.Image.Pointer);
                pixels = state.Image.Pointer;
            }
            _condEmbedding.Forward(pixels, image.Dim(0), image.Dim(1), image.Dim(2), state.Embeddings[slot].Pointer, ws);
            state.EmbeddedImages[slot].Complete();
        }
        state.LastSlot = slot;
        NativeBlock embeddings = state.Embeddings[slot];
        Span<float> perImage = stackalloc float[batch];
        for (int n = 0; n < batch; n++) perImage[n] = timesteps[timesteps.Length == 1 ? 0 : n];
        _timeEmbedding.Forward(perImage, [], state.Sinusoid.Pointer, state.TembHidden.Pointer, state.Temb.Pointer);
        TextContext text = state.Text.For(context, contextLengths);
        FeatureMap[] skips = state.Skips;

        // sample = conv_in(sample) + embedding: one embedding per image, or one for the whole batch.
        _convIn.Forward(sample.Data, batch, height, width, skips[0].Data, ws);
        long perImageFloats = (long)height * width * skips[0].Channels;
        for (int n = 0; n < batch; n++)
        {
            float* embedding = embeddings.Pointer + (image.Dim(0) == 1 ? 0 : n * perImageFloats);
            Pointwise.Add(skips[0].Data + n * perImageFloats, embedding, skips[0].Data + n * perImageFloats, (nint)perImageFloats);
        }
        int next = 1;
        FeatureMap current = skips[0];
        foreach (DownBlock block in _downBlocks)
        {
            cancellation.ThrowIfCancellationRequested();
            Span<FeatureMap> outputs = skips.AsSpan(next, block.SkipCount);
            block.Forward(current, batch, state.Temb.Pointer, text, outputs, ws, repeatedHalves: false);
            current = outputs[^1];
            next += block.SkipCount;
        }
        float* mid = _midBlock.Forward(current, batch, state.Temb.Pointer, text, state.PingA.Pointer, state.PingB.Pointer, ws);
        state.Text.ProjectionsComplete();

        int count = _controlnetDownBlocks.Length;
        for (int i = 0; i <= count; i++)
        {
            FeatureMap input = i < count ? skips[i] : current with { Data = mid };
            Conv2d conv = i < count ? _controlnetDownBlocks[i] : _controlnetMidBlock;
            float* output = ws[Scratch.ControlNetOutput];
            conv.Forward(input.Data, batch, input.Height, input.Width, output, ws);
            // A pooled ControlNet (always in guess mode in diffusers' pipeline) keeps the plain scale there.
            ResidualWeighting own = weighting == ResidualWeighting.GuessMode && Config.GlobalPoolConditions ? ResidualWeighting.Uniform : weighting;
            AddScaled(output, batch, input, ResidualScale(scale, own, i, count), into[i], firstImage);
        }
    }

    /// <summary>
    /// The scale of residual <paramref name="index"/> of <paramref name="count"/> skips (then the mid block's, index
    /// <paramref name="count"/>): <paramref name="scale"/>; in guess mode torch.logspace(-1, 0, count + 1)[index] x
    /// scale in float32; soft, A1111's weight x 0.825 ** float(12 - i) in double, then float32, whatever the count (SD's 12
    /// skips and mid block get 0.0994 to 1; A1111 cuts the same 13 weights short for shorter ControlNets).
    /// </summary>
    internal static float ResidualScale(float scale, ResidualWeighting weighting, int index, int count)
    {
        switch (weighting)
        {
            case ResidualWeighting.GuessMode:
                // torch.logspace(start, end, steps) on the CPU: step (end - start) / (steps - 1) and the powers in double,
                // base^(start + step i) in the first half, base^(end - step (steps - 1 - i)) in the second, then float32.
                double step = 1.0 / count;
                double exponent = index < (count + 1) / 2 ? -1.0 + step * index : 0.0 - step * (count - index);
                return (float)Math.Pow(10.0, exponent) * scale;
            case ResidualWeighting.Soft:
                return (float)(scale * Math.Pow(0.825, 12 - index)); // 12: SD's last skip before the mid block
            case ResidualWeighting.Uniform:
                return scale;
            default:
                throw new ArgumentOutOfRangeException(nameof(weighting), weighting, "not a residual weighting");
        }
    }

    /// <summary>
    /// residual[firstImage + n] += output[n] x scale; with global pooling the scaled output's mean over the picture is
    /// added at every pixel (diffusers takes torch.mean over height and width after scaling).
    /// </summary>
    private void AddScaled(float* output, int batch, FeatureMap shape, float scale, FeatureMap residual, int firstImage)
    {
        int pixels = shape.Height * shape.Width, channels = shape.Channels;
        float* target = residual.Data + (long)firstImage * pixels * channels;
        if (!Config.GlobalPoolConditions)
        {
            FeatureMapKernels.ScaledAdd(output, channels, scale, target, channels, target, channels, (nint)batch * pixels, channels);
            return;
        }
        Span<float> mean = stackalloc float[channels];
        for (int n = 0; n < batch; n++)
        {
            float* image = output + (long)n * pixels * channels;
            for (int c = 0; c < channels; c++)
            {
                double sum = 0;
                for (int p = 0; p < pixels; p++) sum += image[(long)p * channels + c] * scale;
                mean[c] = (float)(sum / pixels);
            }
            float* into = target + (long)n * pixels * channels;
            for (int p = 0; p < pixels; p++)
            {
                for (int c = 0; c < channels; c++) into[(long)p * channels + c] += mean[c];
            }
        }
    }

    /// <summary>RGB to BGR (controlnet_conditioning_channel_order "bgr": diffusers flips the channels).</summary>
    private static void ReverseChannels(Tensor image, float* into)
    {
        int channels = image.Dim(3);
        long pixels = image.Length / channels;
        float* from = image.Data;
        for (long p = 0; p < pixels; p++)
        {
            for (int c = 0; c < channels; c++) into[p * channels + c] = from[p * channels + channels - 1 - c];
        }
    }

    /// <summary>Activation memory planned for the last run shape, in bytes (0 when none is held).</summary>
    public long RunBufferBytes => _state?.Bytes ?? 0;

    /// <summary>Frees the activation buffers of the last run shape (the next Forward plans them again).</summary>
    public void ReleaseRunBuffers()
    {
        lock (_gate)
        {
            _state?.Dispose();
            _state = null;
        }
    }

    private RunState StateFor(int batch, int height, int width, int contextLength, int imageBatch)
    {
        if (_state is { } s && s.Batch == batch && s.Height == height && s.Width == width && s.ContextLength == contextLength && s.ImageBatch == imageBatch)
        {
            return s;
        }
        _state?.Dispose();
        _state = null;
        _state = new RunState(this, batch, height, width, contextLength, imageBatch);
        return _state;
    }

    /// <summary>Buffers planned for one (batch, height, width, context length, image batch).</summary>
    private sealed class RunState : IDisposable
    {
        private readonly List<NativeBlock> _blocks = new();

        public RunState(ControlNetModel model, int batch, int height, int width, int contextLength, int imageBatch)
        {
            Batch = batch;
            Height = height;
            Width = width;
            ContextLength = contextLength;
            ImageBatch = imageBatch;
            UNetConfig config = model.Config.Encoder;
            int[] channels = config.BlockOutChannels;
            int factor = model.Config.ConditioningScaleFactor;
            try
            {
                Workspace = new Workspace();
                Sinusoid = Block((long)batch * channels[0]);
                TembHidden = Block((long)batch * channels[0] * 4);
                Temb = Block((long)batch * channels[0] * 4);
                Text = new TextContextCache(batch, contextLength, config.CrossAttentionDim[0]);
                Embeddings = [Block((long)imageBatch * height * width * channels[0]), Block((long)imageBatch * height * width * channels[0])];
                long imageFloats = (long)imageBatch * height * factor * width * factor * model.Config.ConditioningChannels;
                EmbeddedImages = [new KeptInput(imageFloats), new KeptInput(imageFloats)];
                Image = Block(model.Config.BgrConditioning ? imageFloats : 0);
                model._condEmbedding.Plan(Workspace, imageBatch, height * factor, width * factor);
                model._convIn.Plan(Workspace, batch, height, width);
                (int Channels, int Height, int Width)[] shapes = model.SkipShapes(height, width);
                Skips = new FeatureMap[shapes.Length - 1];
                long largest = 0;
                for (int i = 0; i < Skips.Length; i++)
                {
                    (int c, int h, int w) = shapes[i];
                    Skips[i] = new FeatureMap { Data = Block((long)batch * h * w * c).Pointer, Channels = c, Height = h, Width = w };
                    largest = Math.Max(largest, (long)batch * h * w * c);
                }
                int hh = height, ww = width;
                for (int i = 0; i < model._downBlocks.Length; i++)
                {
                    model._downBlocks[i].Plan(Workspace, batch, hh, ww, contextLength);
                    if (i < model._downBlocks.Length - 1) (hh, ww) = ((hh + 1) / 2, (ww + 1) / 2);
                }
                model._midBlock.Plan(Workspace, batch, hh, ww, contextLength);
                PingA = Block((long)batch * hh * ww * channels[^1]);
                PingB = Block((long)batch * hh * ww * channels[^1]);
                Workspace.Need(Scratch.ControlNetOutput, largest);
                Workspace.Allocate();
            }
            catch
            {
                Dispose();
                throw;
            }
        }

        public int Batch { get; }
        public int Height { get; }
        public int Width { get; }
        public int ContextLength { get; }
        public int ImageBatch { get; }
        public Workspace Workspace { get; } = null!;
        public FeatureMap[] Skips { get; } = [];
        public NativeBlock PingA { get; } = null!;
        public NativeBlock PingB { get; } = null!;
        public NativeBlock Sinusoid { get; } = null!;
        public NativeBlock TembHidden { get; } = null!;
        public NativeBlock Temb { get; } = null!;
        public TextContextCache Text { get; } = null!;

        /// <summary>Two kept conditioning embeddings, of <see cref="EmbeddedImages"/>' pictures: [image batch, h, w, block 0's channels].</summary>
        public NativeBlock[] Embeddings { get; } = null!;

        /// <summary>The conditioning pictures the embeddings are of.</summary>
        public KeptInput[] EmbeddedImages { get; } = null!;

        /// <summary>The embedding slot the last call used (the other is replaced by a new picture).</summary>
        public int LastSlot { get; set; } = 1;

        /// <summary>The image in BGR order, for a ControlNet that takes it so (else empty).</summary>
        public NativeBlock Image { get; } = null!;

        public long Bytes
        {
            get
            {
                long total = Workspace.TotalBytes + Text.Bytes + EmbeddedImages[0].Bytes + EmbeddedImages[1].Bytes;
                foreach (NativeBlock block in _blocks) total += block.Length * sizeof(float);
                return total;
            }
        }

        private NativeBlock Block(long floats)
        {
            var block = new NativeBlock(floats, zero: false);
            _blocks.Add(block);
            return block;
        }

        public void Dispose()
        {
            Workspace?.Dispose();
            Text?.Dispose();
            if (EmbeddedImages is not null)
            {
                foreach (KeptInput? kept in EmbeddedImages) kept?.Dispose();
            }
            foreach (NativeBlock block in _blocks) block.Dispose();
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            _state?.Dispose();
            _state = null;
            _convIn.Dispose();
            _timeEmbedding.Dispose();
            _condEmbedding.Dispose();
            foreach (DownBlock block in _downBlocks) block.Dispose();
            _midBlock.Dispose();
            foreach (Conv2d conv in _controlnetDownBlocks) conv.Dispose();
            _controlnetMidBlock.Dispose();
        }
    }
}
