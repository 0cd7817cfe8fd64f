using Sd.Engine.Adapters;
using Sd.Engine.Modules;
using Sd.Engine.Tensors;
using Sd.Kernels.Elementwise;
using Sd.Loaders.Config;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Weights;

namespace Sd.Engine.UNet;

/// <summary>
/// The denoising UNet of SD 1.x / 2.x, built from its diffusers config: conv_in, down blocks (skip connections kept
/// in their own buffers), mid block, up blocks (concatenating the skips), GroupNorm+SiLU, conv_out. Activations are
/// NHWC inside; the run state (workspace, skip and ping-pong buffers) is planned once per (batch, height, width) and
/// reused by every call at that shape.
/// Reference: diffusers UNet2DConditionModel (unet_2d_condition.py, 0.27).
/// </summary>
public sealed unsafe class UNet2DConditionModel : IDisposable
{
    private readonly Conv2d _convIn;
    private readonly TimestepEmbedding _timeEmbedding;
    private readonly DownBlock[] _downBlocks;
    private readonly MidBlock _midBlock;
    private readonly UpBlock[] _upBlocks;
    private readonly GroupNormModule _convNormOut;
    private readonly Conv2d _convOut;
    private readonly int[] _imagePromptWidths;
    private RunState? _state;
    private readonly object _gate = new();
    private bool _disposed;

    public UNet2DConditionModel(UNetConfig config, WeightSet weights, UNetOptions? options = null)
    {
        Config = config;
        config.Validate(weights.Source); // a config built in code passes the checks a loaded one did
        RequireSupported(config, weights.Source);
        WinogradLevels = (options ?? new UNetOptions()).WinogradLevels(config, SixteenBit(weights));
        using var binder = new WeightBinder(weights);
        int[] channels = config.BlockOutChannels;
        int blocks = channels.Length;
        int tembChannels = channels[0] * 4;
        _convIn = new Conv2d(binder.Child("conv_in"), config.InChannels, channels[0], kernel: config.ConvInKernel);
        _timeEmbedding = new TimestepEmbedding(binder.Child("time_embedding"), channels[0], tembChannels,
            config.FlipSinToCos, config.FreqShift, config.TimeCondProjDim);

        _downBlocks = new DownBlock[blocks];
        var skipChannels = new List<int> { channels[0] };
        for (int i = 0; i < blocks; i++)
        {
            _downBlocks[i] = new DownBlock(binder.Child("down_blocks").Child(i), Level(i, down: true),
                i == 0 ? channels[0] : channels[i - 1], tembChannels, addDownsample: i < blocks - 1);
            for (int j = 0; j < _downBlocks[i].SkipCount; j++)
            {
                skipChannels.Add(channels[i]);
            }
        }
        _midBlock = new MidBlock(binder.Child("mid_block"), Level(blocks - 1, down: true) with { Layers = 1, HasAttention = true }, tembChannels);

        _upBlocks = new UpBlock[blocks];
        int prev = channels[blocks - 1];
        for (int i = 0; i < blocks; i++)
        {
            int layers = config.LayersPerBlock[blocks - 1 - i] + 1;
            var skips = new int[layers];
            for (int j = 0; j < layers; j++)
            {
                skips[j] = skipChannels[skipChannels.Count - 1 - j];
            }
            skipChannels.RemoveRange(skipChannels.Count - layers, layers);
            _upBlocks[i] = new UpBlock(binder.Child("up_blocks").Child(i), Level(blocks - 1 - i, down: false) with { Layers = layers },
                prev, skips, tembChannels, addUpsample: i < blocks - 1, upsampleWinograd: i < blocks - 1 && WinogradLevels[blocks - 2 - i]);
            prev = _upBlocks[i].OutChannels;
        }
        _convNormOut = new GroupNormModule(binder.Child("conv_norm_out"), config.NormNumGroups, channels[0], config.NormEps);
        _convOut = new Conv2d(binder.Child("conv_out"), channels[0], config.OutChannels, kernel: config.ConvOutKernel);
        binder.RequireAllUsed();
        _imagePromptWidths = NumberCrossAttentions();
    }

    /// <summary>
    /// Numbers the cross-attention layers in diffusers' attention-processor order (the down blocks, the up blocks, then
    /// the mid block: the order of the modules' registration), which IP-Adapter files follow; returns their widths.
    /// </summary>
    private int[] NumberCrossAttentions()
    {
        var layers = new List<Attention>();
        foreach (DownBlock block in _downBlocks)
        {
            foreach (Transformer2DModel transformer in block.Transformers) transformer.AddCrossAttentions(layers);
        }
        foreach (UpBlock block in _upBlocks)
        {
            foreach (Transformer2DModel transformer in block.Transformers) transformer.AddCrossAttentions(layers);
        }
        foreach (Transformer2DModel transformer in _midBlock.Transformers) transformer.AddCrossAttentions(layers);
        var widths = new int[layers.Count];
        for (int i = 0; i < layers.Count; i++)
        {
            layers[i].ImagePromptLayer = i;
            widths[i] = layers[i].Channels;
        }
        return widths;
    }

    /// <summary>
    /// The width of each cross-attention layer in diffusers' processor order: what an IP-Adapter must have been made
    /// for (<see cref="IpAdapterModel.LayerWidths"/>).
    /// </summary>
    public ReadOnlySpan<int> CrossAttentionWidths => _imagePromptWidths;

    public UNetConfig Config { get; }

    /// <summary>Whether repeated batch halves share their first layers (tests turn it off to compare).</summary>
    internal bool ShareRepeatedHalves { get; set; } = true;

    /// <summary>Whether the model's convolution weights are stored in 16 bits (conv_in tells for the file).</summary>
    internal static bool SixteenBit(WeightSet weights) =>
        weights.TryGet("conv_in.weight", out TensorEntry entry) && entry.DType is TensorDType.F16 or TensorDType.BF16;

    /// <summary>Resolution levels (0 = finest) whose 3x3 convolutions use stored Winograd weights.</summary>
    public IReadOnlyList<bool> WinogradLevels { get; }

    /// <summary>Latent pixels must be divisible by nothing: any size works (odd sizes as in diffusers).</summary>
    public int DownsampleCount => Config.BlockOutChannels.Length - 1;

    internal static void RequireSupported(UNetConfig config, string source)
    {
        string? unsupported =
            config.ClassEmbedType != null ? $"class_embed_type '{config.ClassEmbedType}'"
            : config.AdditionEmbedType != null ? $"addition_embed_type '{config.AdditionEmbedType}' (SDXL)"
            : config.TimeEmbeddingType != "positional" ? $"time_embedding_type '{config.TimeEmbeddingType}'"
            : config.ResnetTimeScaleShift != "default" ? $"resnet_time_scale_shift '{config.ResnetTimeScaleShift}'"
            : config.TimestepPostAct != null ? $"timestep_post_act '{config.TimestepPostAct}'"
            : config.TimeEmbeddingActFn != null ? $"time_embedding_act_fn '{config.TimeEmbeddingActFn}'"
            : config.ActFn != "silu" ? $"act_fn '{config.ActFn}'"
            : config.MidBlockType != "UNetMidBlock2DCrossAttn" ? $"mid_block_type '{config.MidBlockType}'"
            : config.CenterInputSample ? "center_input_sample"
            : Array.Exists(config.OnlyCrossAttention, b => b) ? "only_cross_attention"
            : Math.Abs(config.MidBlockScaleFactor - 1) > 0 ? "mid_block_scale_factor != 1"
            // Every SD UNet pads its stride-2 downsamplers by 1 on each side (0 would pad only right and bottom).
            : config.DownsamplePadding != 1 ? $"downsample_padding {config.DownsamplePadding}"
            // One text context feeds every block: its width is checked once, against block 0's.
            : Array.Exists(config.CrossAttentionDim, d => d != config.CrossAttentionDim[0]) ? $"per-block cross_attention_dim [{string.Join(", ", config.CrossAttentionDim)}]"
            : null;
        foreach (string type in config.DownBlockTypes)
        {
            if (type is not ("CrossAttnDownBlock2D" or "DownBlock2D")) unsupported ??= $"down block '{type}'";
        }
        foreach (string type in config.UpBlockTypes)
        {
            if (type is not ("CrossAttnUpBlock2D" or "UpBlock2D")) unsupported ??= $"up block '{type}'";
        }
        if (unsupported != null)
        {
            throw new NotSupportedException($"{source}: the UNet config uses {unsupported}, which Sd does not support (SD 1.x/2.x UNets only)");
        }
    }

    private UNetLevel Level(int block, bool down) => UNetLevel.Of(Config, block, down, WinogradLevels[block]);

    /// <summary>
    /// noise prediction [N, H, W, out] = UNet(sample [N, H, W, in], timesteps (one, or one per image),
    /// context [N, contextLength, cross_attention_dim]); all NHWC / row-major float32. Cancellation is checked
    /// between blocks. A context with the same values as the previous pass's (a sampling loop) reuses the
    /// cross-attention k|v projections that pass computed. A batch whose second half repeats its first (sample and
    /// timesteps: classifier-free guidance) computes the layers before the first cross-attention once for both
    /// halves (<see cref="RepeatedHalves"/>), with the same result. Calls from several threads run one at a time (they
    /// share the run buffers), and <see cref="Dispose"/> waits for a running call.
    /// </summary>
    public void Forward(Tensor sample, ReadOnlySpan<float> timesteps, Tensor context, Tensor output, CancellationToken cancellation = default) =>
        Forward(sample, timesteps, context, output, [], cancellation);

    /// <summary>
    /// <see cref="Forward(Tensor, ReadOnlySpan{float}, Tensor, Tensor, CancellationToken)"/> for an LCM-distilled UNet
    /// (<see cref="UNetConfig.TimeCondProjDim"/>): <paramref name="timestepCond"/> holds one
    /// <see cref="GuidanceScaleEmbedding"/> row for the batch or one per image (diffusers' timestep_cond), added to
    /// the timestep features through time_embedding.cond_proj. Empty: none, as diffusers runs such a UNet without it.
    /// </summary>
    public void Forward(Tensor sample, ReadOnlySpan<float> timesteps, Tensor context, Tensor output, ReadOnlySpan<float> timestepCond,
        CancellationToken cancellation = default) =>
        Forward(sample, timesteps, context, [], output, timestepCond, cancellation: cancellation);

    /// <summary>
    /// <see cref="Forward(Tensor, ReadOnlySpan{float}, Tensor, Tensor, ReadOnlySpan{float}, CancellationToken)"/> for
    /// contexts of different lengths in one batch (prompts of different numbers of chunks): image n attends only to
    /// the first <paramref name="contextLengths"/>[n] tokens of its context row, the rest being padding, exactly as if
    /// it ran alone with that shorter context (diffusers' encoder_attention_mask, as a prefix). Empty: every token.
    /// <paramref name="control"/>, when given, is added to the skip connections and the mid block's output once the
    /// down path has run (diffusers' down_block_additional_residuals and mid_block_additional_residual: ControlNets).
    /// <paramref name="adapter"/>, when given, adds feature i inside down block i (diffusers'
    /// down_intrablock_additional_residuals: T2I-Adapters), to every image.
    /// <paramref name="imagePrompts"/>, when given, are IP-Adapters' conditions that every cross-attention layer
    /// attends to beside the text (diffusers' added_cond_kwargs image_embeds), each made for this batch.
    /// </summary>
    public void Forward(Tensor sample, ReadOnlySpan<float> timesteps, Tensor context, ReadOnlySpan<int> contextLengths, Tensor output,
        ReadOnlySpan<float> timestepCond, ControlResiduals? control = null, AdapterFeatures? adapter = null,
        IReadOnlyList<ImagePrompt>? imagePrompts = null, CancellationToken cancellation = default)
    {
        lock (_gate)
        {
            // Checked before any run buffers are planned: a disposed module must not allocate them again.
            ObjectDisposedException.ThrowIf(_disposed, this);
            Run(sample, timesteps, context, contextLengths, output, timestepCond, control, adapter, imagePrompts, cancellation);
        }
    }

    private void Run(Tensor sample, ReadOnlySpan<float> timesteps, Tensor context, ReadOnlySpan<int> contextLengths, Tensor output,
        ReadOnlySpan<float> timestepCond, ControlResiduals? control, AdapterFeatures? adapter, IReadOnlyList<ImagePrompt>? imagePrompts,
        CancellationToken cancellation)
    {
        CheckInputs(sample, timesteps, context, output);
        CheckContextLengths(contextLengths, context);
        CheckCondition(timestepCond, sample.Dim(0));
        CheckImagePrompts(imagePrompts, sample.Dim(0));
        int batch = sample.Dim(0), height = sample.Dim(1), width = sample.Dim(2);
        int contextLength = context.Dim(1);
        RunState state = StateFor(batch, height, width, contextLength);
        FeatureMap midShape = state.Skips[^1]; // the last skip is at the mid block's resolution and width
        if (control != null && !control.Fits(batch, state.Skips, midShape))
        {
            throw new ArgumentException($"the control residuals ({control.Describe()}) do not fit this pass: batch {batch}, skips " +
                string.Join(", ", Array.ConvertAll(state.Skips, m => $"{m.Channels}x{m.Height}x{m.Width}")) + $", mid {midShape.Channels}x{midShape.Height}x{midShape.Width}", nameof(control));
        }
        CheckAdapter(adapter, state.Skips);
        Span<float> perImage = stackalloc float[batch];
        for (int n = 0; n < batch; n++)
        {
            perImage[n] = timesteps[timesteps.Length == 1 ? 0 : n];
        }
        _timeEmbedding.Forward(perImage, timestepCond, state.Sinusoid.Pointer, state.TembHidden.Pointer, state.Temb.Pointer);
        float* temb = state.Temb.Pointer;
        TextContext text = state.Text.For(context, contextLengths, imagePrompts);
        Workspace ws = state.Workspace;
        FeatureMap[] skips = state.Skips;

        // Classifier-free guidance's cat([latents] * 2): the layers before the first cross-attention run once.
        bool perImageCondition = batch > 1 && timestepCond.Length == batch * _timeEmbedding.ConditionDim;
        bool repeatedHalves = ShareRepeatedHalves && RepeatedHalves.In(sample, timesteps, perImageCondition ? timestepCond : []);
        _convIn.Forward(sample.Data, repeatedHalves ? batch / 2 : batch, height, width, skips[0].Data, ws);
        if (repeatedHalves)
        {
            RepeatedHalves.CopyFirstToSecond(skips[0], batch);
        }
        int next = 1;
        FeatureMap current = skips[0];
        for (int i = 0; i < _downBlocks.Length; i++)
        {
            DownBlock block = _downBlocks[i];
            cancellation.ThrowIfCancellationRequested();
            Span<FeatureMap> outputs = skips.AsSpan(next, block.SkipCount);
            float* feature = adapter != null && i < adapter.Count ? adapter[i].Data : null;
            block.Forward(current, batch, temb, text, outputs, ws, repeatedHalves && next == 1, feature);
            current = outputs[^1];
            next += block.SkipCount;
        }

        float* hidden = _midBlock.Forward(current, batch, temb, text, state.PingA.Pointer, state.PingB.Pointer, ws);
        int hiddenChannels = current.Channels;
        int h = current.Height, w = current.Width;
        // After the mid block, which reads the last skip as the down path left it (diffusers adds them after it too).
        control?.AddTo(skips, hidden);
        foreach (UpBlock block in _upBlocks)
        {
            cancellation.ThrowIfCancellationRequested();
            ReadOnlySpan<FeatureMap> consumed = skips.AsSpan(next - block.SkipCount, block.SkipCount);
            next -= block.SkipCount;
            // Up-sample to the next skip's size (diffusers' upsample_size), which undoes odd-size rounding.
            int outH = next > 0 ? skips[next - 1].Height : h, outW = next > 0 ? skips[next - 1].Width : w;
            hidden = block.Forward(hidden, hiddenChannels, batch, h, w, consumed, temb, text,
                state.PingA.Pointer, state.PingB.Pointer, outH, outW, ws);
            hiddenChannels = block.OutChannels;
            (h, w) = (outH, outW);
        }
        float* normed = ws[Scratch.ResnetNorm];
        _convNormOut.Forward(hidden, normed, batch, height * width, Activation.Silu);
        _convOut.Forward(normed, batch, height, width, output.Data, ws);
        state.Text.ProjectionsComplete();
        output.ThrowIfNotFinite("the UNet produced NaN or infinity (diverged weights or inputs)");
    }

    /// <summary>Each IP-Adapter condition is made for this batch and these cross-attention layers.</summary>
    private void CheckImagePrompts(IReadOnlyList<ImagePrompt>? prompts, int batch)
    {
        for (int i = 0; i < (prompts?.Count ?? 0); i++)
        {
            ImagePrompt prompt = prompts![i] ?? throw new ArgumentException($"image prompt {i} is null", nameof(prompts));
            if (prompt.Batch != batch)
            {
                throw new ArgumentException($"image prompt {i} was made for a batch of {prompt.Batch}, this pass has {batch}", nameof(prompts));
            }
            if (ImagePrompt.LayerMisfit(prompt.LayerWidths, _imagePromptWidths) is { } misfit)
            {
                throw new ArgumentException($"image prompt {i} does not fit this UNet: {misfit} (an IP-Adapter for another model)", nameof(prompts));
            }
        }
    }

    /// <summary>Each adapter feature is [1, h, w, c] of the output its down block adds it to; there are at most as many as blocks.</summary>
    private void CheckAdapter(AdapterFeatures? adapter, FeatureMap[] skips)
    {
        if (adapter is null)
        {
            return;
        }
        if (adapter.Count > _downBlocks.Length)
        {
            throw new ArgumentException($"{adapter.Count} adapter features for {_downBlocks.Length} down blocks", nameof(adapter));
        }
        int next = 1;
        for (int i = 0; i < adapter.Count; i++)
        {
            FeatureMap target = _downBlocks[i].AdapterTarget(skips.AsSpan(next, _downBlocks[i].SkipCount));
            next += _downBlocks[i].SkipCount;
            Tensor feature = adapter[i];
            if (feature.Rank != 4 || feature.Dim(0) != 1 || feature.Dim(1) != target.Height || feature.Dim(2) != target.Width || feature.Dim(3) != target.Channels)
            {
                throw new ArgumentException($"adapter feature {i} is {feature}; down block {i} adds a [1, {target.Height}, {target.Width}, {target.Channels}] one " +
                    "(an adapter for another model, or a picture of another size)", nameof(adapter));
            }
        }
    }

    private void CheckInputs(Tensor sample, ReadOnlySpan<float> timesteps, Tensor context, Tensor output)
    {
        if (sample.Rank != 4 || sample.Dim(3) != Config.InChannels || sample.Length == 0)
        {
            throw new ArgumentException($"sample must be [N, H, W, {Config.InChannels}] (NHWC, none of them 0), got {sample}", nameof(sample));
        }
        int batch = sample.Dim(0);
        if (context.Rank != 3 || context.Dim(0) != batch || context.Dim(2) != Config.CrossAttentionDim[0] || context.Dim(1) == 0)
        {
            throw new ArgumentException($"context must be [{batch}, tokens, {Config.CrossAttentionDim[0]}] with at least one token, got {context}", nameof(context));
        }
        if (timesteps.Length != 1 && timesteps.Length != batch)
        {
            throw new ArgumentException(batch == 1
                ? $"a batch of 1 takes 1 timestep, got {timesteps.Length}"
                : $"a batch of {batch} takes 1 timestep (shared) or {batch} (one per sample), got {timesteps.Length}", nameof(timesteps));
        }
        if (output.Rank != 4 || output.Dim(0) != batch || output.Dim(1) != sample.Dim(1) || output.Dim(2) != sample.Dim(2) || output.Dim(3) != Config.OutChannels)
        {
            throw new ArgumentException($"output must be [{batch}, {sample.Dim(1)}, {sample.Dim(2)}, {Config.OutChannels}], got {output}", nameof(output));
        }
        foreach (float t in timesteps)
        {
            if (!float.IsFinite(t)) throw new ArgumentException($"timestep {t} is not finite", nameof(timesteps));
        }
        sample.ThrowIfNotFinite("sample contains NaN or infinity");
        context.ThrowIfNotFinite("context contains NaN or infinity");
    }

    internal static void CheckContextLengths(ReadOnlySpan<int> lengths, Tensor context)
    {
        if (lengths.IsEmpty)
        {
            return;
        }
        if (lengths.Length != context.Dim(0))
        {
            throw new ArgumentException($"context lengths must be one per image ({context.Dim(0)}), got {lengths.Length}", "contextLengths");
        }
        foreach (int length in lengths)
        {
            if (length < 1 || length > context.Dim(1))
            {
                throw new ArgumentException($"context length {length} is outside [1, {context.Dim(1)}] (the context's tokens)", "contextLengths");
            }
        }
    }

    private void CheckCondition(ReadOnlySpan<float> timestepCond, int batch)
    {
        if (timestepCond.IsEmpty)
        {
            return;
        }
        if (_timeEmbedding.ConditionDim is not { } dim)
        {
            throw new ArgumentException("this UNet takes no timestep condition: only LCM-distilled UNets (time_cond_proj_dim in their config) do", nameof(timestepCond));
        }
        if (timestepCond.Length != dim && timestepCond.Length != (long)batch * dim)
        {
            throw new ArgumentException($"the timestep condition must be one row of {dim} values (time_cond_proj_dim) or one per image ({batch} x {dim}), got {timestepCond.Length}", nameof(timestepCond));
        }
        if (!Tensor.AllFinite(timestepCond))
        {
            throw new ArgumentException("the timestep condition contains NaN or infinity", nameof(timestepCond));
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

    private RunState StateFor(int batch, int height, int width, int contextLength)
    {
        if (_state is { } s && s.Batch == batch && s.Height == height && s.Width == width && s.ContextLength == contextLength)
        {
            return s;
        }
        _state?.Dispose();
        _state = null;
        _state = new RunState(this, batch, height, width, contextLength);
        return _state;
    }

    /// <summary>Buffers planned for one (batch, height, width, context length).</summary>
    private sealed class RunState : IDisposable
    {
        private readonly List<NativeBlock> _skipBlocks = new();

        public RunState(UNet2DConditionModel model, int batch, int height, int width, int contextLength)
        {
            Batch = batch;
            Height = height;
            Width = width;
            ContextLength = contextLength;
            UNetConfig config = model.Config;
            int[] channels = config.BlockOutChannels;
            Workspace = new Workspace();
            int temb = channels[0] * 4;
            Sinusoid = new NativeBlock((long)batch * channels[0]);
            TembHidden = new NativeBlock((long)batch * temb);
            Temb = new NativeBlock((long)batch * temb);

            var skips = new List<FeatureMap>();
            model._convIn.Plan(Workspace, batch, height, width);
            skips.Add(Allocate(channels[0], height, width));
            int h = height, w = width;
            long pingFloats = 0;
            for (int i = 0; i < model._downBlocks.Length; i++)
            {
                DownBlock block = model._downBlocks[i];
                block.Plan(Workspace, batch, h, w, contextLength);
                int layers = block.SkipCount - (i < model._downBlocks.Length - 1 ? 1 : 0);
                for (int j = 0; j < layers; j++) skips.Add(Allocate(channels[i], h, w));
                if (i < model._downBlocks.Length - 1)
                {
                    (h, w) = ((h + 1) / 2, (w + 1) / 2);
                    skips.Add(Allocate(channels[i], h, w));
                }
            }
            model._midBlock.Plan(Workspace, batch, h, w, contextLength);
            pingFloats = (long)batch * h * w * channels[^1];
            int next = skips.Count;
            foreach (UpBlock block in model._upBlocks)
            {
                next -= block.SkipCount;
                int outH = next > 0 ? skips[next - 1].Height : h, outW = next > 0 ? skips[next - 1].Width : w;
                block.Plan(Workspace, batch, h, w, contextLength, outH, outW);
                pingFloats = Math.Max(pingFloats, (long)batch * Math.Max(h * w, outH * outW) * block.OutChannels);
                (h, w) = (outH, outW);
            }
            model._convOut.Plan(Workspace, batch, height, width);
            Workspace.Need(Scratch.ResnetNorm, (long)batch * height * width * channels[0]);
            PingA = new NativeBlock(pingFloats);
            PingB = new NativeBlock(pingFloats);
            Text = new TextContextCache(batch, contextLength, config.CrossAttentionDim[0]);
            Workspace.Allocate();
            Skips = skips.ToArray();

            FeatureMap Allocate(int c, int hh, int ww)
            {
                var block = new NativeBlock((long)batch * hh * ww * c, zero: false);
                _skipBlocks.Add(block);
                return new FeatureMap { Data = block.Pointer, Channels = c, Height = hh, Width = ww };
            }
        }

        public int Batch { get; }
        public int Height { get; }
        public int Width { get; }
        public int ContextLength { get; }
        public Workspace Workspace { get; }
        public FeatureMap[] Skips { get; }
        public NativeBlock PingA { get; }
        public NativeBlock PingB { get; }
        public NativeBlock Sinusoid { get; }
        public NativeBlock TembHidden { get; }
        public NativeBlock Temb { get; }

        /// <summary>The text context kept between passes at this shape.</summary>
        public TextContextCache Text { get; }

        /// <summary>Activation memory of this run shape, in bytes.</summary>
        public long Bytes
        {
            get
            {
                long total = Workspace.TotalBytes + (PingA.Length + PingB.Length) * sizeof(float) + Text.Bytes;
                foreach (NativeBlock block in _skipBlocks) total += block.Length * sizeof(float);
                return total;
            }
        }

        public void Dispose()
        {
            Workspace.Dispose();
            foreach (NativeBlock block in _skipBlocks) block.Dispose();
            PingA.Dispose();
            PingB.Dispose();
            Text.Dispose();
            Sinusoid.Dispose();
            TembHidden.Dispose();
            Temb.Dispose();
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
            foreach (DownBlock block in _downBlocks) block.Dispose();
            _midBlock.Dispose();
            foreach (UpBlock block in _upBlocks) block.Dispose();
            _convNormOut.Dispose();
            _convOut.Dispose();
        }
    }
}
