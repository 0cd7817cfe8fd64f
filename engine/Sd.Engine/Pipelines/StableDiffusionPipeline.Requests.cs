using Sd.Engine.Adapters;
using Sd.Engine.Imaging;
using Sd.Loaders.Config;
using Sd.Engine.Schedulers;
using Sd.Engine.Text;

namespace Sd.Engine.Pipelines;

/// <summary>What a request may ask for, checked before any work.</summary>
public sealed partial class StableDiffusionPipeline
{
    /// <summary>The widest and tallest image a request may ask for (2048 latents a side: far beyond what fits in memory).</summary>
    public const int MaxImageSide = 16384;

    /// <summary>The most images one call makes: its results (latents and images) are all held until it returns.</summary>
    public const int MaxBatchCount = 256;

    /// <summary>
    /// The scheduler a request without one runs: <c>lcm</c> for a latent consistency model (an LCM-distilled UNet,
    /// or a scheduler config of class LCMScheduler, as an LCM-LoRA merge is saved), whose few-step sampling only LCM's
    /// scheduler gives; <c>euler-a</c> otherwise (whatever other class the scheduler config names).
    /// </summary>
    public string DefaultScheduler => IsLatentConsistencyModel ? "lcm" : "euler-a";

    /// <summary>
    /// The noise-level ramp <paramref name="scheduler"/> runs with this model: its name's ("-karras", "-exponential",
    /// "-beta", "-kl-optimal", "-ays", "-simple", "-normal", "-sgm-uniform"), else the scheduler config's flag (use_karras_sigmas, ...), else none (<see cref="SigmaRamp.Spaced"/>).
    /// Throws as <see cref="Scheduler.Create"/> does for a name or config it refuses.
    /// </summary>
    public SigmaRamp RampOf(string scheduler) => Scheduler.Create(scheduler, _schedulerConfig).Ramp;

    /// <summary>The steps a request without a count runs: 4 for a latent consistency model, 20 otherwise.</summary>
    public int DefaultSteps => IsLatentConsistencyModel ? 4 : 20;

    /// <summary>
    /// The guidance scale a request without one runs: 1 (no classifier-free guidance) for an LCM-LoRA merge, a plain
    /// UNet with an LCMScheduler config, which is sampled in few steps without guidance; 7.5 otherwise, diffusers'
    /// StableDiffusionPipeline default, which an LCM-distilled UNet takes as its guidance condition.
    /// </summary>
    public float DefaultGuidanceScale => _unetConfig.TimeCondProjDim == null && HasLcmSchedulerConfig ? 1f : 7.5f;

    /// <summary>
    /// <paramref name="request"/> with the model's defaults in place of what it leaves null (scheduler, steps,
    /// guidance scale): what a generation runs, and what a caller records with its picture.
    /// </summary>
    public GenerateRequest WithModelDefaults(GenerateRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return request with
        {
            Scheduler = request.Scheduler ?? DefaultScheduler,
            Steps = StepsOf(request),
            GuidanceScale = GuidanceOf(request),
        };
    }

    private bool IsLatentConsistencyModel => _unetConfig.TimeCondProjDim != null || HasLcmSchedulerConfig;

    private bool HasLcmSchedulerConfig => _schedulerConfig.ClassName == "LCMScheduler";

    private int StepsOf(GenerateRequest request) => request.Steps ?? DefaultSteps;

    private float GuidanceOf(GenerateRequest request) => request.GuidanceScale ?? DefaultGuidanceScale;

    /// <summary>
    /// The NCHW shape <see cref="GenerateRequest.InitialLatents"/> holds for a <paramref name="width"/> x
    /// <paramref name="height"/> image: [1, latent channels, height / factor, width / factor] (SD: [1, 4, h/8, w/8]).
    /// </summary>
    public int[] InitialLatentsShape(int width, int height)
    {
        int factor = _vaeConfig.DownscaleFactor;
        return [1, _vaeConfig.LatentChannels, height / factor, width / factor];
    }

    /// <summary>
    /// The checks <see cref="GenerateBatch"/> makes before any work (sizes, steps, guidance, the batch count, the
    /// initial latents' values, which inputs go together, prompts the syntax can read), for a caller that prepares
    /// inputs sized by the request (the CLI reads init pictures only once the size is known to be valid). Throws as
    /// GenerateBatch would.
    /// </summary>
    public void Validate(GenerateRequest request, int count = 1) => CheckRequest(request, count);

    /// <summary>A seed resize's size (both sides, or neither) and the inputs it cannot go with.</summary>
    private static void CheckSeedResize(GenerateRequest request, int factor)
    {
        (int width, int height) = (request.SeedResizeFromWidth, request.SeedResizeFromHeight);
        if (width == 0 && height == 0)
        {
            return;
        }
        if (width <= 0 || height <= 0 || width % factor != 0 || height % factor != 0 || width > MaxImageSide || height > MaxImageSide)
        {
            throw new ArgumentException($"a seed resize needs a width and height that are positive multiples of {factor}, at most {MaxImageSide} (0x0: none), got {width}x{height}", nameof(request));
        }
        if (request.InitialLatents is not null || request.Noise is not null)
        {
            // Its draws come from fresh generators of the seed; given latents or noise replace the seed's draws.
            throw new ArgumentException("a seed resize draws the seed's start noise at another size; given initial latents or a noise source replace the seed's draws", nameof(request));
        }
    }

    /// <summary>
    /// The request checks made before loading or denoising anything: sizes, steps, guidance, the batch count, the
    /// inputs, the hires fix, and the prompts, which are tokenized (milliseconds) to find what their syntax refuses;
    /// returns them tokenized, in the UNet's batch order, for each pass to encode.
    /// </summary>
    private PassPlans CheckRequest(GenerateRequest request, int count)
    {
        ArgumentNullException.ThrowIfNull(request);
        int factor = _vaeConfig.DownscaleFactor;
        if (request.Width <= 0 || request.Height <= 0 || request.Width % factor != 0 || request.Height % factor != 0
            || request.Width > MaxImageSide || request.Height > MaxImageSide)
        {
            throw new ArgumentException($"width and height must be positive multiples of {factor}, at most {MaxImageSide}, got {request.Width}x{request.Height}", nameof(request));
        }
        if (StepsOf(request) < 1)
        {
            throw new ArgumentException($"steps must be at least 1, got {request.Steps}", nameof(request));
        }
        if (StepsOf(request) > _schedulerConfig.NumTrainTimesteps)
        {
            // The scheduler refuses them too; checked before the prompts' schedules are built over the steps.
            throw new ArgumentException($"steps must be at most the scheduler's {_schedulerConfig.NumTrainTimesteps} training timesteps, got {StepsOf(request)}", nameof(request));
        }
        if (!float.IsFinite(GuidanceOf(request)) || !(request.GuidanceRescale >= 0 && float.IsFinite(request.GuidanceRescale)))
        {
            throw new ArgumentException($"the guidance scale must be finite and the guidance rescale finite and non-negative, got {GuidanceOf(request)} and {request.GuidanceRescale}", nameof(request));
        }
        if (!Enum.IsDefined(request.PromptSyntax))
        {
            throw new ArgumentException($"prompt syntax {(int)request.PromptSyntax} is not Plain, Chunked or Weighted", nameof(request));
        }
        if (count < 1 || count > MaxBatchCount)
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, $"the batch count must be in [1, {MaxBatchCount}]");
        }
        if (request.VariationStrength == 0 && request.Seed > ulong.MaxValue - (ulong)(count - 1))
        {
            // Image i is drawn with seed Seed + i; past 2^64 - 1 that would wrap to seed 0, which is another run's.
            throw new ArgumentException($"seed {request.Seed} leaves no room for {count} images: the batch's seeds run to Seed + {count - 1}, past 2^64 - 1", nameof(request));
        }
        if (!(request.VariationStrength >= 0 && request.VariationStrength <= 1))
        {
            throw new ArgumentException($"the variation strength must be in [0, 1], got {request.VariationStrength}", nameof(request));
        }
        if (request.VariationStrength > 0 && request.VariationSeed is null)
        {
            throw new ArgumentException($"a variation strength of {request.VariationStrength} needs a variation seed", nameof(request));
        }
        if (request.VariationStrength > 0 && request.VariationSeed > ulong.MaxValue - (ulong)(count - 1))
        {
            throw new ArgumentException($"variation seed {request.VariationSeed} leaves no room for {count} images: the batch's variation seeds run to VariationSeed + {count - 1}, past 2^64 - 1", nameof(request));
        }
        if (request.VariationStrength > 0 && request.InitialLatents is not null)
        {
            throw new ArgumentException("a variation seed varies the drawn noise a run starts from; given initial latents replace that draw", nameof(request));
        }
        CheckSeedResize(request, factor);
        if (count > 1 && (request.InitialLatents is not null || request.Noise is not null))
        {
            throw new ArgumentException($"given initial latents or a noise source reproduce one run; a batch count of {count} needs seeded draws", nameof(request));
        }
        if (request.InitialLatents is { } latents && Array.FindIndex(latents, v => !float.IsFinite(v)) is var bad and >= 0)
        {
            throw new ArgumentException($"the initial latents hold {latents[bad]} at {bad}; they must be finite", nameof(request));
        }
        if (request.InitialLatents is not null && request.InitImage is not null && request.Mask is null)
        {
            throw new ArgumentException("initial latents start txt2img or inpainting; img2img (an init image without a mask) starts from the picture", nameof(request));
        }
        if (!Enum.IsDefined(request.MaskedLatents) || (request.MaskedLatents != MaskedLatents.Picture && request.Mask is null))
        {
            throw new ArgumentException($"masked latents {request.MaskedLatents} fill the latents under an inpainting mask; they must be Picture, Noise or Zeros, " +
                "and other than Picture only with a mask", nameof(request));
        }
        if (request.Hires is { } hires)
        {
            CheckHires(request, hires);
        }
        CheckControlNets(request, factor);
        CheckAdapters(request, factor);
        CheckIpAdapters(request);
        // Last: the one check that does some work.
        bool guided = UsesClassifierFreeGuidance(request);
        return new PassPlans(TokenizePrompts(request, guided, null), request.Hires is { } second ? TokenizePrompts(request, guided, second) : null);
    }

    /// <summary>Each ControlNet unit: present, fitting this model (input channels, text width, picture scale) and with valid settings.</summary>
    private void CheckControlNets(GenerateRequest request, int factor)
    {
        if (request.ControlNets is null)
        {
            throw new ArgumentException("ControlNets must not be null (empty: none)", nameof(request));
        }
        for (int u = 0; u < request.ControlNets.Count; u++)
        {
            if (request.ControlNets[u] is not { Model: { } model, Image: not null } unit)
            {
                throw new ArgumentException($"ControlNet {u} has no model or no picture", nameof(request));
            }
            UNetConfig encoder = model.Config.Encoder;
            string? misfit =
                // It sees the latents alone, also beside an inpainting UNet (whose input adds the mask and masked picture).
                encoder.InChannels != _unetConfig.OutChannels ? $"it takes {encoder.InChannels} input channels, the latents have {_unetConfig.OutChannels}"
                : encoder.CrossAttentionDim[0] != _unetConfig.CrossAttentionDim[0] ? $"its text width is {encoder.CrossAttentionDim[0]}, the UNet's {_unetConfig.CrossAttentionDim[0]} (a ControlNet for another SD version)"
                : !encoder.BlockOutChannels.AsSpan().SequenceEqual(_unetConfig.BlockOutChannels) || !encoder.LayersPerBlock.AsSpan().SequenceEqual(_unetConfig.LayersPerBlock)
                    ? "its blocks are not the UNet's"
                : model.Config.ConditioningScaleFactor != factor ? $"its pictures are {model.Config.ConditioningScaleFactor} times the latents' size, the VAE's {factor}"
                : null;
            if (misfit != null)
            {
                throw new ArgumentException($"ControlNet {u} does not fit this model: {misfit}", nameof(request));
            }
            if (!float.IsFinite(unit.Scale) || !(unit.GuidanceStart >= 0 && unit.GuidanceStart < unit.GuidanceEnd && unit.GuidanceEnd <= 1))
            {
                throw new ArgumentException($"ControlNet {u}: the scale must be finite and 0 <= guidance start < guidance end <= 1, got " +
                    $"{unit.Scale}, {unit.GuidanceStart} and {unit.GuidanceEnd}", nameof(request));
            }
            if (unit.Mask is { } mask && (mask.Width, mask.Height) != (unit.Image.Width, unit.Image.Height))
            {
                throw new ArgumentException($"ControlNet {u}: its mask is {mask.Width}x{mask.Height}, its picture {unit.Image.Width}x{unit.Image.Height}; " +
                    "an inpainting condition masks the picture it is made of", nameof(request));
            }
            if (!Enum.IsDefined(unit.Resize) || !Enum.IsDefined(unit.Mode))
            {
                throw new ArgumentException($"ControlNet {u}: resize mode {unit.Resize} or control mode {unit.Mode} is not one", nameof(request));
            }
            if (unit.Mask is not null && unit.Resize != ResizeMode.Just)
            {
                throw new ArgumentException($"ControlNet {u}: resize mode {unit.Resize}; an inpainting condition (a mask given) is just resized, as " +
                    "diffusers resizes a tensor", nameof(request));
            }
            if (unit.GuessMode && unit.Mode != ControlMode.Balanced)
            {
                throw new ArgumentException($"ControlNet {u}: control mode {unit.Mode} with guess mode {unit.GuessMode}; guess mode (diffusers') goes with " +
                    "the balanced mode only (A1111's modes weight the residuals their own way)", nameof(request));
            }
        }
    }

    /// <summary>Each T2I-Adapter unit: present, fitting this model (feature widths, picture scale), with a finite scale; the factor in [0, 1].</summary>
    private void CheckAdapters(GenerateRequest request, int factor)
    {
        if (request.Adapters is null)
        {
            throw new ArgumentException("Adapters must not be null (empty: none)", nameof(request));
        }
        if (!(request.AdapterConditioningFactor is >= 0 and <= 1))
        {
            throw new ArgumentException($"the adapter conditioning factor must be in [0, 1], got {request.AdapterConditioningFactor}", nameof(request));
        }
        for (int u = 0; u < request.Adapters.Count; u++)
        {
            if (request.Adapters[u] is not { Model: { } model, Image: not null } unit)
            {
                throw new ArgumentException($"T2I-Adapter {u} has no model or no picture", nameof(request));
            }
            int[] channels = model.Config.Channels, blocks = _unetConfig.BlockOutChannels;
            string? misfit =
                model.Config.DownscaleFactor != factor ? $"its pictures are {model.Config.DownscaleFactor} times the latents' size, the VAE's {factor}"
                : channels.Length > blocks.Length || !channels.AsSpan().SequenceEqual(blocks.AsSpan(0, channels.Length))
                    ? $"its features are [{string.Join(", ", channels)}] wide, the UNet's blocks [{string.Join(", ", blocks)}] (an adapter for another SD version)"
                : null;
            if (misfit != null)
            {
                throw new ArgumentException($"T2I-Adapter {u} does not fit this model: {misfit}", nameof(request));
            }
            if (!float.IsFinite(unit.Scale))
            {
                throw new ArgumentException($"T2I-Adapter {u}: the scale must be finite, got {unit.Scale}", nameof(request));
            }
        }
    }

    /// <summary>
    /// Each IP-Adapter unit: present, its image encoder's embeddings or hidden states the adapter's input, its tokens the UNet's
    /// cross-attention width and its layers the UNet's, with a finite scale.
    /// </summary>
    private void CheckIpAdapters(GenerateRequest request)
    {
        int[] widths = Sd.Loaders.Layout.DiffusersLayout.CrossAttentionWidths(_unetConfig);
        if (request.IpAdapters is null)
        {
            throw new ArgumentException("IpAdapters must not be null (empty: none)", nameof(request));
        }
        for (int u = 0; u < request.IpAdapters.Count; u++)
        {
            if (request.IpAdapters[u] is not { Model: { } model, ImageEncoder: { } encoder, Images: { Count: > 0 } pictures } unit
                || pictures.Count > IpAdapterUnit.MaxImages || pictures.Contains(null!))
            {
                throw new ArgumentException($"IP-Adapter {u} has no model or image encoder, or not 1 to {IpAdapterUnit.MaxImages} pictures", nameof(request));
            }
            if (unit.Masks is { } masks && (masks.Count != pictures.Count || masks.Contains(null!)))
            {
                throw new ArgumentException($"IP-Adapter {u} has {pictures.Count} pictures and {masks.Count} masks: one mask each", nameof(request));
            }
            (int encoderWidth, string what) = model.TakesHiddenStates ? (encoder.Config.HiddenSize, "hidden states") : (encoder.Config.ProjectionDim, "embeddings");
            string? misfit =
                encoderWidth != model.InputWidth ? $"its image encoder makes {encoderWidth}-wide {what}, the adapter takes {model.InputWidth} (the encoder it was trained with is needed)"
                : model.CrossAttentionDim != _unetConfig.CrossAttentionDim[0] ? $"its image tokens are {model.CrossAttentionDim} wide, the UNet's text {_unetConfig.CrossAttentionDim[0]} (an IP-Adapter for another SD version)"
                : ImagePrompt.LayerMisfit(model.LayerWidths, widths);
            if (misfit != null)
            {
                throw new ArgumentException($"IP-Adapter {u} does not fit this model: {misfit}", nameof(request));
            }
            if (!float.IsFinite(unit.Scale))
            {
                throw new ArgumentException($"IP-Adapter {u}: the scale must be finite, got {unit.Scale}", nameof(request));
            }
            try
            {
                unit.BlockScales?.Expand(_unetConfig);
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"IP-Adapter {u} does not fit this model: {e.Message}", nameof(request), e);
            }
        }
    }

    /// <summary>A request's prompts tokenized for each pass: the first and, with a hires fix, the second.</summary>
    private readonly record struct PassPlans(PromptPlan First, PromptPlan? Hires);
}
