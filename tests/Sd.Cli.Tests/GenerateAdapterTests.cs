using Sd.Cli.Commands;
using Sd.Loaders.Png;
using Sd.Loaders.Tests;

namespace Sd.Cli.Tests;

/// <summary>
/// <c>sd generate --adapter</c> on the small fixture model with a random T2I-Adapter of its shape (the numerics are the
/// engine tests'): it steers the picture, its factor and scale reach the run, it is recorded, and its flags go together.
/// </summary>
public sealed class GenerateAdapterTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string[] Common() =>
        ["--model", Fixtures.Path("small/model"), "--prompt", "a cat", "--steps", "2", "--width", "64", "--height", "48", "--seed", "7"];

    private string Sketch()
    {
        string path = _dir.File("sketch.png");
        var pixels = new byte[40 * 30 * 3];
        new Random(3).NextBytes(pixels);
        PngFile.Write(path, new PngImage(40, 30, 3, pixels));
        return path;
    }

    [FixtureFact]
    public void An_adapter_steers_the_picture_and_is_recorded()
    {
        string adapter = SmallAdapter.Write(_dir.File("small-adapter")), sketch = Sketch();
        string plain = _dir.File("plain.png"), steered = _dir.File("steered.png"), off = _dir.File("off.png"), early = _dir.File("early.png");
        Assert.Equal(0, GenerateCommand.Run([.. Common(), "--out", plain], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run([.. Common(), "--adapter", adapter, "--adapter-image", sketch, "--adapter-scale", "0.7", "--out", steered], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run([.. Common(), "--adapter", adapter, "--adapter-image", sketch, "--adapter-scale", "0", "--out", off], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run([.. Common(), "--adapter", adapter, "--adapter-image", sketch, "--adapter-scale", "0.7", "--adapter-factor", "0.5",
            "--out", early], TextWriter.Null));
        PngImage a = PngFile.Read(plain), b = PngFile.Read(steered), c = PngFile.Read(off), d = PngFile.Read(early);
        Assert.False(a.Pixels.AsSpan().SequenceEqual(b.Pixels), "the adapter changed nothing");
        Assert.True(a.Pixels.AsSpan().SequenceEqual(c.Pixels), "an adapter at scale 0 changed the picture");
        Assert.False(b.Pixels.AsSpan().SequenceEqual(d.Pixels), "--adapter-factor 0.5 changed nothing");
        Assert.EndsWith("ControlNet 0: \"Module: none, Model: small-adapter, Weight: 0.7, Resize Mode: Just Resize, Guidance Start: 0, Guidance End: 0.5\"",
            d.Text["parameters"]);
    }

    [FixtureFact]
    public void Adapter_flags_go_together()
    {
        string png = _dir.File("x.png"), adapter = SmallAdapter.Write(_dir.File("small-adapter")), sketch = Sketch();
        static string Refused(string[] args) => Assert.Throws<UsageException>(() => GenerateCommand.Run(args, TextWriter.Null)).Message;
        Assert.Contains("--adapter-image goes with --adapter", Refused([.. Common(), "--adapter-image", sketch, "--out", png]));
        Assert.Contains("--adapter-factor goes with --adapter", Refused([.. Common(), "--adapter-factor", "0.5", "--out", png]));
        Assert.Contains("2 --adapter need as many --adapter-image (one each, in order), got 1",
            Refused([.. Common(), "--adapter", adapter, "--adapter", adapter, "--adapter-image", sketch, "--out", png]));
        Assert.Contains("--adapter-scale is given 2 times; give it once (for every T2I-Adapter) or once per --adapter (1)",
            Refused([.. Common(), "--adapter", adapter, "--adapter-image", sketch, "--adapter-scale", "1", "--adapter-scale", "2", "--out", png]));
        Assert.Contains("--adapter-factor is the fraction of the steps the adapters steer, from 0 to 1, got 2",
            Refused([.. Common(), "--adapter", adapter, "--adapter-image", sketch, "--adapter-factor", "2", "--out", png]));
        Assert.False(File.Exists(png));
    }
}
