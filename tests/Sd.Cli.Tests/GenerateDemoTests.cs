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
    public void Model_file_options_without_a_model_are_a_usage_error()
    {
        string png = _dir.File("x.png");
        var e = Assert.Throws<UsageException>(() => GenerateCommand.Run(["--prompt", "p", "--out", png, "--tokenizer", "t"], TextWriter.Null));
        Assert.Contains("--tokenizer", e.Message);
        Assert.Throws<UsageException>(() => GenerateCommand.Run(["--prompt", "p", "--out", png, "--variant", "fp16"], TextWriter.Null));
        Assert.False(File.Exists(png));
    }
}
