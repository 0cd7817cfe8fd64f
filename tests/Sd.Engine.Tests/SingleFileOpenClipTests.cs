using System.Runtime.InteropServices;
using Sd.Engine.Text;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Npy;
using Sd.Loaders.Tests;
using Xunit.Abstractions;

namespace Sd.Engine.Tests;

/// <summary>
/// A text encoder stored as an SD 2.x single file stores it: OpenCLIP keys (cond_stage_model.model.*), q, k and v
/// fused into one in_proj per layer, and a text_projection. Loaded through
/// <see cref="ModelSource"/> with the fixture folder as its config (as <c>--config DIR</c> gives it), it must give
/// transformers' outputs for the fixture prompts, and the folder model's bit for bit.
/// </summary>
public sealed class SingleFileOpenClipTests(ITestOutputHelper output) : IDisposable
{
    private const double Tolerance = 1e-5;

    // text_projection.
    private const int IgnoredTensors = 1;

    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [FixtureTheory]
    [InlineData("tiny")]
    [InlineData("small")]
    public void Open_clip_keys_give_transformers_outputs_and_the_folder_models_exactly(string name)
    {
        string folderPath = Fixtures.Path($"{name}/model");
        using ModelSource folder = ModelSource.Open(folderPath);
        string path = _dir.File($"{name}-openclip.safetensors");
        OpenClipKeyExporter.Write(folder, path);
        using ModelSource single = ModelSource.Open(path, new ModelOpenOptions { ConfigDirectory = folderPath });
        Assert.Equal([ModelComponent.TextEncoder], single.Components);
        Assert.Empty(single.UnexpectedKeys);
        Assert.Equal(IgnoredTensors, single.IgnoredKeyCount);
        using var fromSingle = new ClipTextModel(single.TextEncoder!, single.Weights(ModelComponent.TextEncoder));
        using var fromFolder = new ClipTextModel(folder.TextEncoder!, folder.Weights(ModelComponent.TextEncoder));
        string refDir = Fixtures.Path($"{name}/ref/clip");
        NpyArray ids = NpyFile.Read(Path.Combine(refDir, "input_ids.npy"));

        using ClipTextOutput actual = fromSingle.Encode(ids.ToInt64(), ids.Shape[0]);
        using ClipTextOutput reference = fromFolder.Encode(ids.ToInt64(), ids.Shape[0]);

        float[] expected = NpyFile.Read(Path.Combine(refDir, "last_hidden_state.npy")).ToFloat32();
        output.WriteLine(Compare.AssertClose(expected, actual.Hidden.Span, Tolerance, $"{name} last_hidden_state (OpenCLIP single file)"));
        Assert.True(MemoryMarshal.Cast<float, int>(reference.Hidden.Span).SequenceEqual(MemoryMarshal.Cast<float, int>(actual.Hidden.Span)),
            $"{name}: single-file and folder text encoders differ, max abs {Compare.MaxAbs(reference.Hidden.Span, actual.Hidden.Span):E2}");
    }
}
