using Sd.Cli.Commands;
using Sd.Loaders;
using Sd.Loaders.Config;
using Sd.Loaders.Layout;
using Sd.Loaders.Png;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Tests;

namespace Sd.Cli.Tests;

/// <summary>
/// <c>sd generate --ip-adapter</c> on the small fixture model with a random IP-Adapter of its shape and a tiny random
/// image encoder beside it, as h94 lays them out (the numerics are the engine tests'): the picture steers the run,
/// the scale reaches it, the unit is recorded, and the flags go together.
/// </summary>
public sealed class GenerateIpAdapterTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string[] Common() =>
        ["--model", Fixtures.Path("small/model"), "--prompt", "a cat", "--steps", "2", "--width", "64", "--height", "48", "--seed", "7"];

    /// <summary>A models folder for the small fixture UNet: ip-adapter.safetensors and image_encoder/ beside it.</summary>
    private string Adapter(ImageProjectionKind kind = ImageProjectionKind.Linear, string folder = "models")
    {
        UNetConfig unet = UNetConfig.Load(Fixtures.Path("small/model/unet/config.json"));
        return SmallIpAdapter.Write(_dir.File(folder), kind, unet.CrossAttentionDim[0], DiffusersLayout.CrossAttentionWidths(unet));
    }

    private string Picture()
    {
        string path = _dir.File("picture.png");
        var pixels = new byte[40 * 30 * 3];
        new Random(5).NextBytes(pixels);
        PngFile.Write(path, new PngImage(40, 30, 3, pixels));
        return path;
    }

    [FixtureFact]
    public void An_ip_adapter_steers_the_picture_and_is_recorded()
    {
        string adapter = Adapter(), picture = Picture();
        string steered = _dir.File("a.png"), off = _dir.File("b.png"), plain = _dir.File("c.png");
        Assert.Equal(0, GenerateCommand.Run([.. Common(), "--ip-adapter", adapter, "--ip-adapter-image", picture, "--ip-adapter-scale", "0.8", "--out", steered], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run([.. Common(), "--ip-adapter", adapter, "--ip-adapter-image", picture, "--ip-adapter-scale", "0", "--out", off], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run([.. Common(), "--out", plain], TextWriter.Null));
        PngImage a = PngFile.Read(steered), b = PngFile.Read(off), c = PngFile.Read(plain);
        Assert.False(a.Pixels.AsSpan().SequenceEqual(b.Pixels), "the IP-Adapter changed nothing");
        // Scale 0 adds zero attention: the run is the plain one.
        Assert.True(b.Pixels.AsSpan().SequenceEqual(c.Pixels), "scale 0 changed the run");
        Assert.Contains("ControlNet 0: \"Module: ip-adapter_clip_sd15, Model: ip-adapter, Weight: 0.8, Resize Mode: Crop and Resize, Guidance Start: 0, Guidance End: 1\"",
            a.Text["parameters"]);
    }

    [FixtureFact]
    public void A_folder_of_pictures_is_one_adapters_pictures_attended_together()
    {
        string adapter = Adapter(ImageProjectionKind.Resampler), picture = Picture();
        var other = new byte[24 * 36 * 3];
        new Random(6).NextBytes(other);
        string one = _dir.File("one"), two = _dir.File("two"), empty = _dir.File("empty");
        foreach (string folder in new[] { one, two, empty }) Directory.CreateDirectory(folder);
        File.Copy(picture, Path.Combine(one, "a.png"));
        File.WriteAllText(Path.Combine(one, ".hidden"), "not a picture, not read");
        File.Copy(picture, Path.Combine(two, "a.png"));
        PngFile.Write(Path.Combine(two, "b.png"), new PngImage(24, 36, 3, other));
        byte[] Run(string pictures)
        {
            string png = _dir.File($"run-{Path.GetFileName(pictures)}.png");
            Assert.Equal(0, GenerateCommand.Run([.. Common(), "--ip-adapter", adapter, "--ip-adapter-image", pictures, "--out", png], TextWriter.Null));
            return PngFile.Read(png).Pixels;
        }
        byte[] single = Run(picture);
        Assert.Equal(single, Run(one));
        Assert.NotEqual(single, Run(two));
        Assert.Equal($"generate: --ip-adapter-image folder '{empty}' holds 0 pictures; an IP-Adapter takes 1 to 16",
            Assert.Throws<UsageException>(() => Run(empty)).Message);
        File.WriteAllText(Path.Combine(two, "notes.txt"), "not a picture");
        Assert.Contains(Path.Combine(two, "notes.txt"), Assert.Throws<InvalidFileException>(() => Run(two)).Message);
    }

    [FixtureFact]
    public void Masks_confine_each_picture_and_are_recorded()
    {
        string adapter = Adapter(ImageProjectionKind.Resampler), picture = Picture();
        string pictures = _dir.File("pictures"), black = _dir.File("black"), halves = _dir.File("halves");
        foreach (string folder in new[] { pictures, black, halves }) Directory.CreateDirectory(folder);
        File.Copy(picture, Path.Combine(pictures, "1.png"));
        File.Copy(picture, Path.Combine(pictures, "2.png"));
        for (int i = 1; i <= 2; i++)
        {
            PngFile.Write(Path.Combine(black, $"{i}.png"), new PngImage(16, 12, 1, new byte[16 * 12]));
            var half = new byte[16 * 12];
            for (int p = 0; p < half.Length; p++) half[p] = (byte)((p % 16 < 8) == (i == 1) ? 255 : 0); // left, then right
            PngFile.Write(Path.Combine(halves, $"{i}.png"), new PngImage(16, 12, 1, half));
        }
        PngImage Run(params string[] extra)
        {
            string png = _dir.File($"masked-{Guid.NewGuid():N}.png");
            Assert.Equal(0, GenerateCommand.Run([.. Common(), .. extra, "--out", png], TextWriter.Null));
            return PngFile.Read(png);
        }
        byte[] plain = Run().Pixels, together = Run("--ip-adapter", adapter, "--ip-adapter-image", pictures).Pixels;
        // Masks black everywhere weight every picture's attention by 0: the run without the adapter, to the bit.
        Assert.Equal(plain, Run("--ip-adapter", adapter, "--ip-adapter-image", pictures, "--ip-adapter-mask", black).Pixels);
        PngImage masked = Run("--ip-adapter", adapter, "--ip-adapter-image", pictures, "--ip-adapter-mask", halves);
        Assert.NotEqual(plain, masked.Pixels);
        Assert.NotEqual(together, masked.Pixels);
        Assert.Contains(", IP-Adapter masks 0: halves", masked.Text["parameters"]);
        Assert.Equal(together, Run("--ip-adapter", adapter, "--ip-adapter-image", pictures, "--ip-adapter-mask", "none").Pixels);
        string oneMask = Path.Combine(halves, "1.png");
        Assert.Equal($"generate: --ip-adapter-mask {oneMask} gives 1 masks for the 2 pictures of --ip-adapter-image {pictures}; give one each (a folder of as many, in the same order)",
            Assert.Throws<UsageException>(() => Run("--ip-adapter", adapter, "--ip-adapter-image", pictures, "--ip-adapter-mask", oneMask)).Message);
    }

    [FixtureFact]
    public void Plus_and_full_face_adapters_steer_the_picture_and_scale_zero_is_the_plain_run()
    {
        string picture = Picture(), plain = _dir.File("plain.png");
        Assert.Equal(0, GenerateCommand.Run([.. Common(), "--out", plain], TextWriter.Null));
        byte[] plainPixels = PngFile.Read(plain).Pixels;
        foreach (ImageProjectionKind kind in (ImageProjectionKind[])[ImageProjectionKind.Resampler, ImageProjectionKind.Mlp])
        {
            string adapter = Adapter(kind, kind.ToString());
            string steered = _dir.File($"{kind}-a.png"), off = _dir.File($"{kind}-b.png");
            Assert.Equal(0, GenerateCommand.Run([.. Common(), "--ip-adapter", adapter, "--ip-adapter-image", picture, "--out", steered], TextWriter.Null));
            Assert.Equal(0, GenerateCommand.Run([.. Common(), "--ip-adapter", adapter, "--ip-adapter-image", picture, "--ip-adapter-scale", "0", "--out", off], TextWriter.Null));
            Assert.False(PngFile.Read(steered).Pixels.AsSpan().SequenceEqual(plainPixels), $"the {kind} IP-Adapter changed nothing");
            Assert.True(PngFile.Read(off).Pixels.AsSpan().SequenceEqual(plainPixels), $"scale 0 changed the {kind} run");
        }
    }

    [FixtureFact]
    public void Ip_adapter_flags_go_together()
    {
        string png = _dir.File("x.png"), picture = Picture();
        static string Refused(string[] args) => Assert.Throws<UsageException>(() => GenerateCommand.Run(args, TextWriter.Null)).Message;
        Assert.Contains("--ip-adapter-image goes with --ip-adapter", Refused([.. Common(), "--ip-adapter-image", picture, "--out", png]));
        Assert.Contains("--image-encoder goes with --ip-adapter", Refused([.. Common(), "--image-encoder", _dir.Path, "--out", png]));
        string lone = _dir.File("lone.safetensors");
        File.Copy(Adapter(), lone);
        Assert.Contains("no image_encoder folder beside", Refused([.. Common(), "--ip-adapter", lone, "--ip-adapter-image", picture, "--out", png]));
        Assert.Contains("1 --ip-adapter need as many --ip-adapter-image (one each, in order), got 0",
            Refused([.. Common(), "--ip-adapter", lone, "--out", png]));
        Assert.False(File.Exists(png));
    }

    [FixtureFact]
    public void An_ip_adapter_for_another_unet_is_refused_before_the_run()
    {
        string png = _dir.File("x.png");
        string[] args = ["--model", Fixtures.Path("tiny/model"), "--prompt", "a cat", "--steps", "2", "--width", "32", "--height", "32",
            "--ip-adapter", Adapter(), "--ip-adapter-image", Picture(), "--out", png];
        Exception e = Assert.ThrowsAny<Exception>(() => GenerateCommand.Run(args, TextWriter.Null));
        Assert.Contains("IP-Adapter 0 does not fit this model", e.Message);
        Assert.False(File.Exists(png));
    }

    [FixtureFact]
    public void A_plus_adapter_for_another_image_encoder_is_refused_before_the_run()
    {
        string adapter = Adapter(ImageProjectionKind.Resampler), png = _dir.File("x.png");
        UNetConfig unet = UNetConfig.Load(Fixtures.Path("small/model/unet/config.json"));
        // The same layers, but a Resampler taking 40-wide hidden states where the encoder beside it makes 32.
        ImageProjectionShape wide = ImageProjectionShape.Resampler(40, unet.CrossAttentionDim[0], 64, 6, 2, 1, 128);
        RandomModelWriter.Weights(DiffusersLayout.IpAdapter(wide, DiffusersLayout.CrossAttentionWidths(unet)), TensorDType.F16, 4).Save(adapter);
        Exception e = Assert.ThrowsAny<Exception>(() => GenerateCommand.Run([.. Common(), "--ip-adapter", adapter, "--ip-adapter-image", Picture(), "--out", png], TextWriter.Null));
        Assert.Contains("its image encoder makes 32-wide hidden states, the adapter takes 40", e.Message);
        Assert.False(File.Exists(png));
    }

    [FixtureFact]
    public void Block_scales_steer_only_the_blocks_named_and_are_recorded()
    {
        string adapter = Adapter(), picture = Picture();
        string styled = _dir.File("styled.png"), none = _dir.File("none.png"), plain = _dir.File("plain.png");
        string[] run = [.. Common(), "--ip-adapter", adapter, "--ip-adapter-image", picture];
        Assert.Equal(0, GenerateCommand.Run([.. run, "--ip-adapter-block-scales", """{"up": {"block_1": [0.0, 1.0, 0.0]}}""", "--out", styled], TextWriter.Null));
        // Blocks not named get 0: an empty dict turns every layer off.
        Assert.Equal(0, GenerateCommand.Run([.. run, "--ip-adapter-block-scales", "{}", "--out", none], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run([.. Common(), "--out", plain], TextWriter.Null));
        PngImage a = PngFile.Read(styled), b = PngFile.Read(none), c = PngFile.Read(plain);
        Assert.False(a.Pixels.AsSpan().SequenceEqual(c.Pixels), "one block's image attention changed nothing");
        Assert.True(b.Pixels.AsSpan().SequenceEqual(c.Pixels), "all blocks at 0 changed the run");
        Assert.Contains("IP-Adapter block scales 0: \"{\\\"up\\\":{\\\"block_1\\\":[0.0,1.0,0.0]}}\"", a.Text["parameters"]);

        string png = _dir.File("x.png");
        Assert.Contains("--ip-adapter-block-scales: IP-Adapter block scales: 'up.first' is not block_N",
            Assert.Throws<UsageException>(() => GenerateCommand.Run([.. run, "--ip-adapter-block-scales", """{"up": {"first": 1}}""", "--out", png], TextWriter.Null)).Message);
        // The small UNet's up block 0 has no attentions: refused before the run.
        Exception e = Assert.ThrowsAny<Exception>(() => GenerateCommand.Run([.. run, "--ip-adapter-block-scales", """{"up": {"block_0": 1}}""", "--out", png], TextWriter.Null));
        Assert.Contains("IP-Adapter 0 does not fit this model: IP-Adapter block scales: 'up.block_0' is no up block with attentions in this UNet (those are block_1, block_2)", e.Message);
        Assert.False(File.Exists(png));
    }
}
