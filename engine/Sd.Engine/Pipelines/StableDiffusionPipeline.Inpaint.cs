using Sd.Engine.Schedulers;
using Sd.Engine.Tensors;
using Sd.Kernels.Elementwise;

namespace Sd.Engine.Pipelines;

/// <summary>
/// Inpainting as diffusers StableDiffusionInpaintPipeline (0.27) runs it, for both kinds of UNet. A 4-channel UNet
/// denoises the whole picture and the kept area is blended back after every step. A 9-channel inpainting UNet
/// (runwayml/stable-diffusion-inpainting) is given the mask and the masked picture's latents beside the latents at
/// every step, and nothing is blended. The generator draws keep diffusers' order, so a seed reproduces its run:
/// <list type="table">
/// <item><term>4 channels</term><description>picture posterior; latent noise (unless latents are given); masked-picture posterior (unused)</description></item>
/// <item><term>9, latents given</term><description>masked-picture posterior</description></item>
/// <item><term>9, strength 1</term><description>latent noise; masked-picture posterior</description></item>
/// <item><term>9, strength &lt; 1</term><description>picture posterior; latent noise; masked-picture posterior</description></item>
/// </list>
/// then the scheduler's draws.
/// </summary>
public sealed unsafe partial class StableDiffusionPipeline
{
    /// <summary>Input channels of an inpainting UNet: latents, mask, masked-picture latents (4 + 1 + 4 for SD).</summary>
    private int InpaintChannels => 2 * _vaeConfig.LatentChannels + 1;

    private DenoisingRun PrepareInpaint(GenerateRequest request, Tensor init, Tensor mask, INoiseSource noise, PictureMoments pictures,
        int h, int w, PhaseTimes times, CancellationToken cancellation)
    {
        bool concatenates = CheckInpaint(request, init, mask, h, w);
        int skipped = SkippedSteps(request), steps = StepsOf(request);
        if (skipped >= steps)
        {
            // diffusers refuses it too; a run of no steps would also ask the scheduler for a timestep past its last.
            throw new ArgumentException($"strength {request.Strength} leaves no step of {steps} to run", nameof(request));
        }
        int channels = _vaeConfig.LatentChannels;
        float[] latentMask = LatentMask(mask, h, w);
        Scheduler scheduler = NewScheduler(request, skipped);
        int start = scheduler.FirstStep;
        var run = new DenoisingRun(scheduler, start, Tensor.Allocate([1, h, w, channels]), noise, times);
        try
        {
            Tensor startNoise = run.Own(Tensor.Allocate([1, h, w, channels]))!;
            Tensor? imageLatents = run.Own(PrepareLatents(request, init, scheduler, noise, pictures, start, returnImageLatents: !concatenates,
                latentMask, run.Latents, startNoise, times, cancellation));
            run.Conditioning = run.Own(MaskLatents(init, mask, latentMask, noise, pictures, concatenates, h, w, times, cancellation));
            if (!concatenates && imageLatents is not null)
            {
                Tensor proper = run.Own(Tensor.Allocate([1, h, w, channels]))!, latents = run.Latents;
                run.AfterStep = step => Blend(scheduler, step, imageLatents, startNoise, latentMask, proper, latents);
            }
            return run;
        }
        catch
        {
            run.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Checks the UNet, the pictures and the given latents before any work; true for a 9-channel UNet (the mask and
    /// masked-picture latents are concatenated to its input), false for a 4-channel one (blending).
    /// </summary>
    private bool CheckInpaint(GenerateRequest request, Tensor init, Tensor mask, int h, int w)
    {
        int channels = _vaeConfig.LatentChannels, unetChannels = _unetConfig.InChannels;
        // diffusers: in_channels 9 must be latents + mask + masked-picture latents, and only 4 or 9 can inpaint.
        if (unetChannels != channels && unetChannels != InpaintChannels)
        {
            throw new NotSupportedException($"inpainting needs a UNet with {channels} input channels (latents) or {InpaintChannels} " +
                $"(latents, mask and masked-picture latents: {channels} + 1 + {channels}); this one takes {unetChannels}");
        }
        CheckPicture(init, request, 3, "init image");
        CheckPicture(mask, request, 1, "mask");
        if (!Tensor.AllFinite(mask.Span))
        {
            throw new ArgumentException("the mask contains NaN or infinity", nameof(request));
        }
        long count = (long)channels * h * w;
        if (request.InitialLatents is { } given && given.Length != count)
        {
            throw new ArgumentException($"initial latents hold {given.Length} values, [1, {channels}, {h}, {w}] needs {count}", nameof(request));
        }
        return unetChannels == InpaintChannels;
    }

    /// <summary>
    /// diffusers prepare_latents: fills the starting latents and the noise they come from (given latents are that
    /// noise), and returns the picture's latents (one posterior draw, before the noise draw) when they are encoded:
    /// always for blending, else only for a run below strength 1 from drawn noise, the one case that starts from the
    /// noised picture, its masked latents filled first by <see cref="GenerateRequest.MaskedLatents"/>. Every other case
    /// starts from noise x init_noise_sigma, given latents at any strength too.
    /// </summary>
    private Tensor? PrepareLatents(GenerateRequest request, Tensor init, Scheduler scheduler, INoiseSource noise, PictureMoments pictures,
        int start, bool returnImageLatents, float[] latentMask, Tensor latents, Tensor startNoise, PhaseTimes times, CancellationToken cancellation)
    {
        int h = latents.Dim(1), w = latents.Dim(2), channels = latents.Dim(3);
        bool fromPicture = request.InitialLatents is null && request.Strength < 1;
        Tensor? imageLatents = returnImageLatents || fromPicture
            ? ImageLatents(pictures.GetOrEncode(PictureKind.Init, () => Encode(init, h, w, times, cancellation)), noise, h, w)
            : null;
        try
        {
            if (request.InitialLatents is { } given)
            {
                ToNhwc(given, startNoise.Data, channels, h * w);
            }
            else
            {
                using Tensor drawn = DrawNhwc(noise, 1, h, w, channels, start: true);
                drawn.Span.CopyTo(startNoise.Span);
            }
            if (fromPicture && imageLatents is not null)
            {
                FillMasked(request.MaskedLatents, imageLatents, startNoise, latentMask);
                scheduler.AddNoise(imageLatents.Span, startNoise.Span, start, latents.Span);
            }
            else
            {
                for (long i = 0; i < latents.Length; i++) latents.Data[i] = startNoise.Data[i] * scheduler.InitNoiseSigma;
            }
            return imageLatents;
        }
        catch
        {
            imageLatents?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A1111's latent noise and latent nothing: the picture's latents under the mask become the start draw or zeros
    /// (A1111: init_latent x mask + noise x nmask, and init_latent x mask, on its rounded latent mask). The blend of a
    /// 4-channel UNet reads only the unmasked latents, so filling them in place leaves it the picture's.
    /// </summary>
    private static void FillMasked(MaskedLatents fill, Tensor imageLatents, Tensor startNoise, float[] latentMask)
    {
        if (fill == MaskedLatents.Picture)
        {
            return;
        }
        int channels = imageLatents.Dim(3);
        for (long i = 0; i < imageLatents.Length; i++)
        {
            if (latentMask[i / channels] != 0)
            {
                imageLatents.Data[i] = fill == MaskedLatents.Noise ? startNoise.Data[i] : 0f;
            }
        }
    }

    /// <summary>
    /// diffusers prepare_mask_latents: [1, h, w, 1 + latent channels] rows of the latent mask and scaling_factor x a
    /// posterior sample (one draw) of the picture with the repainted area zeroed, image x (mask &lt; 0.5). diffusers
    /// encodes the masked picture for a 4-channel UNet too, which never uses it: there only the draw is made (null).
    /// </summary>
    private Tensor? MaskLatents(Tensor init, Tensor mask, float[] latentMask, INoiseSource noise, PictureMoments pictures, bool concatenates,
        int h, int w, PhaseTimes times, CancellationToken cancellation)
    {
        int channels = _vaeConfig.LatentChannels;
        if (!concatenates)
        {
            noise.Next(new float[channels * h * w]);
            return null;
        }
        (Tensor Mean, Tensor LogVar) moments = pictures.GetOrEncode(PictureKind.Masked, () =>
        {
            using Tensor masked = MaskedPicture(init, mask);
            return Encode(masked, h, w, times, cancellation);
        });
        using Tensor maskedLatents = ImageLatents(moments, noise, h, w);
        Tensor conditioning = Tensor.Allocate([1, h, w, 1 + channels]);
        fixed (float* m = latentMask)
        {
            ResizeKernels.ConcatChannels(m, 1, maskedLatents.Data, channels, conditioning.Data, h * w);
        }
        return conditioning;
    }

    /// <summary>The picture with the repainted area zeroed, image x (mask &lt; 0.5).</summary>
    private static Tensor MaskedPicture(Tensor init, Tensor mask)
    {
        Tensor masked = Tensor.Allocate(init.Shape);
        int pictureChannels = init.Dim(3);
        for (long i = 0; i < masked.Length; i++)
        {
            // A product, as diffusers computes it (so the zeroed values carry the same signs).
            masked.Data[i] = init.Data[i] * (mask.Data[i / pictureChannels] < 0.5f ? 1f : 0f);
        }
        return masked;
    }

    /// <summary>
    /// 4-channel UNet, after a step: the latents outside the mask become the picture's latents noised to the next
    /// timestep (the clean latents after the last step).
    /// </summary>
    private static void Blend(Scheduler scheduler, int step, Tensor imageLatents, Tensor startNoise, float[] latentMask, Tensor proper, Tensor latents)
    {
        if (step < scheduler.StepCount - 1)
        {
            scheduler.AddNoise(imageLatents.Span, startNoise.Span, step + 1, proper.Span);
        }
        else
        {
            imageLatents.Span.CopyTo(proper.Span);
        }
        int channels = latents.Dim(3);
        for (long i = 0; i < latents.Length; i++)
        {
            float m = latentMask[i / channels];
            latents.Data[i] = (1 - m) * proper.Data[i] + m * latents.Data[i];
        }
    }

    /// <summary>The mask binarized at 0.5 and resized to the latents (nearest, PyTorch's index rule): one value per latent pixel.</summary>
    private static float[] LatentMask(Tensor mask, int h, int w)
    {
        int height = mask.Dim(1), width = mask.Dim(2);
        var result = new float[h * w];
        for (int y = 0; y < h; y++)
        {
            int sy = ResizeKernels.NearestIndex(y, height, h);
            for (int x = 0; x < w; x++)
            {
                int sx = ResizeKernels.NearestIndex(x, width, w);
                result[y * w + x] = mask.Data[(long)sy * width + sx] >= 0.5f ? 1f : 0f;
            }
        }
        return result;
    }
}
