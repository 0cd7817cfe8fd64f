using Sd.Engine.Text;
using Sd.Kernels.Numerics;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Config;
using Sd.Loaders.Weights;
using Sd.Loaders.Tests;

namespace Sd.Engine.Tests;

/// <summary>
/// SD 2.x text encoders (OpenCLIP) use exact GELU where SD 1.x uses quick_gelu. Both paths are checked against an
/// independent double-precision implementation of the CLIP text transformer written here from the transformers
/// source, on the tiny fixture weights; and the long-prompt encoding against per-chunk encodings.
/// </summary>
public sealed class ClipActivationTests
{
    [FixtureTheory]
    [InlineData("quick_gelu")]
    [InlineData("gelu")]
    public void Both_activations_match_an_independent_double_precision_clip(string activation)
    {
        using ModelSource source = ModelSource.Open(Fixtures.Path("tiny/model"));
        ClipTextConfig config = source.TextEncoder! with { HiddenAct = activation };
        WeightSet weights = source.Weights(ModelComponent.TextEncoder);
        using var model = new ClipTextModel(config, weights);
        var ids = new long[2 * 77];
        var random = new Random(3);
        for (int i = 0; i < ids.Length; i++) ids[i] = random.Next(config.VocabSize);
        using ClipTextOutput output = model.Encode(ids, 2);
        double[] expected = ReferenceClip.Hidden(config, weights, ids, 2);
        float[] expectedFloat = Array.ConvertAll(expected, v => (float)v);
        Compare.AssertClose(expectedFloat, output.Hidden.Span, 1e-5, activation);
    }

    [FixtureFact]
    public void Gelu_and_quick_gelu_give_different_embeddings()
    {
        using ModelSource source = ModelSource.Open(Fixtures.Path("tiny/model"));
        WeightSet weights = source.Weights(ModelComponent.TextEncoder);
        var ids = new long[77];
        for (int i = 0; i < ids.Length; i++) ids[i] = 1000 + i;
        using var quick = new ClipTextModel(source.TextEncoder!, weights);
        using var exact = new ClipTextModel(source.TextEncoder! with { HiddenAct = "gelu" }, weights);
        using ClipTextOutput a = quick.Encode(ids, 1);
        using ClipTextOutput b = exact.Encode(ids, 1);
        Assert.True(Compare.RelativeL2(a.Hidden.Span, b.Hidden.Span) > 1e-4);
    }

    [FixtureFact]
    public void Long_prompts_encode_chunk_by_chunk_and_concatenate()
    {
        using ModelSource source = ModelSource.Open(Fixtures.Path("tiny/model"));
        using var model = new ClipTextModel(source.TextEncoder!, source.Weights(ModelComponent.TextEncoder));
        ClipTokenizer tokenizer = ClipTokenizer.Load(source.Tokenizer!);
        string prompt = string.Join(", ", Enumerable.Repeat("a highly detailed oil painting of a castle", 12));
        TokenizedPrompt tokenized = tokenizer.Tokenize(prompt, PromptSyntax.Chunked);
        IReadOnlyList<PromptChunk> chunks = tokenized.Chunks;
        Assert.True(chunks.Count >= 2);
        using ClipTextOutput joined = model.EncodePrompts([tokenized]);
        int width = model.Config.HiddenSize;
        Assert.Equal([1, 77 * chunks.Count, width], joined.Hidden.Shape.ToArray());
        Assert.Equal([77 * chunks.Count], joined.Lengths.ToArray());
        for (int c = 0; c < chunks.Count; c++)
        {
            using ClipTextOutput single = model.Encode(chunks[c].Ids, 1);
            Assert.True(single.Hidden.Span.SequenceEqual(joined.Hidden.Span.Slice(c * 77 * width, 77 * width)), $"chunk {c}");
            if (c == 0)
            {
                Assert.True(single.Pooled.Span.SequenceEqual(joined.Pooled.Span), "the first chunk's pooled output");
            }
        }
    }
}

/// <summary>The CLIP text transformer in plain double-precision loops (transformers' CLIPTextTransformer).</summary>
internal static class ReferenceClip
{
    public static double[] Hidden(ClipTextConfig config, WeightSet weights, long[] ids, int batch)
    {
        int w = config.HiddenSize, length = ids.Length / batch, heads = config.NumAttentionHeads, d = w / heads;
        double[] Get(string name) => Array.ConvertAll(Find(weights, name), v => (double)v);
        double[] tok = Get("text_model.embeddings.token_embedding.weight");
        double[] pos = Get("text_model.embeddings.position_embedding.weight");
        var h = new double[ids.Length * w];
        for (int i = 0; i < ids.Length; i++)
            for (int c = 0; c < w; c++)
                h[i * w + c] = tok[ids[i] * w + c] + pos[(i % length) * w + c];
        for (int layer = 0; layer < config.NumHiddenLayers; layer++)
        {
            string p = $"text_model.encoder.layers.{layer}.";
            double[] x = LayerNorm(h, w, Get(p + "layer_norm1.weight"), Get(p + "layer_norm1.bias"), config.LayerNormEps);
            double[] q = Linear(x, w, Get(p + "self_attn.q_proj.weight"), Get(p + "self_attn.q_proj.bias"), w);
            double[] k = Linear(x, w, Get(p + "self_attn.k_proj.weight"), Get(p + "self_attn.k_proj.bias"), w);
            double[] v = Linear(x, w, Get(p + "self_attn.v_proj.weight"), Get(p + "self_attn.v_proj.bias"), w);
            var attended = new double[h.Length];
            for (int b = 0; b < batch; b++)
            for (int head = 0; head < heads; head++)
            for (int i = 0; i < length; i++)
            {
                var scores = new double[i + 1]; // causal: keys 0..i
                double max = double.NegativeInfinity;
                for (int j = 0; j <= i; j++)
                {
                    double s = 0;
                    for (int c = 0; c < d; c++) s += q[((b * length) + i) * w + head * d + c] * k[((b * length) + j) * w + head * d + c];
                    scores[j] = s / Math.Sqrt(d);
                    max = Math.Max(max, scores[j]);
                }
                double sum = 0;
                for (int j = 0; j <= i; j++) sum += scores[j] = Math.Exp(scores[j] - max);
                for (int c = 0; c < d; c++)
                {
                    double acc = 0;
                    for (int j = 0; j <= i; j++) acc += scores[j] / sum * v[((b * length) + j) * w + head * d + c];
                    attended[((b * length) + i) * w + head * d + c] = acc;
                }
            }
            double[] o = Linear(attended, w, Get(p + "self_attn.out_proj.weight"), Get(p + "self_attn.out_proj.bias"), w);
            for (int i = 0; i < h.Length; i++) h[i] += o[i];
            x = LayerNorm(h, w, Get(p + "layer_norm2.weight"), Get(p + "layer_norm2.bias"), config.LayerNormEps);
            double[] f = Linear(x, w, Get(p + "mlp.fc1.weight"), Get(p + "mlp.fc1.bias"), config.IntermediateSize);
            for (int i = 0; i < f.Length; i++)
            {
                f[i] = config.HiddenAct == "gelu"
                    ? 0.5 * f[i] * (1 + VectorErf.Erf(f[i] / Math.Sqrt(2)))
                    : f[i] / (1 + Math.Exp(-1.702 * f[i]));
            }
            o = Linear(f, config.IntermediateSize, Get(p + "mlp.fc2.weight"), Get(p + "mlp.fc2.bias"), w);
            for (int i = 0; i < h.Length; i++) h[i] += o[i];
        }
        return LayerNorm(h, w, Get("text_model.final_layer_norm.weight"), Get("text_model.final_layer_norm.bias"), config.LayerNormEps);
    }

    private static float[] Find(WeightSet weights, string name) =>
        weights.TryGet(name, out TensorEntry entry) ? entry.ReadFloat32() : throw new KeyNotFoundException(name);

    private static double[] Linear(double[] x, int inFeatures, double[] weight, double[] bias, int outFeatures)
    {
        int rows = x.Length / inFeatures;
        var y = new double[rows * outFeatures];
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < outFeatures; o++)
            {
                double s = bias[o];
                for (int i = 0; i < inFeatures; i++) s += x[r * inFeatures + i] * weight[o * inFeatures + i];
                y[r * outFeatures + o] = s;
            }
        return y;
    }

    private static double[] LayerNorm(double[] x, int width, double[] gamma, double[] beta, double eps)
    {
        var y = new double[x.Length];
        for (int r = 0; r < x.Length / width; r++)
        {
            double mean = 0, variance = 0;
            for (int c = 0; c < width; c++) mean += x[r * width + c];
            mean /= width;
            for (int c = 0; c < width; c++) variance += Math.Pow(x[r * width + c] - mean, 2);
            variance /= width;
            for (int c = 0; c < width; c++) y[r * width + c] = (x[r * width + c] - mean) / Math.Sqrt(variance + eps) * gamma[c] + beta[c];
        }
        return y;
    }
}
