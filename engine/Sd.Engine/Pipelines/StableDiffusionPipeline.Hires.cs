using Sd.Engine.Imaging;
using Sd.Engine.Schedulers;
using Sd.Engine.Tensors;
using Sd.Kernels.Elementwise;

namespace Sd.Engine.Pipelines;

// AUTOMATIC1111's hires fix: the txt2img pass's latents upscaled and denoised again as img2img.
public sealed unsafe partial class StableDiffusionPipeline
{
    /// <summary>The second pass's steps: the hires fix's, or the request's.</summary>
    private int HiresStepsOf(GenerateRequest request, HiresFix hires) => hires.Steps ?? StepsOf(request);

    /// <summary>The second pass's scheduler name: the hires fix's, the request's, or the model's default.</summary>
    private string HiresSchedulerOf(GenerateRequest request, HiresFix hires) => hires.Scheduler ?? request.Scheduler ?? DefaultScheduler;

    /// <summary>
    /// The request as its second pass runs it: the hires fix's scheduler and prompts where it names them (what else a
    /// pass reads, the guidance and the syntax, is the request's).
    /// </summary>
    private GenerateRequest SecondPass(GenerateRequest request, HiresFix hires) => request with
    {
        Scheduler = HiresSchedulerOf(request, hires),
        Prompt = hires.Prompt ?? request.Prompt,
        NegativePrompt = hires.NegativePrompt ?? request.NegativePrompt,
    };

    /// <summary>
    /// The second pass's scheduler, as A1111's setup_img2img_steps for a given step count: a schedule of
    /// int(steps / min(strength, 0.999)) steps, run from the step that leaves <c>steps</c> of it.
    /// </summary>
    private Scheduler NewHiresScheduler(GenerateRequest request, HiresFix hires)
    {
        int steps = HiresStepsOf(request, hires), total = HiresScheduleSteps(request, hires);
        Scheduler scheduler = Scheduler.Create(HiresSchedulerOf(request, hires), _schedulerConfig);
        scheduler.SetTimesteps(total, (total - steps) * scheduler.Order);
        return scheduler;
    }

    /// <summary>The second pass's whole schedule: int(steps / min(strength, 0.999)), in doubles as A1111's Python.</summary>
    private int HiresScheduleSteps(GenerateRequest request, HiresFix hires) =>
        (int)(HiresStepsOf(request, hires) / Math.Min(hires.Strength, 0.999));

    /// <summary>The second pass's UNet calls.</summary>
    private int HiresCalls(GenerateRequest request, HiresFix hires)
    {
        Scheduler scheduler = NewHiresScheduler(request, hires);
        return scheduler.StepCount - scheduler.FirstStep;
    }

    /// <summary>Checks a request's hires fix before any work (sizes, strength, steps, the modes it follows).</summary>
    private void CheckHires(GenerateRequest request, HiresFix hires)
    {
        int factor = _vaeConfig.DownscaleFactor;
        if (hires.Width <= 0 || hires.Height <= 0 || hires.Width % factor != 0 || hires.Height % factor != 0
            || hires.Width > MaxImageSide || hires.Height > MaxImageSide)
        {
            throw new ArgumentException($"the hires fix's width and height must be positive multiples of {factor}, at most {MaxImageSide}, got {hires.Width}x{hires.Height}", nameof(request));
        }
        if ((hires.CoverWidth is null) != (hires.CoverHeight is null) || hires.CoverWidth is { } coverWidth && hires.CoverHeight is { } coverHeight
            && (coverWidth < hires.Width || coverHeight < hires.Height || coverWidth % factor != 0 || coverHeight % factor != 0 || coverWidth > MaxImageSide || coverHeight > MaxImageSide))
        {
            throw new ArgumentException($"the hires fix's cover size must be given whole (width and height), multiples of {factor} from {hires.Width}x{hires.Height} to {MaxImageSide}, got {hires.CoverWidth?.ToString() ?? "none"}x{hires.CoverHeight?.ToString() ?? "none"}", nameof(request));
        }
        if (!(hires.Strength > 0 && hires.Strength <= 1))
        {
            throw new ArgumentException($"the hires fix's strength must be in (0, 1], got {hires.Strength}", nameof(request));
        }
        if (hires.ImageUpscaler is { } image && (!Enum.IsDefined(image) || hires.Upscaler != InterpolationMode.Bilinear))
        {
            throw new ArgumentException(Enum.IsDefined(image)
                ? $"the hires fix has an image upscaler ({image}) and a latent one ({hires.Upscaler}); it runs one"
                : $"the hires fix's image upscaler {(int)image} is none of {string.Join(", ", Enum.GetNames<ImageUpscaler>())}", nameof(request));
        }
        if (hires.ModelUpscaler is { } model && (hires.ImageUpscaler is not null || hires.Upscaler != InterpolationMode.Bilinear))
        {
            throw new ArgumentException($"the hires fix has a model upscaler ({model.Name}) and {(hires.ImageUpscaler is { } other ? $"an image one ({other})" : $"a latent one ({hires.Upscaler})")}; it runs one", nameof(request));
        }
        if (!Enum.IsDefined(hires.Upscaler))
        {
            throw new ArgumentException($"the hires fix's upscaler {(int)hires.Upscaler} is none of {string.Join(", ", Enum.GetNames<InterpolationMode>())}", nameof(request));
        }
        if (request.InitImage is not null || request.Mask is not null)
        {
            throw new ArgumentException("a hires fix follows a txt2img pass; img2img and inpainting have none", nameof(request));
        }
        int steps = HiresStepsOf(request, hires);
        int total = steps < 1 ? 0 : HiresScheduleSteps(request, hires);
        if (steps < 1 || total > _schedulerConfig.NumTrainTimesteps)
        {
            throw new ArgumentException($"the hires fix's {steps} steps at strength {hires.Strength} make a schedule of {total} steps; it must have 1 to {_schedulerConfig.NumTrainTimesteps} (the training timesteps)", nameof(request));
        }
        if (hires.Scheduler is { } name)
        {
            try
            {
                Scheduler.Create(name, _schedulerConfig);
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"the hires fix's scheduler: {BareMessage(e)}", nameof(request), e);
            }
        }
        // The first pass's scheduler is checked as the request's, not blamed on the hires fix.
        Scheduler.Create(request.Scheduler ?? DefaultScheduler, _schedulerConfig);
        try
        {
            NewHiresScheduler(request, hires);
        }
        catch (ArgumentException e)
        {
            // What the scheduler itself refuses over the second pass (LCM's step limit, repeated levels).
            throw new ArgumentException($"the hires fix's second pass ({steps} of {total} steps): {BareMessage(e)}", nameof(request), e);
        }
    }

    /// <summary>
    /// The second pass of one image: its first pass's latents upscaled (the hires fix's upscaler) to the hires size, or
    /// to its cover size and cropped to it, and noised to the second pass's first step (one draw of <paramref name="noise"/>), as A1111's sample_hr_pass with its
    /// latent upscalers and sample_img2img. With an image upscaler the latents are the upscaled picture's posterior
    /// sample, drawn from <paramref name="pictureNoise"/> (A1111 samples it from another generator than the pass's
    /// noise, which is the first draw of a fresh one of the seed either way).
    /// </summary>
    private DenoisingRun PrepareHires(GenerateRequest request, HiresFix hires, Tensor firstPass, INoiseSource noise, INoiseSource pictureNoise,
        PhaseTimes times, CancellationToken cancellation)
    {
        int factor = _vaeConfig.DownscaleFactor;
        int h = hires.Height / factor, w = hires.Width / factor, channels = firstPass.Dim(3);
        int coverH = (hires.CoverHeight ?? hires.Height) / factor, coverW = (hires.CoverWidth ?? hires.Width) / factor;
        Scheduler scheduler = NewHiresScheduler(request, hires);
        int start = scheduler.FirstStep;
        var run = new DenoisingRun(scheduler, start, Tensor.Allocate([1, h, w, channels]), noise, times);
        try
        {
            using Tensor covering = hires.ImageUpscaler is not null || hires.ModelUpscaler is not null
                ? UpscalePicture(firstPass, coverH, coverW, hires, pictureNoise, times, cancellation)
                : UpscaleLatents(firstPass, coverH, coverW, hires.Upscaler);
            using Tensor upscaled = Tensor.Allocate([1, h, w, channels]);
            // A1111's samples[:, :, ty // 2 : H - (ty + 1) // 2, tx // 2 : W - (tx + 1) // 2] for excesses tx, ty.
            int top = (coverH - h) / 2, left = (coverW - w) / 2;
            for (int y = 0; y < h; y++)
            {
                covering.Span.Slice(((top + y) * coverW + left) * channels, w * channels).CopyTo(upscaled.Span.Slice(y * w * channels, w * channels));
            }
            using Tensor startNoise = DrawNhwc(noise, 1, h, w, channels, start: true);
            scheduler.AddNoise(upscaled.Span, startNoise.Span, start, run.Latents.Span);
            return run;
        }
        catch
        {
            run.Dispose();
            throw;
        }
    }

    /// <summary>A1111's latent upscalers: the first pass's latents resized to h x w by F.interpolate's mode.</summary>
    private static Tensor UpscaleLatents(Tensor firstPass, int h, int w, InterpolationMode mode)
    {
        int channels = firstPass.Dim(3);
        Tensor upscaled = Tensor.Allocate([1, h, w, channels]);
        Interpolation.Resize(firstPass.Data, upscaled.Data, 1, firstPass.Dim(1), firstPass.Dim(2), h, w, channels, mode);
        return upscaled;
    }

    /// <summary>
    /// A1111's image- and model-upscaler path: the first pass decoded, upscaled as a picture to the cover size
    /// (<see cref="ImageUpscaling"/>), encoded again, and its posterior sampled (one draw of <paramref name="noise"/>).
    /// </summary>
    private Tensor UpscalePicture(Tensor firstPass, int h, int w, HiresFix hires, INoiseSource noise, PhaseTimes times, CancellationToken cancellation)
    {
        int factor = _vaeConfig.DownscaleFactor;
        using Tensor decoded = Decode(firstPass, times, cancellation);
        using Tensor picture = hires.ModelUpscaler is { } model
            ? ImageUpscaling.Upscale(decoded, h * factor, w * factor, model, cancellation)
            : ImageUpscaling.Upscale(decoded, h * factor, w * factor, hires.ImageUpscaler!.Value);
        (Tensor Mean, Tensor LogVar) moments = Encode(picture, h, w, times, cancellation);
        using (moments.Mean)
        using (moments.LogVar)
        {
            return ImageLatents(moments, noise, h, w);
        }
    }
}
