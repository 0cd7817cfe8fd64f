using System.Runtime.InteropServices;
using Sd.Engine.UNet;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Tests;
using Xunit.Abstractions;

namespace Sd.Engine.Tests;

/// <summary>
/// A UNet loaded from an original-layout single-file checkpoint (model.diffusion_model.*, first_stage_model.*,
/// cond_stage_model.transformer.*) through <see cref="ModelSource"/>, as <c>sd unet --model file.safetensors --config
/// DIR</c> loads it: every fixture UNet case must match diffusers, and equal the folder-loaded UNet bit for bit. The files
/// are the fixture models written by the test exporter with their stored dtypes (small: F16 UNet, BF16 text, F32 VAE).
/// </summary>
public sealed class SingleFileUNetTests(SingleFileCheckpoints checkpoints, ITestOutputHelper output) : IClassFixture<SingleFileCheckpoints>
{
    private const double Tolerance = 1e-4;

    [FixtureTheory]
    [MemberData(nameof(UNetTests.Cases), MemberType = typeof(UNetTests))]
    public void Noise_prediction_matches_diffusers_and_the_folder_model_exactly(string model, string caseName)
    {
        string folderPath = Fixtures.Path($"{model}/model");
        using ModelSource folder = ModelSource.Open(folderPath);
        // A single file stores no head count and the shapes do not fix it, so without configs ConfigInference assumes
        // an SD 1.x/2.x model (8 heads, or 64-wide heads), which the fixtures are not (tiny: 8 heads of 4 and 8
        // channels; small: 2 heads). As a user of such a checkpoint would, the test gives the model's own diffusers
        // folder as the config folder (sd unet --config DIR); the bit-exact comparison below checks the key mapping.
        using ModelSource single = ModelSource.Open(checkpoints.PathFor(model), new ModelOpenOptions { ConfigDirectory = folderPath });
        Assert.Equal(ModelSourceKind.SingleFile, single.Kind);
        Assert.Empty(single.InferredSettings);
        Assert.Equal(folder.UNet!.NumAttentionHeads, single.UNet!.NumAttentionHeads);
        using var fromSingle = new UNet2DConditionModel(single.UNet, single.Weights(ModelComponent.Unet));
        using var fromFolder = new UNet2DConditionModel(folder.UNet, folder.Weights(ModelComponent.Unet));
        using UNetCase unetCase = UNetCase.Load(model, caseName);

        float[] actual = unetCase.Run(fromSingle);
        float[] reference = unetCase.Run(fromFolder);

        output.WriteLine(Compare.AssertClose(unetCase.Expected, actual, Tolerance, $"{unetCase.Name} (single file)"));
        Assert.True(MemoryMarshal.Cast<float, int>(reference).SequenceEqual(MemoryMarshal.Cast<float, int>(actual)),
            $"{unetCase.Name}: single-file and folder UNets differ, max abs {Compare.MaxAbs(reference, actual):E2}");
    }
}

/// <summary>Each fixture model written once as a single-file checkpoint, in a scratch folder of the test class.</summary>
public sealed class SingleFileCheckpoints : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly Dictionary<string, string> _paths = new();

    public string PathFor(string model)
    {
        lock (_paths)
        {
            if (!_paths.TryGetValue(model, out string? path))
            {
                path = _dir.File($"{model}.safetensors");
                using ModelSource folder = ModelSource.Open(Fixtures.Path($"{model}/model"));
                LdmKeyExporter.Write(folder, path);
                _paths.Add(model, path);
            }
            return path;
        }
    }

    public void Dispose() => _dir.Dispose();
}
