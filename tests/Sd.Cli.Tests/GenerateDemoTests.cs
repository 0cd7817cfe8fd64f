using Sd.Cli.Commands;
using Sd.Loaders.Png;
using Sd.Loaders.Tests;

namespace Sd.Cli.Tests;

/// <summary>
/// <c>sd generate</c> without <c>--model</c>, the README's first command on a fresh machine: the built-in demo model,
/// no fixtures needed, and a notice that the picture is noise and how to get real ones.
/// </summary>
public sealed class GenerateDemoTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Without_a_model_the_demo_writes_a_png_and_says_it_is_noise()
    {
        string png = _dir.File("castle.png");
        var output = new StringWriter();
        Assert.Equal(0, GenerateCommand.Run(["--prompt", "a castle on a hill", "--steps", "2", "--width", "128", "--height", "64",
            "--seed", "7", "--out", png], output));

        string text = output.ToString();
        Assert.StartsWith(GenerateCommand.DemoNotice, text);
        Assert.Contains("Its output is noise", text);
        Assert.Contains("point --model at a Stable Diffusion 1.x/2.x", text);
        Assert.Contains($"wrote {png} (seed 7)", text);
        PngImage picture = PngFile.Read(png);
        Assert.Equal((128, 64), (picture.Width, picture.Height));
        Assert.Contains("Model: built-in demo", picture.Text["parameters"]);
    }

    [Fact]
    public void Without_steps_or_a_scheduler_the_models_defaults_run_and_are_recorded()
    {
        string png = _dir.File("defaults.png");
        var output = new StringWriter();
        Assert.Equal(0, GenerateCommand.Run(["--prompt", "a boat", "--width", "64", "--height", "64", "--seed", "3", "--out", png], output));
        Assert.Contains("step 20/20", output.ToString());
        Assert.Contains("Steps: 20, Sampler: Euler a, CFG scale: 7.5,", PngFile.Read(png).Text["parameters"]);
        Assert.Equal(0, GenerateCommand.Run(["--prompt", "a boat", "--width", "64", "--height", "64", "--steps", "3", "--guidance", "2",
            "--out", png], TextWriter.Null));
        Assert.Contains("Steps: 3, Sampler: Euler a, CFG scale: 2,", PngFile.Read(png).Text["parameters"]);
    }

    [Fact]
    public void A_batch_count_writes_one_png_per_seed_with_numbered_names()
    {
        string png = _dir.File("batch.png"), latents = _dir.File("batch.npy");
        var output = new StringWriter();
        Assert.Equal(0, GenerateCommand.Run(["--prompt", "a boat", "--steps", "2", "--width", "64", "--height", "64", "--seed", "11",
            "--batch-count", "3", "--out", png, "--out-latents", latents], output));

        string text = output.ToString();
        for (int i = 0; i < 3; i++)
        {
            string path = _dir.File($"batch-{i + 1}.png");
            Assert.Contains($"wrote {path} (seed {11 + i})", text);
            Assert.Contains($"Seed: {11 + i},", PngFile.Read(path).Text["parameters"]);
            Assert.True(File.Exists(_dir.File($"batch-{i + 1}.npy")));
        }
        Assert.False(File.Exists(png));
        Assert.False(File.Exists(latents));
        Assert.Contains("image 3/3, step 2/2", text);
    }

    [Fact]
    public void Batch_and_thread_counts_are_bounded_and_replayed_draws_refused()
    {
        string png = _dir.File("y.png");
        Assert.Contains("must be in [1, 256], got 0", Assert.Throws<UsageException>(() =>
            GenerateCommand.Run(["--prompt", "p", "--out", png, "--batch-count", "0"], TextWriter.Null)).Message);
        Assert.Contains("must be in [1, 256], got 100000", Assert.Throws<UsageException>(() =>
            GenerateCommand.Run(["--prompt", "p", "--out", png, "--batch-count", "100000"], TextWriter.Null)).Message);
        Assert.Contains("--threads must be in [1, 1024], got 2147483647", Assert.Throws<UsageException>(() =>
            GenerateCommand.Run(["--prompt", "p", "--out", png, "--threads", "2147483647"], TextWriter.Null)).Message);
        Assert.Contains("--batch-count 1", Assert.Throws<UsageException>(() =>
            GenerateCommand.Run(["--prompt", "p", "--out", png, "--batch-count", "2", "--noise-dir", _dir.File("n")], TextWriter.Null)).Message);
        Assert.False(File.Exists(png));
    }

    [Fact]
    public void Model_file_options_without_a_model_are_a_usage_error()
    {
        string png = _dir.File("x.png");
        var e = Assert.Throws<UsageException>(() => GenerateCommand.Run(["--prompt", "p", "--out", png, "--tokenizer", "t"], TextWriter.Null));
        Assert.Contains("--tokenizer", e.Message);
        Assert.Throws<UsageException>(() => GenerateCommand.Run(["--prompt", "p", "--out", png, "--variant", "fp16"], TextWriter.Null));
        Assert.False(File.Exists(png));
    }
}
