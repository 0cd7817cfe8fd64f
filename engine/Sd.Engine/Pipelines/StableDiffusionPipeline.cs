using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Sd.Engine.Adapters;
using Sd.Engine.Schedulers;
using Sd.Engine.Tensors;
using Sd.Engine.Text;
using Sd.Engine.UNet;
using Sd.Engine.Vae;
using Sd.Kernels.Layout;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Config;
using Sd.Loaders.Weights;

namespace Sd.Engine.Pipelines;

/// <summary>
/// Text-to-image Stable Diffusion: CLIP text encoder, UNet with classifier-free guidance (uncond and cond batched in
/// one call), a diffusers scheduler, VAE decode. One loaded pipeline serves sequential requests (calls are
/// serialized); Dispose frees the native weights. <see cref="PipelineOptions.Memory"/> chooses between keeping the
/// components resident and loading one at a time. With an init image it runs img2img, with a mask too inpainting
/// (StableDiffusionPipeline.Inpaint.cs).
/// Reference: diffusers StableDiffusionPipeline / Img2ImgPipeline / InpaintPipeline.__call__ (0.27).
/// </summary>
public sealed unsafe partial class StableDiffusionPipeline : IDisposable
{
    private readonly ModelSource _source;
    private readonly PipelineOptions _options;
    private readonly ClipTokenizer _tokenizer;
    private readonly UNetConfig _unetConfig;
    private readonly VaeConfig _vaeConfig;
    private readonly ComponentSlot<ClipTextModel> _textEncoder;
    private readonly ComponentSlot<UNet2DConditionModel> _unet;
    private readonly ComponentSlot<AutoencoderKL> _vae;
    private readonly SchedulerConfig _schedulerConfig;
    private readonly PipelineLoras _loras;
    private readonly object _gate = new();
    private readonly ILogger _logger;

    /// <summary>Cancelled by <see cref="Dispose"/>, so that a generation running on another thread stops first.</summary>
    private readonly CancellationTokenSource _disposing = new();
    private bool _disposed;

    /// <summary>Whether a call is running: set inside the lock, so only that call's own thread can see it true there.</summary>
    private bool _running;

    private StableDiffusionPipeline(ModelSource source, ClipTokenizer tokenizer, PipelineOptions options, PipelineLoras loras, ILogger logger)
    {
        _source = source;
        _loras = loras;
        _options = options;
        _logger = logger;
        ClipTextConfig textConfig = Require(source.TextEncoder, "text encoder");
        AddedTokens added = AddedTokens.Read(options.Embeddings, textConfig);
        _tokenizer = tokenizer.WithAddedTokens(added);
        EmbeddingTokens = added.Tokens;
        foreach (AddedToken token in added.Tokens)
        {
            _logger.LogInformation("Textual inversion '{Token}' ({Count} vectors) from {Path}", token.Content, token.Count, token.Source);
        }
        _unetConfig = Require(source.UNet, "UNet");
        _vaeConfig = Require(source.Vae, "VAE");
        _schedulerConfig = source.Scheduler ?? ConfigInference.Sd1Scheduler;
        if (textConfig.HiddenSize != _unetConfig.CrossAttentionDim[0])
        {
            throw new InvalidFileException(source.Path,
                $"the text encoder's hidden_size {textConfig.HiddenSize} does not match the UNet's cross_attention_dim {_unetConfig.CrossAttentionDim[0]}: the two come from different models");
        }
        // Not a warning: for stock SD 1.x/2.x single files the guesses are right, and sd info lists them anyway.
        foreach (InferredSetting guess in source.InferredSettings)
        {
            bool separateVae = guess.Component == "vae" && source.VaePath is not null;
            _logger.LogInformation("{Model}: {Guess}; {Fix} overrides it", separateVae ? source.VaePath : source.Path, guess,
                separateVae ? "a VAE folder with its config.json (or, for a single-file model, a config folder's vae/config.json)" : "a config folder");
        }
        Func<WeightSet> textWeights = loras.WeightsOf(source, ModelComponent.TextEncoder);
        Func<WeightSet> unetWeights = loras.WeightsOf(source, ModelComponent.Unet);
        _textEncoder = new("text encoder", () => new ClipTextModel(textConfig, textWeights(), added), logger);
        _unet = new("UNet", () => new UNet2DConditionModel(_unetConfig, unetWeights(), options.UNet), logger);
        _vae = new("VAE", () => new AutoencoderKL(_vaeConfig, source.Weights(ModelComponent.Vae), options.Vae), logger);
        if (options.Memory == PipelineMemory.Resident)
        {
            var clock = Stopwatch.StartNew();
            TimeSpan loading = default;
            try
            {
                _textEncoder.Get(ref loading);
                _unet.Get(ref loading);
                _vae.Get(ref loading);
            }
            catch
            {
                // A later component that fails to load (a LoRA whose merge overflows) must not strand the earlier ones.
                _textEncoder.Dispose();
                _unet.Dispose();
                _vae.Dispose();
                throw;
            }
            _logger.LogInformation("Loaded {Model} ({Kind}) in {Seconds:F1} s", source.Path, source.Kind, clock.Elapsed.TotalSeconds);
        }
    }

    /// <summary>The textual-inversion words the prompts can use (<see cref="PipelineOptions.Embeddings"/>), in order.</summary>
    public IReadOnlyList<AddedToken> EmbeddingTokens { get; }

    private T Require<T>(T? component, string name) where T : class =>
        component ?? throw new InvalidFileException(_source.Path, $"the model has no {name}");

    /// <param name="logger">Load and run progress (Information), steps (Debug), truncated prompts (Warning).</param>
    /// <param name="pipelineOptions">Memory mode, component options and LoRAs; null keeps every component resident.</param>
    public static StableDiffusionPipeline Load(string path, ModelOpenOptions? options = null, ILogger? logger = null,
        PipelineOptions? pipelineOptions = null)
    {
        ModelSource source = ModelSource.Open(path, options);
        PipelineLoras? loras = null;
        try
        {
            TokenizerFiles files = source.Tokenizer
                ?? throw new InvalidFileException(source.Path, "the model has no tokenizer folder: pass a tokenizer directory (vocab.json, merges.txt)");
            files.RequireFits(source.TextEncoder);
            ClipTokenizer tokenizer = ClipTokenizer.Load(files);
            pipelineOptions ??= new PipelineOptions();
            loras = PipelineLoras.Open(pipelineOptions.Loras);
            return new StableDiffusionPipeline(source, tokenizer, pipelineOptions, loras, logger ?? NullLogger.Instance);
        }
        catch
        {
            loras?.Dispose();
            source.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The built-in demo model (<see cref="ModelSource.Demo"/>, with <see cref="ClipTokenizer.ByteLevel"/>): a toy
    /// Stable Diffusion with seeded random weights made in memory (the same weights every time), so it needs no file
    /// and runs anywhere in seconds. Its images are noise: for trying the engine out, not for pictures.
    /// </summary>
    public static StableDiffusionPipeline LoadDemo(ILogger? logger = null, PipelineOptions? pipelineOptions = null)
    {
        ModelSource source = ModelSource.Demo();
        PipelineLoras? loras = null;
        try
        {
            pipelineOptions ??= new PipelineOptions();
            loras = PipelineLoras.Open(pipelineOptions.Loras);
            return new StableDiffusionPipeline(source, ClipTokenizer.ByteLevel(), pipelineOptions, loras, logger ?? NullLogger.Instance);
        }
        catch
        {
            loras?.Dispose();
            source.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The component for the next phase; in <see cref="PipelineMemory.Sequential"/> mode the others are freed first,
    /// so only one is ever in memory.
    /// </summary>
    private T Acquire<T>(ComponentSlot<T> slot, PhaseTimes times) where T : class, IDisposable
    {
        // Disposed from inside the call (a progress callback): stop before loading anything.
        _disposing.Token.ThrowIfCancellationRequested();
        if (_options.Memory == PipelineMemory.Sequential && !slot.IsLoaded)
        {
            _textEncoder.Unload();
            _unet.Unload();
            _vae.Unload();
        }
        return slot.Get(ref times.Loading);
    }

    public GenerateResult Generate(GenerateRequest request, IProgress<StepInfo>? progress = null, CancellationToken cancellation = default) =>
        GenerateBatch(request, 1, progress, cancellation)[0];

    /// <summary>
    /// Batch count: <paramref name="count"/> images from one request, image i drawn with seed Seed + i (A1111's
    /// convention, so any image of a batch is reproduced alone with its <see cref="GenerateResult.Seed"/>). The prompt
    /// is encoded once (a hires fix's second pass with it), and the phases run image by image in turn (all VAE encodes,
    /// all denoising, all hires fix passes, all decodes), so a <see cref="PipelineMemory.Sequential"/> pipeline loads
    /// each component once per batch. Given latents or a noise source reproduce a single run and need a count of 1.
    /// Progress reports carry the image index. Calls from several threads run one at a time; <see cref="Dispose"/>
    /// stops a running call, which then throws <see cref="ObjectDisposedException"/>.
    /// </summary>
    public IReadOnlyList<GenerateResult> GenerateBatch(GenerateRequest request, int count, IProgress<StepInfo>? progress = null,
        CancellationToken cancellation = default)
    {
        try
        {
            return GenerateLocked(request, count, progress, cancellation);
        }
        finally
        {
            // A Dispose that found a call running did not wait for it (see Dispose); once out of the lock, the pipeline
            // is freed here if no call holds it now. Checked after leaving the lock, so a Dispose that came after the
            // running call's last look at it is not missed.
            if (_disposing.IsCancellationRequested)
            {
                FreeIfIdle();
            }
        }
    }

    private IReadOnlyList<GenerateResult> GenerateLocked(GenerateRequest request, int count, IProgress<StepInfo>? progress, CancellationToken cancellation)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed || _disposing.IsCancellationRequested, this);
            if (_running)
            {
                // The lock is re-entrant: this is the running call's own thread, in its progress callback.
                throw new InvalidOperationException("the pipeline was called from inside its own call (a progress callback); calls run one at a time");
            }
            _running = true;
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation, _disposing.Token);
            try
            {
                return RunBatch(request, count, progress, stop.Token);
            }
            catch (OperationCanceledException) when (_disposing.IsCancellationRequested && !cancellation.IsCancellationRequested)
            {
                throw new ObjectDisposedException(nameof(StableDiffusionPipeline), "the pipeline was disposed while it generated");
            }
            finally
            {
                _running = false;
                if (_options.Memory == PipelineMemory.Sequential)
                {
                    _textEncoder.Unload();
                    _unet.Unload();
                    _vae.Unload();
                }
            }
        }
    }

    private List<GenerateResult> RunBatch(GenerateRequest request, int count, IProgress<StepInfo>? progress, CancellationToken cancellation)
    {
        PassPlans prompts = CheckRequest(request, count);
        int factor = _vaeConfig.DownscaleFactor;
        int h = request.Height / factor, w = request.Width / factor;
        bool guided = UsesClassifierFreeGuidance(request);
        if (!guided && _unetConfig.TimeCondProjDim != null && request.NegativePrompt.Length > 0)
        {
            _logger.LogWarning("The negative prompt is not used: this LCM-distilled UNet takes the guidance scale as an input and runs without classifier-free guidance");
        }
        var times = new PhaseTimes[count];
        for (int i = 0; i < count; i++) times[i] = new PhaseTimes();
        PhaseClock textClock = times[0].Start();
        using PromptContexts contexts = EncodePrompts(prompts.First, request, guided, times[0], cancellation);
        // A second pass on the first's texts (its own prompts not given, and no pass editing them) reuses their encoding.
        bool sameTexts = request.Hires is { Prompt: null, NegativePrompt: null } && OneTextPerRow(prompts.First) && OneTextPerRow(prompts.Hires!);
        using PromptContexts? ownHiresContexts = prompts.Hires is { } second && !sameTexts
            ? EncodePrompts(second, request, guided, times[0], cancellation, secondPass: true) : null;
        PromptContexts? hiresContexts = sameTexts ? contexts : ownHiresContexts;
        // The IP-Adapters' pictures are prompts too: encoded once, for every image and pass.
        using IpAdapterPass? imagePrompts = IpAdapterPass.Create(request.IpAdapters, _unetConfig, cancellation);
        times[0].Text = textClock.Elapsed;
        int hiresCalls = request.Hires is { } hires ? HiresCalls(request, hires) : 0;
        var runs = new List<DenoisingRun>(count);
        var results = new List<GenerateResult>(count);
        using var pictures = new PictureMoments();
        try
        {
            for (int i = 0; i < count; i++)
            {
                PhaseClock clock = times[i].Start();
                runs.Add(Prepare(request, NoiseOf(request, i), pictures, h, w, times[i], cancellation));
                runs[i].CallsAfter = hiresCalls;
                times[i].Denoising += clock.Elapsed;
            }
            using (AdapterFeatures? adapter = AdapterFeaturesFor(request, runs[0].Latents))
            {
                for (int i = 0; i < count; i++)
                {
                    PhaseClock clock = times[i].Start();
                    Denoise(runs[i], contexts, request, adapter, imagePrompts, hires: false, i, count, progress, cancellation);
                    times[i].Denoising += clock.Elapsed;
                }
            }
            if (request.Hires is { } fix)
            {
                // Every image's upscale (which an image upscaler runs through the VAE), then every second pass, so a
                // sequential pipeline loads the VAE and the UNet once each here too.
                for (int i = 0; i < count; i++)
                {
                    PhaseClock clock = times[i].Start();
                    DenoisingRun first = runs[i];
                    runs[i] = PrepareHires(request, fix, first.Latents, NoiseOf(request, i), NoiseOf(request, i), times[i], cancellation);
                    runs[i].CallsBefore = first.Scheduler.StepCount - first.Start;
                    first.Dispose();
                    times[i].Denoising += clock.Elapsed;
                    runs[i].ElapsedBefore = times[i].Denoising;
                }
                using AdapterFeatures? adapter = AdapterFeaturesFor(request, runs[0].Latents);
                for (int i = 0; i < count; i++)
                {
                    PhaseClock clock = times[i].Start();
                    Denoise(runs[i], hiresContexts!, request, adapter, imagePrompts, hires: true, i, count, progress, cancellation);
                    times[i].Denoising += clock.Elapsed;
                }
            }
            for (int i = 0; i < count; i++)
            {
                cancellation.ThrowIfCancellationRequested();
                PhaseClock clock = times[i].Start();
                Tensor image = Decode(runs[i].Latents, times[i], cancellation);
                times[i].Decoding = clock.Elapsed;
                results.Add(new GenerateResult(runs[i].TakeLatents(), image, times[i], SeedOf(request, i)));
            }
            return results;
        }
        catch
        {
            foreach (GenerateResult result in results) result.Dispose();
            throw;
        }
        finally
        {
            foreach (DenoisingRun run in runs) run.Dispose();
        }
    }

    /// <summary>
    /// Where image <paramref name="image"/>'s draws come from, for each of its passes: the given source, or a fresh
    /// generator of its seed (a hires fix's second pass starts one again, as A1111 makes a new one of the same seeds).
    /// </summary>
    private INoiseSource NoiseOf(GenerateRequest request, int image)
    {
        ulong seed = SeedOf(request, image);
        INoiseSource seeded = request.Noise ?? new TorchNoise(seed);
        if (!(request.VariationStrength > 0) && request.SeedResizeFromWidth == 0)
        {
            return seeded;
        }
        int factor = _vaeConfig.DownscaleFactor;
        return new ExtraSeedNoise(seeded, seed, request.VariationStrength > 0 ? request.VariationSeed!.Value + (ulong)image : null,
            request.VariationStrength, request.SeedResizeFromHeight / factor, request.SeedResizeFromWidth / factor);
    }

    /// <summary>
    /// The generator seed of image <paramref name="image"/> of a batch: Seed + i, but Seed for every image of a batch
    /// that varies it, whose variation seeds go up instead (A1111's all_seeds and all_subseeds).
    /// </summary>
    public static ulong SeedOf(GenerateRequest request, int image) =>
        request.VariationStrength > 0 ? request.Seed : request.Seed + (ulong)image; // checked in CheckRequest

    /// <summary>One image's starting point by mode: inpainting (a mask), img2img (an init image) or txt2img.</summary>
    private DenoisingRun Prepare(GenerateRequest request, INoiseSource noise, PictureMoments pictures, int h, int w, PhaseTimes times,
        CancellationToken cancellation)
    {
        int channels = _unetConfig.InChannels;
        if (request.Mask is { } mask)
        {
            Tensor init = request.InitImage ?? throw new ArgumentException("a mask needs an init image", nameof(request));
            return PrepareInpaint(request, init, mask, noise, pictures, h, w, times, cancellation);
        }
        if (channels != _vaeConfig.LatentChannels)
        {
            // Checked here: the latents below are sized by the UNet, and a wider UNet input cannot be denoised alone.
            throw new ArgumentException($"txt2img and img2img need a UNet with {_vaeConfig.LatentChannels} input channels, this one takes {channels}" +
                (channels == InpaintChannels ? " (an inpainting UNet: give an init image and a mask)" : ""), nameof(request));
        }
        if (request.InitImage is { } picture)
        {
            return PrepareImageToImage(request, picture, noise, pictures, h, w, times, cancellation);
        }
        int latentCount = channels * h * w;
        var nchw = new float[latentCount];
        if (request.InitialLatents is { } given)
        {
            if (given.Length != latentCount)
            {
                throw new ArgumentException($"initial latents hold {given.Length} values, [1, {channels}, {h}, {w}] needs {latentCount}", nameof(request));
            }
            given.CopyTo(nchw, 0);
        }
        else
        {
            DrawStart(noise, nchw, channels, h, w);
        }
        Scheduler scheduler = NewScheduler(request, 0);
        for (int i = 0; i < nchw.Length; i++)
        {
            nchw[i] *= scheduler.InitNoiseSigma;
        }
        Tensor latents = Tensor.Allocate([1, h, w, channels]);
        ToNhwc(nchw, latents.Data, channels, h * w);
        return new DenoisingRun(scheduler, 0, latents, noise, times);
    }

    /// <summary>
    /// The request's scheduler, set for a run that skips the first <paramref name="skippedSteps"/> inference steps; its
    /// <see cref="Scheduler.FirstStep"/> is the step index the run starts at (x its order, as diffusers' get_timesteps).
    /// </summary>
    private Scheduler NewScheduler(GenerateRequest request, int skippedSteps)
    {
        Scheduler scheduler = Scheduler.Create(request.Scheduler ?? DefaultScheduler, _schedulerConfig);
        scheduler.SetTimesteps(StepsOf(request), skippedSteps * scheduler.Order);
        return scheduler;
    }

    /// <summary>
    /// The draw a run starts from (txt2img's initial latents, the noise added to a picture), [1, channels, h, w]:
    /// varied or resized where the request has a variation seed or a seed resize (<see cref="ExtraSeedNoise"/>).
    /// </summary>
    private static void DrawStart(INoiseSource noise, Span<float> nchw, int channels, int h, int w)
    {
        if (noise is ExtraSeedNoise extra)
        {
            extra.NextStart(nchw, channels, h, w);
        }
        else
        {
            noise.Next(nchw);
        }
    }

    /// <summary>The next NCHW noise draw as an NHWC tensor; <paramref name="start"/>: the draw a run starts from (<see cref="DrawStart"/>).</summary>
    private static Tensor DrawNhwc(INoiseSource noise, int batch, int h, int w, int channels, bool start = false)
    {
        var nchw = new float[batch * channels * h * w];
        if (start)
        {
            DrawStart(noise, nchw, channels, h, w);
        }
        else
        {
            noise.Next(nchw);
        }
        Tensor tensor = Tensor.Allocate([batch, h, w, channels]);
        fixed (float* src = nchw)
        {
            TransposeKernels.NchwToNhwc(src, tensor.Data, batch, channels, h * w);
        }
        return tensor;
    }

    /// <summary>
    /// An inner argument error's message without the suffix that names the inner method's argument (" (Parameter
    /// 'prompt')" in English; made the runtime's own way, so a localized one is removed too).
    /// </summary>
    private static string BareMessage(ArgumentException e)
    {
        if (e.ParamName is not { } name)
        {
            return e.Message;
        }
        string suffix = new ArgumentException("", name).Message;
        return e.Message.EndsWith(suffix, StringComparison.Ordinal) ? e.Message[..^suffix.Length].TrimEnd() : e.Message;
    }

    private Tensor Decode(Tensor latents, PhaseTimes times, CancellationToken cancellation)
    {
        AutoencoderKL vae = Acquire(_vae, times);
        using Tensor scaled = Tensor.Allocate(latents.Shape);
        // diffusers: vae.decode(latents / scaling_factor), the division in float32.
        float scaling = (float)_vaeConfig.ScalingFactor;
        for (long i = 0; i < latents.Length; i++)
        {
            scaled.Data[i] = latents.Data[i] / scaling;
        }
        Tensor image = Tensor.Allocate([1, latents.Dim(1) * vae.Factor, latents.Dim(2) * vae.Factor, _vaeConfig.OutChannels]);
        try
        {
            vae.Decode(scaled, image, cancellation);
            return image;
        }
        catch
        {
            image.Dispose();
            throw;
        }
        finally
        {
            vae.ReleaseRunBuffers();
        }
    }

    private static void ToNhwc(float[] nchw, float* nhwc, int channels, int pixels)
    {
        fixed (float* src = nchw)
        {
            TransposeKernels.NchwToNhwc(src, nhwc, 1, channels, pixels);
        }
    }

    /// <summary>
    /// Frees the weights and makes later calls throw. It never waits and never frees memory under a running kernel: a
    /// generation running on another thread is told to stop (at its next step or block; it then throws
    /// <see cref="ObjectDisposedException"/>) and frees the pipeline as it leaves, and so does a call whose own progress
    /// callback disposes it.
    /// </summary>
    public void Dispose()
    {
        _disposing.Cancel();
        if (Monitor.TryEnter(_gate))
        {
            try
            {
                // Running here means this is the call's own thread, in its progress callback (the lock is
                // re-entrant): the call frees everything as it leaves. Otherwise no call is running.
                if (!_running)
                {
                    Free();
                }
            }
            finally
            {
                Monitor.Exit(_gate);
            }
        }
        // Else a call on another thread holds the lock. Waiting for it could deadlock (its progress callback may be
        // waiting for this thread, as a UI's Invoke does): it stops at its next step and frees the pipeline as it leaves.
    }

    /// <summary>Whether the weights have been freed (tests: a Dispose that did not wait is completed by the call).</summary>
    internal bool IsFreed => Volatile.Read(ref _disposed);

    private void FreeIfIdle()
    {
        lock (_gate)
        {
            if (!_running)
            {
                Free();
            }
        }
    }

    /// <summary>Frees every part once, each even if another's Dispose throws (the first failure is rethrown).</summary>
    private void Free()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        Exception? failure = null;
        foreach (IDisposable part in new IDisposable[] { _textEncoder, _unet, _vae, _loras, _source })
        {
            try
            {
                part.Dispose();
            }
            catch (Exception e)
            {
                failure ??= e;
            }
        }
        // The components' large blocks were kept for the next load (see AlignedMemory); nothing loads again.
        Sd.Kernels.Memory.AlignedMemory.ReleaseCached();
        if (failure != null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }
    }
}
