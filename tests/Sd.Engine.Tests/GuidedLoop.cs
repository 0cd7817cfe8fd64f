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
/// The pipeline's txt2img loop written out, for AUTOMATIC1111's prompt editing and AND: a bank of encoded texts
/// (zero-padded to the longest, with each one's tokens); each call's UNet batch rows ([uncond, cond_1, ...]) chosen by
/// the given rules, each attending to the tokens given for it; the guidance uncond + sum of (cond_k - uncond) x
/// float32(weight_k x scale), accumulated in order (A1111's combine_denoised); the scheduler's step.
/// </summary>
internal static class GuidedLoop
{
    /// <summary>A 64x64 request of the demo model in A1111's weighted syntax, guidance 7.5.</summary>
    public static GenerateRequest Request(string prompt, string negative, int steps, string scheduler, ulong seed) => new()
    {
        Prompt = prompt, NegativePrompt = negative, Steps = steps, Width = 64, Height = 64, Seed = seed,
        Scheduler = scheduler, GuidanceScale = 7.5f, PromptSyntax = PromptSyntax.Weighted,
    };

    /// <summary>A bank of texts: [texts, tokens, width] floats and each text's tokens.</summary>
    public sealed record Bank(float[] States, int Tokens, int Width, int[] Lengths);

    /// <summary>The texts encoded as ClipTextModel.EncodePrompts does (each chunk alone, weighted alone).</summary>
    public static Bank Encode(ModelSource demo, IReadOnlyList<TokenizedPrompt> texts)
    {
        using var encoder = new ClipTextModel(demo.TextEncoder!, demo.Weights(ModelComponent.TextEncoder));
        using ClipTextOutput encoded = encoder.EncodePrompts(texts, 0);
        return new Bank(encoded.Hidden.Span.ToArray(), encoded.Hidden.Dim(1), encoded.Hidden.Dim(2), encoded.Lengths.ToArray());
    }

    /// <summary><see cref="Latents(ModelSource, GenerateRequest, Bank, Func{int, int}[], Func{int, int}[], double[])"/> for
    /// texts tokenized in the request's syntax, each row attending to its text's own tokens.</summary>
    public static float[] Latents(ModelSource demo, GenerateRequest request, string[] texts, Func<int, int>[] rows, double[] weights)
    {
        ClipTokenizer tokenizer = ClipTokenizer.ByteLevel();
        Bank bank = Encode(demo, [.. texts.Select(t => tokenizer.Tokenize(t, request.PromptSyntax))]);
        return Latents(demo, request, bank, rows, [.. rows.Select(row => (Func<int, int>)(call => bank.Lengths[row(call)]))], weights);
    }

    /// <summary>The final NHWC latents of a 64x64 run of the demo model from the request's seed: row b of call c reads
    /// bank text rows[b](c) and attends to its first lengths[b](c) tokens.</summary>
    public static float[] Latents(ModelSource demo, GenerateRequest request, Bank bank, Func<int, int>[] rows, Func<int, int>[] lengths, double[] weights)
    {
        Scheduler scheduler = Scheduler.Create(request.Scheduler!, demo.Scheduler!);
        scheduler.SetTimesteps(request.Steps!.Value);
        var noise = new TorchNoise(request.Seed);
        float[] latents = Draw(noise, 8, 8);
        for (int i = 0; i < latents.Length; i++) latents[i] *= scheduler.InitNoiseSigma;
        return Run(demo, request, bank, rows, lengths, weights, scheduler, latents, 8, 8, noise);
    }

    /// <summary>
    /// The loop from the scheduler's first step over NHWC <paramref name="latents"/> of h x w (in place; returned):
    /// call c counts from 0 at that step, and the scheduler's draws come from <paramref name="noise"/>.
    /// </summary>
    public static float[] Run(ModelSource demo, GenerateRequest request, Bank bank, Func<int, int>[] rows, Func<int, int>[] lengths, double[] weights,
        Scheduler scheduler, float[] latents, int h, int w, INoiseSource noise)
    {
        using var unet = new UNet2DConditionModel(demo.UNet!, demo.Weights(ModelComponent.Unet));
        int tokens = bank.Tokens, width = bank.Width, row = tokens * width, batch = rows.Length;
        int count = h * w * 4;
        using Tensor input = Tensor.Allocate([batch, h, w, 4]);
        using Tensor output = Tensor.Allocate([batch, h, w, 4]);
        using Tensor context = Tensor.Allocate([batch, tokens, width]);
        float[] scales = Array.ConvertAll(weights, weight => (float)(weight * request.GuidanceScale!.Value));
        var guided = new float[count];
        for (int step = scheduler.FirstStep; step < scheduler.StepCount; step++)
        {
            int call = step - scheduler.FirstStep;
            for (int b = 0; b < batch; b++)
            {
                bank.States.AsSpan(rows[b](call) * row, row).CopyTo(context.Span.Slice(b * row, row));
                scheduler.ScaleModelInput(step, latents, input.Span.Slice(b * count, count));
            }
            int[] attended = [.. lengths.Select(length => length(call))];
            unet.Forward(input, [scheduler.Timesteps[step]], context, attended, output, []);
            for (int i = 0; i < count; i++)
            {
                float uncond = output.Span[i], sum = uncond;
                for (int k = 1; k < batch; k++) sum += (output.Span[k * count + i] - uncond) * scales[k - 1];
                guided[i] = sum;
            }
            scheduler.Step(guided, step, latents, _ => Draw(noise, h, w));
        }
        return latents;
    }

    /// <summary>The next NCHW [1, 4, h, w] draw of <paramref name="noise"/>, as NHWC.</summary>
    public static float[] Draw(INoiseSource noise, int h, int w)
    {
        var nchw = new float[4 * h * w];
        noise.Next(nchw);
        var nhwc = new float[nchw.Length];
        for (int ch = 0; ch < 4; ch++)
        {
            for (int p = 0; p < h * w; p++) nhwc[p * 4 + ch] = nchw[ch * h * w + p];
        }
        return nhwc;
    }
}
