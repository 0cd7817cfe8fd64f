using Sd.Engine.Text;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Config;
using Sd.Loaders.Npy;
using Sd.Loaders.Tests;
using Xunit.Abstractions;

namespace Sd.Engine.Tests;

/// <summary>
/// The text encoder against transformers' outputs for the 23 fixture prompts (tiny: F32 weights; small: BF16
/// weights, references computed from the exactly widened values in float32).
/// </summary>
public sealed class ClipTextModelTests(ITestOutputHelper output)
{
    private const double Tolerance = 1e-5;

    [FixtureTheory]
    [InlineData("tiny")]
    [InlineData("small")]
    public void Hidden_states_clip_skip_and_pooled_output_match_transformers(string name)
    {
        using ModelSource source = ModelSource.Open(Fixtures.Path($"{name}/model"));
        using var model = new ClipTextModel(source.TextEncoder!, source.Weights(ModelComponent.TextEncoder));
        string refDir = Fixtures.Path($"{name}/ref/clip");
        NpyArray ids = NpyFile.Read(Path.Combine(refDir, "input_ids.npy"));
        long[] tokens = ids.ToInt64();
        int batch = ids.Shape[0];

        using (ClipTextOutput result = model.Encode(tokens, batch))
        {
            float[] expected = NpyFile.Read(Path.Combine(refDir, "last_hidden_state.npy")).ToFloat32();
            output.WriteLine(Compare.AssertClose(expected, result.Hidden.Span, Tolerance, $"{name} last_hidden_state"));
            float[] pooled = NpyFile.Read(Path.Combine(refDir, "pooler_output.npy")).ToFloat32();
            output.WriteLine(Compare.AssertClose(pooled, result.Pooled.Span, Tolerance, $"{name} pooler_output"));
        }
        using (ClipTextOutput skipped = model.Encode(tokens, batch, clipSkip: 1))
        {
            float[] expected = NpyFile.Read(Path.Combine(refDir, "clip_skip1.npy")).ToFloat32();
            output.WriteLine(Compare.AssertClose(expected, skipped.Hidden.Span, Tolerance, $"{name} clip_skip1"));
        }
    }

    [FixtureFact]
    public void Bad_token_ids_and_shapes_are_refused()
    {
        using ModelSource source = ModelSource.Open(Fixtures.Path("tiny/model"));
        using var model = new ClipTextModel(source.TextEncoder!, source.Weights(ModelComponent.TextEncoder));
        Assert.Throws<ArgumentException>(() => model.Encode(new long[77] { 49408, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, 1));
        Assert.Throws<ArgumentException>(() => model.Encode(new long[78], 1));
        Assert.Throws<ArgumentException>(() => model.Encode(new long[77], 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Encode(new long[77], 1, clipSkip: 5));
        var negative = new long[77];
        negative[3] = -1;
        Assert.Throws<ArgumentException>(() => model.Encode(negative, 1));
    }

    [FixtureFact]
    public void Weights_that_do_not_match_the_config_are_refused_with_the_tensor_name()
    {
        using ModelSource source = ModelSource.Open(Fixtures.Path("tiny/model"));
        ClipTextConfig wrong = source.TextEncoder! with { IntermediateSize = 38 };
        var e = Assert.Throws<InvalidFileException>(() => new ClipTextModel(wrong, source.Weights(ModelComponent.TextEncoder)));
        Assert.Contains("mlp.fc1.weight", e.Message);
        ClipTextConfig fewer = source.TextEncoder! with { NumHiddenLayers = 4 };
        var unexpected = Assert.Throws<InvalidFileException>(() => new ClipTextModel(fewer, source.Weights(ModelComponent.TextEncoder)));
        Assert.Contains("unexpected", unexpected.Message);
    }
}
