using Sd.Engine.Pipelines;
using Sd.Loaders;
using Sd.Loaders.Tests;

namespace Sd.Engine.Tests;

/// <summary>
/// Model folders whose components do not fit together: each config is valid alone, so only loading the pipeline
/// can see the mismatch. It must be refused there, naming the file, not at the first generate call.
/// </summary>
public sealed class ComponentMismatchTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>The tiny fixture model with one config key's value replaced.</summary>
    private string TinyWith(string configFile, string key, string oldValue, string newValue)
    {
        string tiny = Fixtures.Path("tiny/model");
        string directory = _dir.File("model");
        foreach (string file in Directory.GetFiles(tiny, "*", SearchOption.AllDirectories))
        {
            string target = Path.Combine(directory, Path.GetRelativePath(tiny, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        string path = Path.Combine(directory, configFile);
        string text = File.ReadAllText(path);
        string old = $"\"{key}\": {oldValue}";
        Assert.Contains(old, text);
        File.WriteAllText(path, text.Replace(old, $"\"{key}\": {newValue}"));
        return directory;
    }

    [FixtureFact]
    public void A_tokenizer_longer_than_the_text_encoders_positions_is_refused_at_load()
    {
        string model = TinyWith("tokenizer/tokenizer_config.json", "model_max_length", "77", "78");
        var e = Assert.Throws<InvalidFileException>(() => StableDiffusionPipeline.Load(model).Dispose());
        Assert.Contains("tokenizer_config.json", e.Message);
        Assert.Contains("model_max_length 78 exceeds the text encoder's 77 positions", e.Message);
    }

    [FixtureFact]
    public void A_text_encoder_narrower_than_the_unets_context_is_refused_at_load()
    {
        string model = TinyWith("unet/config.json", "cross_attention_dim", "32", "64");
        var e = Assert.Throws<InvalidFileException>(() => StableDiffusionPipeline.Load(model).Dispose());
        Assert.Contains(model, e.Message);
        Assert.Contains("hidden_size 32 does not match the UNet's cross_attention_dim 64", e.Message);
    }
}
