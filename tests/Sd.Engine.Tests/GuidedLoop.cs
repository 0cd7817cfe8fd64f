using Sd.Engine.Pipelines;
using Sd.Engine.Schedulers;
using Sd.Engine.Tensors;
using Sd.Engine.Text;
using Sd.Engine.UNet;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Layout;

namespace Sd.Engine.Tests;

/// <summary>
/// The pipeline's txt2img loop written out, as AUTOMATIC1111 runs prompt editing and AND: the texts encoded in one
/// batch (zero-padded to the longest); each call's UNet batch rows ([uncond, cond_1, ...]) chosen by the given rules,
/// each attending to its own text's tokens; the guidance uncond + sum of
/// (cond_k - uncond) x float32(weight_k x scale), accumulated in order (combine_denoised); the scheduler's step.
/// </summary>
internal static class GuidedLoop
{
    /// <summary>The final NHWC latents of a 64x64 run of the demo model from the request's seed.</summary>
    public static float[] Latents(ModelSource demo, GenerateRequest request, string[] texts, Func<int, int>[] rows, double[] weights)
    {
        ClipTokenizer tokenizer = ClipTokenizer.ByteLevel();
        using var encoder = new ClipTextModel(demo.TextEncoder!, demo.Weights(ModelComponent.TextEncoder));
        using var unet = new UNet2DConditionModel(demo.UNet!, demo.Weights(ModelComponent.Unet));
        using ClipTextOutput encoded = encoder.EncodePrompts([.. texts.Select(t => tokenizer.Tokenize(t, request.PromptSyntax))], 0);
        int tokens = encoded.Hidden.Dim(1), width = encoded.Hidden.Dim(2), row = tokens * width, batch = rows.Length;
        Scheduler scheduler = Scheduler.Create(request.Scheduler!, demo.Scheduler!);
        scheduler.SetTimesteps(request.Steps!.Value);
        const int h = 8, w = 8, c = 4, count = h * w * c;
        var nchw = new float[count];
        new TorchNoise(request.Seed).Next(nchw);
        var latents = new float[count];
        for (int ch = 0; ch < c; ch++)
        {
            for (int p = 0; p < h * w; p++) latents[p * c + ch] = nchw[ch * h * w + p] * scheduler.InitNoiseSigma;
        }
        using Tensor input = Tensor.Allocate([batch, h, w, c]);
        using Tensor output = Tensor.Allocate([batch, h, w, c]);
        using Tensor context = Tensor.Allocate([batch, tokens, width]);
        float[] scales = Array.ConvertAll(weights, weight => (float)(weight * request.GuidanceScale!.Value));
        var guided = new float[count];
        for (int call = 0; call < scheduler.StepCount; call++)
        {
            for (int b = 0; b < batch; b++)
            {
                encoded.Hidden.Span.Slice(rows[b](call) * row, row).CopyTo(context.Span.Slice(b * row, row));
                scheduler.ScaleModelInput(call, latents, input.Span.Slice(b * count, count));
            }
            int[] lengths = [.. rows.Select(r => encoded.Lengths[r(call)])];
            unet.Forward(input, [scheduler.Timesteps[call]], context, lengths, output, []);
            for (int i = 0; i < count; i++)
            {
                float uncond = output.Span[i], sum = uncond;
                for (int k = 1; k < batch; k++) sum += (output.Span[k * count + i] - uncond) * scales[k - 1];
                guided[i] = sum;
            }
            scheduler.Step(guided, call, latents, null);
        }
        return latents;
    }
}
