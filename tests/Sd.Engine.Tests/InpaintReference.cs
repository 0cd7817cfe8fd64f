using Sd.Engine.Pipelines;
using Sd.Engine.Schedulers;
using Sd.Engine.Tensors;
using Sd.Engine.Text;
using Sd.Engine.UNet;
using Sd.Engine.Vae;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;

namespace Sd.Engine.Tests;

/// <summary>
/// diffusers StableDiffusionInpaintPipeline.__call__ (0.27) for a 9-channel UNet, transcribed step by step from the
/// engine's components and nothing of the pipeline: the checks of 9-channel inpainting, where no diffusers fixtures
/// exist. Guidance is on (batch [uncond, cond]), no guidance rescale. Tensors are NHWC; generator draws are NCHW
/// (PyTorch's order), transposed here by hand. A request's <see cref="GenerateRequest.MaskedLatents"/> fills the
/// picture's latents under the mask as A1111 does before they are noised.
/// </summary>
internal static class InpaintReference
{
    /// <summary>The final latents, NHWC [1, h, w, 4].</summary>
    public static float[] FinalLatents(string modelPath, GenerateRequest request, Tensor image, Tensor maskImage)
    {
        using ModelSource source = ModelSource.Open(modelPath);
        ClipTokenizer tokenizer = ClipTokenizer.Load(source.Tokenizer!);
        using var textEncoder = new ClipTextModel(source.TextEncoder!, source.Weights(ModelComponent.TextEncoder));
        using var unet = new UNet2DConditionModel(source.UNet!, source.Weights(ModelComponent.Unet));
        using var vae = new AutoencoderKL(source.Vae!, source.Weights(ModelComponent.Vae));
        int h = request.Height / vae.Factor, w = request.Width / vae.Factor, c = source.Vae!.LatentChannels, hw = h * w;
        float scaling = (float)source.Vae.ScalingFactor;
        var generator = new TorchNoise(request.Seed);

        // 3. _encode_prompt: cat([negative_prompt_embeds, prompt_embeds]).
        long[] ids = [.. tokenizer.EncodeForPipeline(request.NegativePrompt, out _), .. tokenizer.EncodeForPipeline(request.Prompt, out _)];
        using ClipTextOutput prompt = textEncoder.Encode(ids, 2);

        // 4-5. set_timesteps, get_timesteps: the last int(steps x strength) steps; is_strength_max = strength == 1.
        //    The request names its scheduler, steps and guidance: the reference does not restate the model's defaults.
        Scheduler scheduler = Scheduler.Create(request.Scheduler!, source.Scheduler!);
        int steps = request.Steps!.Value;
        // timesteps[t_start * order:] with set_begin_index: two calls per step for Heun and DPM2.
        int start = (steps - Math.Min((int)(steps * request.Strength), steps)) * scheduler.Order;
        scheduler.SetTimesteps(steps, start);
        bool strengthMax = request.Strength == 1f;

        // _encode_vae_image: scaling_factor x vae.encode(image).latent_dist.sample(generator).
        float[] Encode(Tensor picture)
        {
            using Tensor mean = Tensor.Allocate([1, h, w, c]);
            using Tensor logvar = Tensor.Allocate([1, h, w, c]);
            vae.Encode(picture, mean, logvar);
            using Tensor draw = Randn(generator, h, w, c);
            AutoencoderKL.SamplePosterior(mean, logvar, draw, draw);
            return [.. draw.Span.ToArray().Select(v => scaling * v)];
        }

        // 8 (made first: the latent fill reads the mask). mask_processor binarizes; masked_image = init_image *
        // (mask_condition < 0.5); prepare_mask_latents interpolates the mask (nearest: src = floor(dst * in / out)) and
        // encodes the masked image, after the latents' draws.
        int height = request.Height, width = request.Width;
        using Tensor masked = Tensor.Allocate([1, height, width, 3]);
        for (int p = 0; p < height * width; p++)
        {
            float binary = maskImage.Span[p] >= 0.5f ? 1f : 0f;
            for (int k = 0; k < 3; k++) masked.Span[p * 3 + k] = image.Span[p * 3 + k] * (binary < 0.5f ? 1f : 0f);
        }
        var mask = new float[hw];
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                int sy = Math.Min((int)MathF.Floor(y * ((float)height / h)), height - 1);
                int sx = Math.Min((int)MathF.Floor(x * ((float)width / w)), width - 1);
                mask[y * w + x] = maskImage.Span[sy * width + sx] >= 0.5f ? 1f : 0f;
            }
        }

        // 7. prepare_latents with return_image_latents = (in_channels == 4) = false.
        float[]? imageLatents = request.InitialLatents is null && !strengthMax ? Encode(image) : null;
        float[] latents = new float[hw * c];
        if (request.InitialLatents is { } given)
        {
            float[] noise = Transpose(given, h, w, c);
            for (int i = 0; i < latents.Length; i++) latents[i] = noise[i] * scheduler.InitNoiseSigma;
        }
        else
        {
            using Tensor noise = Randn(generator, h, w, c);
            if (strengthMax)
            {
                for (int i = 0; i < latents.Length; i++) latents[i] = noise.Span[i] * scheduler.InitNoiseSigma;
            }
            else
            {
                // A1111's latent noise and latent nothing on the init latents (init x mask + noise x nmask, init x mask),
                // here on the latent mask diffusers uses.
                for (int i = 0; i < latents.Length && request.MaskedLatents != MaskedLatents.Picture; i++)
                {
                    if (mask[i / c] == 1f) imageLatents![i] = request.MaskedLatents == MaskedLatents.Noise ? noise.Span[i] : 0f;
                }
                scheduler.AddNoise(imageLatents!, noise.Span, start, latents);
            }
        }

        float[] maskedLatents = Encode(masked);

        // 10. The loop: cat([scale_model_input(cat([latents] * 2)), mask, masked_image_latents], dim=1), CFG, step.
        using Tensor input = Tensor.Allocate([2, h, w, 2 * c + 1]);
        using Tensor prediction = Tensor.Allocate([2, h, w, c]);
        var scaled = new float[hw * c];
        var guided = new float[hw * c];
        for (int step = start; step < scheduler.StepCount; step++)
        {
            scheduler.ScaleModelInput(step, latents, scaled);
            for (int b = 0; b < 2; b++)
            {
                for (int p = 0; p < hw; p++)
                {
                    Span<float> row = input.Span.Slice((b * hw + p) * (2 * c + 1), 2 * c + 1);
                    for (int k = 0; k < c; k++) row[k] = scaled[p * c + k];
                    row[c] = mask[p];
                    for (int k = 0; k < c; k++) row[c + 1 + k] = maskedLatents[p * c + k];
                }
            }
            unet.Forward(input, [scheduler.Timesteps[step]], prompt.Hidden, prediction);
            for (int i = 0; i < guided.Length; i++)
            {
                float uncond = prediction.Span[i], text = prediction.Span[hw * c + i];
                guided[i] = uncond + request.GuidanceScale!.Value * (text - uncond);
            }
            scheduler.Step(guided, step, latents, _ =>
            {
                using Tensor draw = Randn(generator, h, w, c);
                return draw.Span.ToArray();
            });
        }
        return latents;
    }

    /// <summary>torch.randn([1, c, h, w], generator) as NHWC.</summary>
    private static Tensor Randn(INoiseSource generator, int h, int w, int c)
    {
        var nchw = new float[c * h * w];
        generator.Next(nchw);
        Tensor nhwc = Tensor.Allocate([1, h, w, c]);
        Transpose(nchw, h, w, c).CopyTo(nhwc.Span);
        return nhwc;
    }

    private static float[] Transpose(float[] nchw, int h, int w, int c)
    {
        var nhwc = new float[nchw.Length];
        for (int k = 0; k < c; k++)
        {
            for (int p = 0; p < h * w; p++) nhwc[p * c + k] = nchw[k * h * w + p];
        }
        return nhwc;
    }
}
