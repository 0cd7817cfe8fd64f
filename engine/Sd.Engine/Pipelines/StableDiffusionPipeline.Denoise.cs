using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Sd.Engine.Adapters;
using Sd.Engine.Schedulers;
using Sd.Engine.Tensors;
using Sd.Engine.UNet;
using Sd.Kernels.Elementwise;

namespace Sd.Engine.Pipelines;

// The denoising loop: UNet calls, classifier-free guidance (with diffusers' rescale) and scheduler steps.
public sealed unsafe partial class StableDiffusionPipeline
{
    /// <summary>
    /// One image's denoising loop: the run's steps, classifier-free guidance and the scheduler over its latents;
    /// <paramref name="adapter"/> holds the pass's T2I-Adapter features (<see cref="AdapterFeaturesFor"/>), if any;
    /// <paramref name="imagePrompts"/> the request's IP-Adapters with their pictures encoded, if any;
    /// <paramref name="hires"/> says it is a hires fix's second pass.
    /// </summary>
    private void Denoise(DenoisingRun run, PromptContexts contexts, GenerateRequest request, AdapterFeatures? adapter, IpAdapterPass? imagePrompts,
        bool hires, int image, int images, IProgress<StepInfo>? progress, CancellationToken cancellation)
    {
        Tensor latents = run.Latents;
        int batch = contexts.Context.Dim(0); // [uncond, cond, ...] when guided, else [cond]
        int h = latents.Dim(1), w = latents.Dim(2), channels = latents.Dim(3);
        int inputChannels = channels + (run.Conditioning?.Dim(3) ?? 0);
        // The guidance and the scheduler read the prediction as latent-sized: a UNet of other widths cannot run here.
        if (_unetConfig.InChannels != inputChannels || _unetConfig.OutChannels != channels)
        {
            throw new NotSupportedException($"the UNet maps {_unetConfig.InChannels} to {_unetConfig.OutChannels} channels; " +
                $"this generation needs {inputChannels} to {channels}");
        }
        UNet2DConditionModel unet = Acquire(_unet, run.Times);
        using Tensor unetInput = Tensor.Allocate([batch, h, w, inputChannels]);
        using Tensor prediction = Tensor.Allocate([batch, h, w, channels]);
        // The scaled latents, concatenated with the conditioning into each UNet input row (9-channel inpainting only).
        using Tensor? scaled = run.Conditioning is null ? null : Tensor.Allocate([1, h, w, channels]);
        float guidance = GuidanceOf(request);
        float[] condition = _unetConfig.TimeCondProjDim is { } condDim ? GuidanceScaleEmbedding.Compute(guidance, condDim) : [];
        // A1111's combine_denoised: each conditioned row adds (cond - uncond) x (weight x scale), its float32 factor.
        float[] partScales = Array.ConvertAll(contexts.PartWeights, weight => (float)(weight * guidance));
        bool guided = UsesClassifierFreeGuidance(request);
        using ControlNetPass? control = ControlNetPass.Create(request.ControlNets, unetInput, channels, contexts.Context, guided, _vaeConfig.DownscaleFactor, hires);
        ImagePrompt[]? prompts = imagePrompts?.Prompts(batch, guided, h, w, _vaeConfig.DownscaleFactor);
        var steps = new StepLoop(unet, contexts, unetInput, scaled, prediction, guidance, partScales, request.GuidanceRescale, condition, image, images,
            control, adapter, request.AdapterConditioningFactor, prompts, guided);
        try
        {
            RunSteps(run, steps, progress, cancellation);
        }
        finally
        {
            unet.ReleaseRunBuffers();
            control?.ReleaseRunBuffers();
            foreach (ImagePrompt prompt in prompts ?? []) prompt.Dispose();
        }
    }

    /// <summary>The request's T2I-Adapter features for a pass over <paramref name="latents"/> (one image's): made once per pass, for every image.</summary>
    private AdapterFeatures? AdapterFeaturesFor(GenerateRequest request, Tensor latents) =>
        T2IAdapterUnit.Run(request.Adapters, latents.Dim(2) * _vaeConfig.DownscaleFactor, latents.Dim(1) * _vaeConfig.DownscaleFactor);

    /// <summary>
    /// Whether the UNet runs on cat([latents] * 2), unconditioned and conditioned, mixed by the guidance scale: as in
    /// diffusers, when the scale is above 1 and the UNet is not LCM-distilled (which takes the scale as its input).
    /// </summary>
    private bool UsesClassifierFreeGuidance(GenerateRequest request) => GuidanceOf(request) > 1 && _unetConfig.TimeCondProjDim == null;

    /// <summary>
    /// What every step of one image's denoising shares: the UNet, its buffers, the guidance (the scale of each
    /// conditioned row, the guidance scale for one prompt; an LCM-distilled UNet's as its timestep condition, empty for
    /// others), the batch position, the ControlNets, the T2I-Adapters' features and the fraction of the steps they get,
    /// and the IP-Adapters' conditions.
    /// </summary>
    private sealed record StepLoop(UNet2DConditionModel UNet, PromptContexts Prompts, Tensor UNetInput, Tensor? Scaled, Tensor Prediction,
        float Guidance, float[] PartScales, float Rescale, float[] Condition, int Image, int Images, ControlNetPass? Control,
        AdapterFeatures? Adapter, double AdapterFactor, ImagePrompt[]? ImagePrompts, bool Guided);

    private void RunSteps(DenoisingRun run, StepLoop loop, IProgress<StepInfo>? progress, CancellationToken cancellation)
    {
        (Scheduler scheduler, int start, Tensor latents) = (run.Scheduler, run.Start, run.Latents);
        Tensor prediction = loop.Prediction;
        int batch = loop.UNetInput.Dim(0), h = latents.Dim(1), w = latents.Dim(2), channels = latents.Dim(3);
        long count = latents.Length;
        var guidedOutput = new float[count];
        var timestep = new float[1];
        var clock = Stopwatch.StartNew();
        // diffusers' adapter loop: step i of n gets the features when i < int(n x adapter_conditioning_factor).
        int adapterSteps = (int)((scheduler.StepCount - start) * loop.AdapterFactor);
        float[] DrawNoise(int index)
        {
            using Tensor drawn = DrawNhwc(run.Noise, 1, h, w, channels);
            return drawn.Span.ToArray();
        }
        for (int step = start; step < scheduler.StepCount; step++)
        {
            cancellation.ThrowIfCancellationRequested();
            FillUNetInput(scheduler, step, latents, run.Conditioning, loop.Scaled, loop.UNetInput);
            timestep[0] = scheduler.Timesteps[step];
            loop.Prompts.Select(step - start); // A1111 counts the calls of the run (img2img's too) from 0
            ControlResiduals? control = loop.Control?.Run(step - start, scheduler.StepCount - start, loop.UNetInput, loop.Scaled, timestep,
                loop.Prompts.Context, loop.Prompts.Lengths, loop.Guided, cancellation);
            loop.UNet.Forward(loop.UNetInput, timestep, loop.Prompts.Context, loop.Prompts.Lengths, prediction, loop.Condition, control,
                step - start < adapterSteps ? loop.Adapter : null, loop.ImagePrompts, cancellation);
            Guide(prediction.Data, batch, count, loop.PartScales, guidedOutput);
            if (batch == 2 && loop.Rescale > 0)
            {
                RescaleGuidance(guidedOutput, new ReadOnlySpan<float>(prediction.Data + count, (int)count), loop.Rescale);
            }
            scheduler.Step(guidedOutput, step, latents.Span, DrawNoise);
            if (!Tensor.AllFinite(latents.Span))
            {
                throw new ArithmeticException($"the latents overflowed float32 at step {step + 1 - start} of {scheduler.StepCount - start}: " +
                    OverflowCause(guidedOutput, batch > 1, loop.Guidance, loop.Rescale, timestep[0]));
            }
            run.AfterStep?.Invoke(step);
            progress?.Report(new StepInfo(run.CallsBefore + step + 1 - start, run.CallsBefore + scheduler.StepCount - start + run.CallsAfter,
                run.ElapsedBefore + clock.Elapsed, loop.Image, loop.Images));
            _logger.LogDebug("Step {Step}/{Total} (t = {Timestep}) of image {Image}/{Images} at {Seconds:F2} s", step + 1 - start,
                scheduler.StepCount - start, timestep[0], loop.Image + 1, loop.Images, clock.Elapsed.TotalSeconds);
        }
    }

    /// <summary>
    /// Every batch row of the UNet input: the scaled latents, then (9-channel inpainting) the conditioning channels,
    /// as diffusers' cat([scale_model_input(cat([latents] * 2)), mask, masked_image_latents], dim=1).
    /// </summary>
    private static void FillUNetInput(Scheduler scheduler, int step, Tensor latents, Tensor? conditioning, Tensor? scaled, Tensor unetInput)
    {
        int batch = unetInput.Dim(0), count = (int)latents.Length;
        if (conditioning is null || scaled is null)
        {
            for (int b = 0; b < batch; b++)
            {
                scheduler.ScaleModelInput(step, latents.Span, unetInput.Span.Slice(b * count, count));
            }
            return;
        }
        scheduler.ScaleModelInput(step, latents.Span, scaled.Span);
        int pixels = latents.Dim(1) * latents.Dim(2), imageLength = pixels * unetInput.Dim(3);
        for (int b = 0; b < batch; b++)
        {
            ResizeKernels.ConcatChannels(scaled.Data, scaled.Dim(3), conditioning.Data, conditioning.Dim(3), unetInput.Data + (long)b * imageLength, pixels);
        }
    }

    /// <summary>
    /// diffusers rescale_noise_cfg: cfg' = r (cfg x std(text) / std(cfg)) + (1 - r) cfg, standard deviations unbiased
    /// (torch.std) over the whole latent of the single image.
    /// </summary>
    internal static void RescaleGuidance(Span<float> guided, ReadOnlySpan<float> text, float rescale)
    {
        double factor = StandardDeviation(text) / StandardDeviation(guided);
        for (int i = 0; i < guided.Length; i++)
        {
            float rescaled = (float)(guided[i] * factor);
            guided[i] = rescale * rescaled + (1 - rescale) * guided[i];
        }
    }

    private static double StandardDeviation(ReadOnlySpan<float> values)
    {
        double mean = 0;
        foreach (float v in values) mean += v;
        mean /= values.Length;
        double sum = 0;
        foreach (float v in values) sum += (v - mean) * (v - mean);
        return Math.Sqrt(sum / Math.Max(1, values.Length - 1));
    }

    /// <summary>
    /// Classifier-free guidance (A1111's combine_denoised, diffusers' for one prompt): the unconditioned prediction
    /// (row 0) plus each conditioned row's difference from it times its scale, accumulated in row order; one row is
    /// the prediction itself.
    /// </summary>
    private static void Guide(float* predicted, int batch, long count, float[] partScales, float[] guided)
    {
        if (batch == 1)
        {
            new ReadOnlySpan<float>(predicted, (int)count).CopyTo(guided);
            return;
        }
        for (long i = 0; i < count; i++)
        {
            float uncond = predicted[i], sum = uncond;
            for (int part = 0; part < partScales.Length; part++)
            {
                sum += (predicted[(part + 1) * count + i] - uncond) * partScales[part];
            }
            guided[i] = sum;
        }
    }

    /// <summary>
    /// Why a step's latents stopped being finite. The UNet checks its own outputs, so either guidance blew its
    /// predictions up (they leave the range any noise or sample prediction has) or the scheduler's arithmetic did.
    /// </summary>
    private static string OverflowCause(ReadOnlySpan<float> guided, bool guidedBatch, float guidance, float rescale, float timestep)
    {
        const float PredictionRange = 1e4f;
        float largest = 0f;
        foreach (float v in guided)
        {
            largest = float.IsFinite(v) ? Math.Max(largest, Math.Abs(v)) : float.PositiveInfinity;
        }
        return guidedBatch && largest > PredictionRange
            ? $"guidance scale {guidance} (rescale {rescale}) is too large for this model's predictions (the guided ones reach {largest:G3})"
            : $"the scheduler's step at timestep {timestep} produced them from predictions of at most {largest:G3}";
    }
}
