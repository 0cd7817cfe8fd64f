using Sd.Loaders.Config;
using Sd.Loaders.Safetensors;

namespace Sd.Loaders.Tests;

/// <summary>
/// Configs for single-file checkpoints (<see cref="ModelOpenOptions.ConfigDirectory"/>): what inference guesses is
/// reported, a config folder replaces it, and a config that does not fit the tensors fails at open, naming itself.
/// The checkpoints are the fixture models written as single files, which are not SD 1.x/2.x-shaped, so every guess
/// about them is wrong.
/// </summary>
public sealed class SingleFileConfigTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private string SingleFile(string model)
    {
        string path = _dir.File($"{model}.safetensors");
        if (!File.Exists(path))
        {
            using ModelSource folder = ModelSource.Open(Fixtures.Path($"{model}/model"));
            LdmKeyExporter.Write(folder, path);
        }
        return path;
    }

    private static InferredSetting Guess(ModelSource model, string component, string setting) =>
        Assert.Single(model.InferredSettings, g => g.Component == component && g.Setting == setting);

    [FixtureFact]
    public void Without_a_config_folder_the_guesses_are_listed_and_flagged_as_likely_wrong()
    {
        using ModelSource single = ModelSource.Open(SingleFile("tiny"));
        // tiny: 8 UNet heads, 4 CLIP heads and quick_gelu in its configs; a 32-wide text context matches no SD family.
        Assert.Equal([1, 1], single.UNet!.NumAttentionHeads);
        InferredSetting heads = Guess(single, "unet", "attention heads");
        Assert.Equal("[1, 1]", heads.Value);
        Assert.Contains("likely wrong", heads.Basis);
        Assert.Equal("1", Guess(single, "text_encoder", "attention heads").Value);
        Assert.Equal("gelu", Guess(single, "text_encoder", "hidden_act").Value);
        Assert.Contains("likely wrong", Guess(single, "text_encoder", "hidden_act").Basis);
        Assert.Equal("0.18215", Guess(single, "vae", "scaling factor").Value);
        Assert.StartsWith("PNDMScheduler", Guess(single, "scheduler", "scheduler").Value);
        Assert.Equal(6, single.InferredSettings.Count); // and the VAE's sample size
        Assert.Null(single.ConfigDirectory);
        Assert.Null(single.Tokenizer);
    }

    [Theory]
    [InlineData(768, "epsilon")]
    [InlineData(1024, "v_prediction")]
    public void The_scheduler_guess_follows_diffusers_for_sd1_and_sd2_files(int context, string prediction)
    {
        // diffusers' from_single_file: an SD 2.x file without global_step is the 768-px v model.
        var guesses = new List<InferredSetting>();
        SchedulerConfig scheduler = ConfigInference.Scheduler(new UNetConfig { CrossAttentionDim = [context, context, context, context] }, guesses);
        Assert.Equal(prediction, scheduler.PredictionType);
        Assert.Equal(ConfigInference.Sd1Scheduler with { PredictionType = prediction }, scheduler);
        Assert.Contains($"{prediction} prediction", Assert.Single(guesses).Value);
    }

    [FixtureTheory]
    [InlineData("tiny")]
    [InlineData("small")]
    public void A_config_folder_replaces_every_guess_and_brings_its_tokenizer(string model)
    {
        string configs = Fixtures.Path($"{model}/model");
        using ModelSource folder = ModelSource.Open(configs);
        using ModelSource single = ModelSource.Open(SingleFile(model), new ModelOpenOptions { ConfigDirectory = configs });
        Assert.Empty(single.InferredSettings);
        Assert.Equal(configs, single.ConfigDirectory);
        Assert.Equal(folder.UNet!.NumAttentionHeads, single.UNet!.NumAttentionHeads);
        Assert.Equal(folder.UNet.SampleSize, single.UNet.SampleSize);
        Assert.Equal(folder.TextEncoder, single.TextEncoder);
        Assert.Equal(folder.Scheduler, single.Scheduler);
        Assert.Equal(folder.Vae!.SampleSize, single.Vae!.SampleSize);
        Assert.Equal(Path.Combine(configs, "tokenizer"), single.Tokenizer!.Directory);

        // An explicit tokenizer folder wins over the config folder's.
        string other = Fixtures.Path($"{(model == "tiny" ? "small" : "tiny")}/model/tokenizer");
        using ModelSource withTokenizer = ModelSource.Open(SingleFile(model), new ModelOpenOptions { ConfigDirectory = configs, TokenizerDirectory = other });
        Assert.Equal(other, withTokenizer.Tokenizer!.Directory);
    }

    [FixtureFact]
    public void A_partial_config_folder_replaces_only_its_components_and_heads_are_free()
    {
        string configs = _dir.File("configs");
        Directory.CreateDirectory(Path.Combine(configs, "text_encoder"));
        Directory.CreateDirectory(Path.Combine(configs, "unet"));
        File.Copy(Fixtures.Path("tiny/model/text_encoder/config.json"), Path.Combine(configs, "text_encoder", "config.json"));
        // Head counts are not in the shapes: any that divides the channels fits (tiny's own is 8).
        File.WriteAllText(Path.Combine(configs, "unet", "config.json"),
            File.ReadAllText(Fixtures.Path("tiny/model/unet/config.json")).Replace("\"attention_head_dim\": 8", "\"attention_head_dim\": 4"));

        using ModelSource single = ModelSource.Open(SingleFile("tiny"), new ModelOpenOptions { ConfigDirectory = configs });
        Assert.Equal(4, single.TextEncoder!.NumAttentionHeads);
        Assert.Equal("quick_gelu", single.TextEncoder.HiddenAct);
        Assert.Equal([4, 4], single.UNet!.NumAttentionHeads);
        Assert.DoesNotContain(single.InferredSettings, g => g.Component is "text_encoder" or "unet");
        Assert.Contains(single.InferredSettings, g => g.Component == "vae");
        Assert.Contains(single.InferredSettings, g => g.Component == "scheduler");
        Assert.Null(single.Tokenizer); // the folder has no tokenizer/
    }

    [FixtureFact]
    public void A_config_that_does_not_fit_the_tensors_fails_at_open_naming_the_config()
    {
        // small's configs describe wider blocks and another text encoder than tiny's tensors.
        string small = Fixtures.Path("small/model");
        var e = Assert.Throws<InvalidFileException>(() => ModelSource.Open(SingleFile("tiny"), new ModelOpenOptions { ConfigDirectory = small }));
        Assert.Equal(Path.Combine(small, "unet", "config.json"), e.FilePath);
        Assert.Contains("does not fit the checkpoint's tensors", e.Problem);
        Assert.Contains("tiny.safetensors#unet", e.Problem);
        Assert.Contains("in the checkpoint,", e.Problem); // a shape difference, with both shapes

        // One layer fewer than the file has: the extra tensors are named.
        string configs = _dir.File("configs");
        Directory.CreateDirectory(Path.Combine(configs, "text_encoder"));
        string text = Path.Combine(configs, "text_encoder", "config.json");
        File.WriteAllText(text, File.ReadAllText(Fixtures.Path("tiny/model/text_encoder/config.json"))
            .Replace("\"num_hidden_layers\": 5", "\"num_hidden_layers\": 4"));
        e = Assert.Throws<InvalidFileException>(() => ModelSource.Open(SingleFile("tiny"), new ModelOpenOptions { ConfigDirectory = configs }));
        Assert.Equal(text, e.FilePath);
        Assert.Contains("'text_model.encoder.layers.4.", e.Problem);
        Assert.Contains("is in the checkpoint but not in the config's model", e.Problem);
    }

    [Fact]
    public void A_missing_or_empty_config_folder_is_refused()
    {
        var writer = new SafetensorsWriter();
        writer.AddFloat32("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight", [10, 64], new float[640]);
        writer.AddFloat32("cond_stage_model.transformer.text_model.embeddings.position_embedding.weight", [77, 64], new float[77 * 64]);
        writer.AddFloat32("cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight", [256, 64], new float[256 * 64]);
        string path = _dir.File("text.safetensors");
        writer.Save(path);

        Assert.Throws<DirectoryNotFoundException>(() => ModelSource.Open(path, new ModelOpenOptions { ConfigDirectory = _dir.File("nope") }));
        string empty = _dir.File("empty");
        Directory.CreateDirectory(Path.Combine(empty, "unet")); // a folder without config.json is no config
        var e = Assert.Throws<InvalidFileException>(() => ModelSource.Open(path, new ModelOpenOptions { ConfigDirectory = empty }));
        Assert.Equal(empty, e.FilePath);
        Assert.Contains("not a diffusers config folder", e.Problem);
    }

    [FixtureFact]
    public void A_diffusers_folder_model_refuses_a_config_folder()
    {
        string folder = Fixtures.Path("tiny/model");
        var e = Assert.Throws<ArgumentException>(() => ModelSource.Open(folder, new ModelOpenOptions { ConfigDirectory = folder }));
        Assert.Contains("single-file checkpoints only", e.Message);
    }
}
