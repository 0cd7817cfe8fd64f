using Sd.Engine.Schedulers;
using Sd.Engine.Tensors;
using Sd.Engine.Vae;

namespace Sd.Engine.Pipelines;

// img2img's start: the init picture's latents, noised to the step its strength starts at.
public sealed unsafe partial class StableDiffusionPipeline
{
    /// <summary>
    /// img2img (diffusers StableDiffusionImg2ImgPipeline): the picture's posterior sample (first noise draw) times the
    /// scaling factor, noised to the schedule's start (second draw) by the scheduler's add_noise, then the last
    /// int(steps x strength) steps of the schedule.
    /// </summary>
    private DenoisingRun PrepareImageToImage(GenerateRequest request, Tensor init, INoiseSource noise, PictureMoments pictures, int h, int w,
        PhaseTimes times, CancellationToken cancellation)
    {
        CheckPicture(init, request, 3, "init image");
        int channels = _unetConfig.InChannels;
        Scheduler scheduler = NewScheduler(request, SkippedSteps(request));
        int start = scheduler.FirstStep;
        var run = new DenoisingRun(scheduler, start, Tensor.Allocate([1, h, w, channels]), noise, times);
        try
        {
            using Tensor x0 = ImageLatents(pictures.GetOrEncode(PictureKind.Init, () => Encode(init, h, w, times, cancellation)), noise, h, w);
            using Tensor startNoise = DrawNhwc(noise, 1, h, w, channels, start: true);
            if (start < scheduler.StepCount)
            {
                scheduler.AddNoise(x0.Span, startNoise.Span, start, run.Latents.Span);
            }
            else
            {
                x0.Span.CopyTo(run.Latents.Span);
            }
            return run;
        }
        catch
        {
            run.Dispose();
            throw;
        }
    }

    /// <summary>Checks an init image (or mask) is [1, Height, Width, channels].</summary>
    private static void CheckPicture(Tensor picture, GenerateRequest request, int channels, string what)
    {
        if (picture.Rank != 4 || picture.Dim(0) != 1 || picture.Dim(1) != request.Height || picture.Dim(2) != request.Width || picture.Dim(3) != channels)
        {
            throw new ArgumentException($"the {what} must be [1, {request.Height}, {request.Width}, {channels}], got {picture}", nameof(request));
        }
    }

    /// <summary>diffusers get_timesteps: the inference steps a run of the given strength skips.</summary>
    private int SkippedSteps(GenerateRequest request)
    {
        if (!(request.Strength >= 0 && request.Strength <= 1))
        {
            throw new ArgumentException($"strength must be in [0, 1], got {request.Strength}", nameof(request));
        }
        int steps = StepsOf(request);
        int initSteps = Math.Min((int)(steps * request.Strength), steps);
        return Math.Max(steps - initSteps, 0);
    }

    /// <summary>
    /// scaling_factor x a posterior sample (one noise draw) of a picture's VAE moments, as _encode_vae_image; the
    /// moments come from <see cref="PictureMoments"/>, so a batch encodes each picture once.
    /// </summary>
    private Tensor ImageLatents((Tensor Mean, Tensor LogVar) moments, INoiseSource noise, int h, int w)
    {
        int channels = _vaeConfig.LatentChannels;
        using Tensor draw = DrawNhwc(noise, 1, h, w, channels);
        Tensor latents = Tensor.Allocate([1, h, w, channels]);
        AutoencoderKL.SamplePosterior(moments.Mean, moments.LogVar, draw, latents);
        float scaling = (float)_vaeConfig.ScalingFactor;
        for (long i = 0; i < latents.Length; i++) latents.Data[i] *= scaling;
        return latents;
    }

    /// <summary>The VAE encoder's posterior moments (mean, log-variance) of a picture.</summary>
    private (Tensor Mean, Tensor LogVar) Encode(Tensor image, int h, int w, PhaseTimes times, CancellationToken cancellation)
    {
        int channels = _vaeConfig.LatentChannels;
        Tensor mean = Tensor.Allocate([1, h, w, channels]);
        Tensor logvar = Tensor.Allocate([1, h, w, channels]);
        AutoencoderKL vae = Acquire(_vae, times);
        try
        {
            vae.Encode(image, mean, logvar, cancellation);
            return (mean, logvar);
        }
        catch
        {
            mean.Dispose();
            logvar.Dispose();
            throw;
        }
        finally
        {
            vae.ReleaseRunBuffers();
        }
    }
}
