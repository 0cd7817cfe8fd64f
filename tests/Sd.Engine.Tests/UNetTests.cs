using Sd.Engine.Tensors;
using Sd.Engine.UNet;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Config;
using Sd.Loaders.Tests;
using Xunit.Abstractions;

namespace Sd.Engine.Tests;

/// <summary>
/// UNet2DConditionModel against diffusers for every fixture case: integer and float timesteps, one timestep per
/// image, non-square and odd (27x19) latents; tiny has F32 weights, small F16.
/// </summary>
public sealed class UNetTests(ITestOutputHelper output)
{
    private const double Tolerance = 1e-4;

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (string model in new[] { "tiny", "small" })
        {
            foreach (string c in UNetCase.Names)
            {
                data.Add(model, c);
            }
        }
        return data;
    }

    [FixtureTheory]
    [MemberData(nameof(Cases))]
    public void Noise_prediction_matches_diffusers(string model, string caseName) => Check(model, caseName, new UNetOptions());

    /// <summary>The same without stored Winograd weights: streamed Winograd, implicit GEMM on the smallest levels.</summary>
    [FixtureTheory]
    [InlineData("small", "odd_size")]
    [InlineData("small", "per_sample_t")]
    public void Noise_prediction_matches_diffusers_without_winograd(string model, string caseName) =>
        Check(model, caseName, new UNetOptions { WinogradBudgetBytes = 0 });

    private void Check(string model, string caseName, UNetOptions options)
    {
        using ModelSource source = ModelSource.Open(Fixtures.Path($"{model}/model"));
        using var unet = new UNet2DConditionModel(source.UNet!, source.Weights(ModelComponent.Unet), options);
        using UNetCase unetCase = UNetCase.Load(model, caseName);
        output.WriteLine(Compare.AssertClose(unetCase.Expected, unetCase.Run(unet), Tolerance, unetCase.Name));
    }

    [Fact]
    public void The_winograd_budget_picks_the_finest_levels_first()
    {
        UNetConfig sd15 = Sd.Loaders.Layout.Sd15.UNet;
        Assert.Equal([true, false, false, false], new UNetOptions().WinogradLevels(sd15));
        Assert.Equal([false, false, false, false], new UNetOptions { WinogradBudgetBytes = 0 }.WinogradLevels(sd15));
        Assert.Equal([true, true, true, true], new UNetOptions { WinogradBudgetBytes = long.MaxValue }.WinogradLevels(sd15));
        // 16-bit weights get the same default level; stored U costs them 14 bytes a weight against 12 for float32, so
        // the two finest levels (79.4M weights: 0.95 GB for float32, 1.11 GB for 16-bit) fit 1 GiB only as float32.
        Assert.Equal([true, false, false, false], new UNetOptions().WinogradLevels(sd15, sixteenBitWeights: true));
        Assert.Equal([true, true, false, false], new UNetOptions { WinogradBudgetBytes = 1L << 30 }.WinogradLevels(sd15));
        Assert.Equal([true, false, false, false], new UNetOptions { WinogradBudgetBytes = 1L << 30 }.WinogradLevels(sd15, sixteenBitWeights: true));
        Assert.Equal([true, true, false, false], new UNetOptions { WinogradBudgetBytes = 1200L << 20 }.WinogradLevels(sd15, sixteenBitWeights: true));
    }

    /// <summary>
    /// The cross-attention k|v projections are kept while the context's values stay the same: a repeated context
    /// gives bit-identical predictions, and a context changed in place (same buffer, new values) is projected again.
    /// </summary>
    [FixtureFact]
    public void A_repeated_context_reuses_its_projections_and_a_changed_one_does_not()
    {
        using ModelSource source = ModelSource.Open(Fixtures.Path("tiny/model"));
        using var unet = new UNet2DConditionModel(source.UNet!, source.Weights(ModelComponent.Unet));
        using var fresh = new UNet2DConditionModel(source.UNet!, source.Weights(ModelComponent.Unet));
        using Tensor sample = Tensor.Allocate([2, 8, 8, 4]);
        using Tensor context = Tensor.Allocate([2, 77, 32]);
        var random = new Random(7);
        Fill(sample.Span, random);
        float[] first = new float[context.Length], second = new float[context.Length];
        Fill(first, random);
        Fill(second, random);
        float[] timesteps = [500f];

        first.CopyTo(context.Span);
        float[] a = Predict(unet);
        float[] aAgain = Predict(unet);
        Assert.Equal(a, aAgain);
        second.CopyTo(context.Span);
        float[] b = Predict(unet);
        Assert.NotEqual(a, b);
        Assert.Equal(Predict(fresh), b);
        context.Span[context.Span.Length - 1] = first[^1] + 1; // one value changed
        float[] changed = Predict(unet);
        Assert.Equal(Predict(fresh), changed);
        first.CopyTo(context.Span);
        Assert.Equal(a, Predict(unet));

        float[] Predict(UNet2DConditionModel model)
        {
            using Tensor prediction = Tensor.Allocate([2, 8, 8, 4]);
            model.Forward(sample, timesteps, context, prediction);
            return prediction.Span.ToArray();
        }
    }

    /// <summary>Uniform values in [-1, 1).</summary>
    internal static void Fill(Span<float> values, Random random)
    {
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = (float)(random.NextDouble() * 2 - 1);
        }
    }

    [FixtureFact]
    public void Bad_inputs_are_refused_with_clear_errors()
    {
        using ModelSource source = ModelSource.Open(Fixtures.Path("tiny/model"));
        using var unet = new UNet2DConditionModel(source.UNet!, source.Weights(ModelComponent.Unet));
        using Tensor sample = Tensor.Allocate([1, 8, 8, 4]);
        using Tensor context = Tensor.Allocate([1, 77, 32]);
        using Tensor output = Tensor.Allocate([1, 8, 8, 4]);
        using Tensor wrongChannels = Tensor.Allocate([1, 8, 8, 3]);
        Assert.Contains("[N, H, W, 4]", Assert.Throws<ArgumentException>(() => unet.Forward(wrongChannels, [1f], context, output)).Message);
        using Tensor wrongContext = Tensor.Allocate([1, 77, 31]);
        Assert.Contains("context", Assert.Throws<ArgumentException>(() => unet.Forward(sample, [1f], wrongContext, output)).Message);
        Assert.Throws<ArgumentException>(() => unet.Forward(sample, [1f, 2f, 3f], context, output));
        sample.Span[17] = float.NaN;
        Assert.Contains("NaN", Assert.Throws<ArithmeticException>(() => unet.Forward(sample, [1f], context, output)).Message);
    }
}

/// <summary>
/// The UNet step allocates nothing once its run state exists (measured on the calling thread, which is where all
/// orchestration runs; kernels use native memory only).
/// </summary>
public sealed class UNetAllocationTests
{
    /// <param name="shorterFirst">The first image attends to 77 of the context's 154 tokens (prompts of different
    /// lengths: one attention problem per image).</param>
    [FixtureTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_forward_pass_allocates_no_managed_memory_after_the_first(bool shorterFirst)
    {
        using ModelSource source = ModelSource.Open(Fixtures.Path("tiny/model"));
        using var unet = new UNet2DConditionModel(source.UNet!, source.Weights(ModelComponent.Unet));
        using Tensor sample = Tensor.Allocate([2, 16, 16, 4]);
        using Tensor context = Tensor.Allocate([2, 154, 32]);
        using Tensor output = Tensor.Allocate([2, 16, 16, 4]);
        float[] timesteps = [999f, 10f];
        int[] lengths = shorterFirst ? [77, 154] : [];
        unet.Forward(sample, timesteps, context, lengths, output, []);
        unet.Forward(sample, timesteps, context, lengths, output, []);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 5; i++)
        {
            unet.Forward(sample, timesteps, context, lengths, output, []);
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
