using Sd.Engine.Tensors;
using Sd.Engine.Text;
using Sd.Kernels.Elementwise;

namespace Sd.Engine.Pipelines;

/// <summary>What to generate. Sizes are image pixels (multiples of the VAE factor, 8 for SD).</summary>
public sealed record GenerateRequest
{
    public string Prompt { get; init; } = "";

    /// <summary>
    /// How both prompts become token rows: <see cref="PromptSyntax.Plain"/> (diffusers, cut at 77 tokens),
    /// <see cref="PromptSyntax.Chunked"/> or <see cref="PromptSyntax.Weighted"/> (AUTOMATIC1111's long prompts, the
    /// latter with its <c>(word:1.2)</c> emphasis). With guidance, a prompt of fewer chunks than the other is
    /// attended to alone, as if the two ran in separate UNet passes.
    /// </summary>
    public PromptSyntax PromptSyntax { get; init; } = PromptSyntax.Plain;

    /// <summary>Text for the unconditional branch of classifier-free guidance ("" when absent, as diffusers).</summary>
    public string NegativePrompt { get; init; } = "";

    /// <summary>Denoising steps; null: the model's default (<see cref="StableDiffusionPipeline.DefaultSteps"/>).</summary>
    public int? Steps { get; init; }

    /// <summary>
    /// Classifier-free guidance scale (1 or less skips the unconditional pass), or an LCM-distilled UNet's guidance
    /// condition; null: the model's default (<see cref="StableDiffusionPipeline.DefaultGuidanceScale"/>).
    /// </summary>
    public float? GuidanceScale { get; init; }

    public int Width { get; init; } = 512;

    public int Height { get; init; } = 512;

    /// <summary>
    /// CLI scheduler name: ddim, pndm, lcm, unipc-a1111, or euler, euler-a, dpm++-2m, dpm++-2m-sde, dpm++-2m-sde-heun,
    /// dpm++-3m-sde, unipc, heun, dpm2, dpm2-a, dpm++-2s-a, dpm++-sde, lms, restart, dpm-fast, each also with -karras,
    /// -exponential, -beta, -kl-optimal, -ays, -simple, -normal or -sgm-uniform (<see cref="Schedulers.Scheduler.Create"/>);
    /// null: the model's default (<see cref="StableDiffusionPipeline.DefaultScheduler"/>).
    /// </summary>
    public string? Scheduler { get; init; }

    /// <summary>Seed of the PyTorch-compatible generator (initial latents, then every other draw).</summary>
    public ulong Seed { get; init; }

    /// <summary>
    /// AUTOMATIC1111's variation seed: with a <see cref="VariationStrength"/> above 0, the draw a run starts from (the
    /// initial latents; the noise img2img, inpainting and a hires fix add to a picture) is blended with the first draw
    /// of this seed's generator by A1111's slerp. Image i of a batch varies with VariationSeed + i, all of them from
    /// <see cref="Seed"/> itself (A1111: the seeds stay, the variation seeds go up). Null: none.
    /// </summary>
    public ulong? VariationSeed { get; init; }

    /// <summary>
    /// How far the start draw goes toward <see cref="VariationSeed"/>'s, in [0, 1] (A1111's variation strength): 0 is
    /// the seed's own draw (no variation), 1 the variation seed's.
    /// </summary>
    public float VariationStrength { get; init; }

    /// <summary>
    /// AUTOMATIC1111's seed resize ("Resize seed from width"), with <see cref="SeedResizeFromHeight"/>: the seed's start
    /// draw is made for a picture of this size (varied there, with a variation seed) and pasted centred into the draw
    /// of the request's size (cropped where larger), so a composition found at one size carries over to a nearby one.
    /// Positive multiples of the VAE's factor (8), or 0 for both: off. At the request's own size it changes nothing; a
    /// hires fix's second pass pastes it into its larger draw, as A1111 does.
    /// </summary>
    public int SeedResizeFromWidth { get; init; }

    /// <summary>The height of <see cref="SeedResizeFromWidth"/>'s size; 0 with it: off.</summary>
    public int SeedResizeFromHeight { get; init; }

    public int ClipSkip { get; init; }

    /// <summary>
    /// ControlNets that steer the denoising with their pictures (diffusers' StableDiffusionControlNetPipeline; several
    /// sum their residuals, as its MultiControlNetModel does); empty: none. Each picture is resized to every pass's size.
    /// </summary>
    public IReadOnlyList<ControlNetUnit> ControlNets { get; init; } = [];

    /// <summary>
    /// T2I-Adapters that steer the denoising with their pictures (diffusers' StableDiffusionAdapterPipeline; several
    /// add their features up, as its MultiAdapter), in every pass (a hires fix's second too); empty: none.
    /// </summary>
    public IReadOnlyList<T2IAdapterUnit> Adapters { get; init; } = [];

    /// <summary>
    /// The fraction of a pass's steps, from the first, that get the adapters' features, in [0, 1]: step i of n when
    /// i &lt; int(n x factor), in double as Python computes it (diffusers' StableDiffusionXLAdapterPipeline's
    /// adapter_conditioning_factor; its SD 1.x adapter pipeline has none, which is 1).
    /// </summary>
    public double AdapterConditioningFactor { get; init; } = 1;

    /// <summary>
    /// IP-Adapters whose pictures act as prompts beside the text (diffusers' ip_adapter_image with load_ip_adapter;
    /// several add their image attentions up), in every step of every pass; empty: none.
    /// </summary>
    public IReadOnlyList<IpAdapterUnit> IpAdapters { get; init; } = [];

    /// <summary>
    /// diffusers' guidance_rescale (0 = off): rescales the guided prediction to the text prediction's standard
    /// deviation and mixes by this factor, against over-exposure with zero-terminal-SNR / v-prediction models.
    /// </summary>
    public float GuidanceRescale { get; init; }

    /// <summary>Initial latents NCHW [1, 4, h, w] (diffusers' <c>latents=</c>); null draws them from the seed.</summary>
    public float[]? InitialLatents { get; init; }

    /// <summary>
    /// img2img: the starting picture, NHWC [1, Height, Width, 3] in [-1, 1] (<see cref="Imaging.ImageConversion.FromPng"/>).
    /// </summary>
    public Tensor? InitImage { get; init; }

    /// <summary>
    /// Inpainting (with <see cref="InitImage"/>): NHWC [1, Height, Width, 1], 1 = repaint, binarized at 0.5.
    /// </summary>
    public Tensor? Mask { get; init; }

    /// <summary>
    /// Inpainting (with <see cref="Mask"/>): what the picture's latents become under the mask (binarized and resized
    /// to the latents, as the blend uses it) before the run starts from them noised to its first step, as A1111's
    /// Masked content "latent noise" and "latent nothing" replace its init latents after encoding. Only a run that starts
    /// from the picture (strength below 1, no <see cref="InitialLatents"/>) sees it: the others start from noise alone,
    /// and a 4-channel UNet's blend takes only the unmasked latents, which stay the picture's.
    /// </summary>
    public MaskedLatents MaskedLatents { get; init; }

    /// <summary>
    /// img2img: how much of the schedule runs (1 ignores the picture's content, 0 returns it). A double, as diffusers'
    /// Python float: int(20 x 0.7) is 14 steps, where 0.7 as a float32 would give 13.
    /// </summary>
    public double Strength { get; init; } = 0.8;

    /// <summary>Where the scheduler's noise comes from; null means the seeded generator.</summary>
    public INoiseSource? Noise { get; init; }

    /// <summary>AUTOMATIC1111's hires fix after a txt2img pass (null: none).</summary>
    public HiresFix? Hires { get; init; }
}

/// <summary>
/// AUTOMATIC1111's hires fix: the txt2img pass's latents are upscaled to <see cref="Width"/> x <see cref="Height"/>
/// (by one of A1111's latent upscalers, <see cref="Upscaler"/>, or as a picture, <see cref="ImageUpscaler"/>, stretched to that size, or covering it and cropped
/// to it: <see cref="CoverWidth"/>)
/// and denoised again from <see cref="Strength"/>, as A1111 lays out its second pass: the last <see cref="Steps"/>
/// steps of a schedule of int(Steps / min(Strength, 0.999)), with the request's prompts, scheduler and guidance. Its
/// noise comes from a fresh generator of the image's seed (A1111 makes a new one of the same seeds), or continues
/// <see cref="GenerateRequest.Noise"/>. Prompt editing counts its steps on from the first pass's (A1111's hires
/// scheduling: <c>[a:b:25]</c> after 20 steps switches 5 steps in, <c>[a:b:1.5]</c> halfway). The schedules and the
/// noise are Sd's (diffusers'), not A1111's k-diffusion sigmas and GPU generator: a seed gives another picture.
/// </summary>
public sealed record HiresFix
{
    /// <summary>The final image's size in pixels (multiples of the VAE factor, 8 for SD).</summary>
    public int Width { get; init; }

    public int Height { get; init; }

    /// <summary>
    /// The size the latents are upscaled to before they are cropped to <see cref="Width"/> x <see cref="Height"/>,
    /// centred (the left and top take the smaller half of an odd excess), as A1111 resizes to another aspect ratio: it
    /// covers the size, then crops. Both or neither; multiples of the VAE factor, at least Width and Height. Null: no crop.
    /// </summary>
    public int? CoverWidth { get; init; }

    public int? CoverHeight { get; init; }

    /// <summary>A1111's denoising strength of the second pass, in (0, 1] (a double, as A1111's Python float).</summary>
    public double Strength { get; init; } = 0.7;

    /// <summary>The second pass's steps; null: the request's.</summary>
    public int? Steps { get; init; }

    /// <summary>The second pass's scheduler (A1111's hires sampler); null: the request's.</summary>
    public string? Scheduler { get; init; }

    /// <summary>
    /// The second pass's prompts (A1111's hires prompt and negative prompt); null: the request's. Their extra-network
    /// tags are taken out and not applied (the LoRAs merged at load serve both passes).
    /// </summary>
    public string? Prompt { get; init; }

    public string? NegativePrompt { get; init; }

    /// <summary>
    /// How the latents are upscaled: A1111's latent upscalers, F.interpolate's modes: Bilinear ("Latent", the default),
    /// BilinearAntialiased ("Latent (antialiased)"), Bicubic ("Latent (bicubic)"), BicubicAntialiased ("Latent (bicubic
    /// antialiased)"), Nearest ("Latent (nearest)"), NearestExact ("Latent (nearest-exact)").
    /// </summary>
    public InterpolationMode Upscaler { get; init; } = InterpolationMode.Bilinear;

    /// <summary>
    /// One of A1111's image upscalers instead of a latent one (<see cref="Upscaler"/> then stays Bilinear): the first
    /// pass is decoded to 8-bit RGB, resized with Pillow as A1111 does (<see cref="Imaging.ImageUpscaler"/>)
    /// to the cover size (or the size), encoded again with the VAE (a posterior sample, the first draw of a fresh
    /// generator of the seed), cropped and noised (as with a latent upscaler: the first draw of another fresh one, which
    /// the second pass's sampler continues; a given noise source gives both in turn). Null: the latents are upscaled.
    /// </summary>
    public Imaging.ImageUpscaler? ImageUpscaler { get; init; }

    /// <summary>
    /// An ESRGAN-family model upscaler (A1111's ESRGAN and R-ESRGAN upscalers) instead of a latent or image one: the
    /// picture path of <see cref="ImageUpscaler"/>, with the model in Upscaler.upscale's step
    /// (<see cref="Imaging.ImageUpscaling.Upscale(byte[], int, int, int, int, Upscaling.EsrganUpscaler, CancellationToken)"/>).
    /// The caller owns it (load once, run many requests, dispose). Null: none.
    /// </summary>
    public Upscaling.EsrganUpscaler? ModelUpscaler { get; init; }
}

/// <summary>
/// Progress of a generation, after each UNet call (a scheduler step index: as many as the inference steps, but for the
/// two-call samplers, Heun, DPM2, DPM2 a, DPM++ 2S a and DPM++ SDE, which take two calls per step but the last, and
/// PNDM, one more): the call of <see cref="Total"/>, the time since the image's denoising began, and which image of a
/// batch (<see cref="StableDiffusionPipeline.GenerateBatch"/>) it is.
/// </summary>
public readonly record struct StepInfo(int Step, int Total, TimeSpan Elapsed, int Image = 0, int Images = 1);

/// <summary>Standard-normal draws in PyTorch's NCHW order, as diffusers' pipelines consume them.</summary>
public interface INoiseSource
{
    /// <summary>Fills <paramref name="nchw"/> with the next draw of that many values.</summary>
    void Next(Span<float> nchw);
}
