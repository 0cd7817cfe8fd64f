using Sd.Engine.Imaging;
using Sd.Engine.Pipelines;
using Sd.Loaders.Png;
using Sd.Loaders.Tests;

namespace Sd.Engine.Tests;

/// <summary>
/// The README's library example, compiled and run here (on the tiny fixture model); a second test keeps the README's
/// text identical to this code, so the documentation cannot drift from an API that compiles.
/// </summary>
public sealed class ReadmeExampleTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private const string Example = """
        using var pipe = StableDiffusionPipeline.Load("path/to/model");        // folder or .safetensors
        using GenerateResult result = pipe.Generate(
            new GenerateRequest { Prompt = "a castle on a hill", Steps = 20, Scheduler = "dpm++-2m", Seed = 42 },
            new Progress<StepInfo>(s => Console.WriteLine($"{s.Step}/{s.Total}")), CancellationToken.None);
        PngFile.Write("castle.png", ImageConversion.ToRgb8(result.Image, 0));
        """;

    [FixtureFact]
    public void The_readme_example_compiles_and_runs()
    {
        string model = Fixtures.Path("tiny/model");
        string png = _dir.File("castle.png");
        // The example, with the model path and output file pointed at test locations (and a smaller size).
        using var pipe = StableDiffusionPipeline.Load(model);        // folder or .safetensors
        using GenerateResult result = pipe.Generate(
            new GenerateRequest { Prompt = "a castle on a hill", Steps = 20, Scheduler = "dpm++-2m", Seed = 42, Width = 64, Height = 64 },
            new Progress<StepInfo>(s => Console.WriteLine($"{s.Step}/{s.Total}")), CancellationToken.None);
        PngFile.Write(png, ImageConversion.ToRgb8(result.Image, 0));
        Assert.Equal(64, PngFile.Read(png).Width);
    }

    [Fact]
    public void The_readme_shows_exactly_this_example()
    {
        string readme = File.ReadAllText(Path.Combine(Fixtures.RepositoryRoot ?? throw new DirectoryNotFoundException($"no Engine.sln above {Fixtures.BinariesFolder}"), "README.md"));
        Assert.Contains(Example.Replace("\r\n", "\n"), readme.Replace("\r\n", "\n"));
    }
}
