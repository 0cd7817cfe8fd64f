using System.Text.Json;
using Sd.Cli.Commands;
using Sd.Loaders.Tests;

namespace Sd.Cli.Tests;

/// <summary><c>sd bench</c> on the tiny fixture model: the JSON report and its profile.</summary>
public sealed class BenchCommandTests
{
    [Theory]
    [InlineData("--batch", "100000", "--batch must be in [1, 256], got 100000")]
    [InlineData("--winograd-budget", "-5", "--winograd-budget must be a size in MiB, 0 or more, got -5")]
    [InlineData("--height", "16392", "at most 16384, got 16392x512")]
    [InlineData("--reps", "1000000", "--reps must be at most 1000, got 1000000")]
    public void Sizes_past_the_limits_are_usage_errors_before_anything_loads(string flag, string value, string message)
    {
        // The model path does not exist: the options are refused before it is opened.
        var e = Assert.Throws<UsageException>(() => BenchCommand.Run(["--model", "no-such-model", "--part", "unet", flag, value], TextWriter.Null));
        Assert.Contains(message, e.Message);
    }

    [FixtureFact]
    public void Profile_attributes_every_counted_flop_to_a_kernel_shape()
    {
        var output = new StringWriter();
        Assert.Equal(0, BenchCommand.Run(["--model", Fixtures.Path("tiny/model"), "--part", "unet", "--height", "64", "--width", "64",
            "--batch", "2", "--reps", "1", "--profile", "--json"], output));
        using JsonDocument report = JsonDocument.Parse(output.ToString());
        JsonElement root = report.RootElement;
        double gflop = root.GetProperty("gflop").GetDouble();
        Assert.True(gflop > 0);

        double shareSum = 0;
        foreach (JsonProperty kind in root.GetProperty("profile").EnumerateObject())
        {
            shareSum += kind.Value.GetDouble();
        }
        Assert.InRange(shareSum, 0.999, 1.001);
        // The run's share in parallel calls, and the share of their threads' time spent waiting there.
        Assert.InRange(root.GetProperty("parallel_share").GetDouble(), 0, 1);
        Assert.InRange(root.GetProperty("pool_idle_share").GetDouble(), 0, 1);

        double shapeGflop = 0;
        var seen = new HashSet<string>();
        foreach (JsonElement shape in root.GetProperty("profile_shapes").EnumerateArray())
        {
            Assert.True(seen.Add(shape.GetProperty("shape").GetString()!), "each shape once");
            Assert.True(shape.GetProperty("calls").GetInt32() >= 1);
            Assert.True(shape.GetProperty("seconds").GetDouble() >= 0);
            shapeGflop += shape.GetProperty("gflop").GetDouble();
        }
        // The tiny UNet (blocks 32, 64) at 8x8 latents, a guided call: conv_in on one image (both halves are the
        // same latents), Winograd 3x3 layers, the cross-attention at 4x4 and conv_out's few-outputs kernel.
        Assert.Contains("conv3x3 stride 1 implicit GEMM 1x8x8, 4 to 32 channels", seen);
        Assert.Contains("conv3x3 Winograd 2x8x8, 32 to 32 channels", seen);
        Assert.Contains("attention 2x8 heads, 16 queries x 77 keys, head dim 8", seen);
        Assert.Contains("conv3x3 few outputs 2x8x8, 32 to 4 channels", seen);
        Assert.Equal(gflop, shapeGflop, 1e-9 * gflop);
    }

    /// <summary>A ControlNet pass: timed, its FLOPs counted, the picture embedded in the warm-up only.</summary>
    [Fact]
    public void A_controlnet_pass_is_timed()
    {
        using var dir = new TempDirectory();
        string controlNet = TinyControlNet.Write(dir.File("controlnet"));
        var output = new StringWriter();
        Assert.Equal(0, BenchCommand.Run(["--model", controlNet, "--part", "controlnet", "--height", "32", "--width", "48", "--batch", "2",
            "--reps", "2", "--profile", "--json"], output));
        using JsonDocument report = JsonDocument.Parse(output.ToString());
        JsonElement root = report.RootElement;
        Assert.Equal("controlnet", root.GetProperty("part").GetString());
        Assert.True(root.GetProperty("gflop").GetDouble() > 0);
        Assert.True(root.GetProperty("median_s").GetDouble() > 0);
        var seen = new HashSet<string>();
        foreach (JsonElement shape in root.GetProperty("profile_shapes").EnumerateArray()) seen.Add(shape.GetProperty("shape").GetString()!);
        // The 16x24 latents' encoder; the picture's 32x48 embedding (3 to 8 channels) ran in the warm-up, not here.
        Assert.Contains("conv3x3 Winograd 2x16x24, 32 to 32 channels", seen);
        Assert.DoesNotContain(seen, s => s.Contains("3 to 8 channels", StringComparison.Ordinal));
    }

    [Fact]
    public void An_adapter_pass_is_timed()
    {
        using var dir = new TempDirectory();
        string adapter = SmallAdapter.Write(dir.File("adapter"));
        var output = new StringWriter();
        Assert.Equal(0, BenchCommand.Run(["--model", adapter, "--part", "adapter", "--height", "64", "--width", "48", "--reps", "2", "--profile", "--json"], output));
        using JsonDocument report = JsonDocument.Parse(output.ToString());
        JsonElement root = report.RootElement;
        Assert.Equal("adapter", root.GetProperty("part").GetString());
        Assert.True(root.GetProperty("gflop").GetDouble() > 0);
        var seen = new HashSet<string>();
        foreach (JsonElement shape in root.GetProperty("profile_shapes").EnumerateArray()) seen.Add(shape.GetProperty("shape").GetString()!);
        // conv_in on the 8x6 unshuffled gray picture: 64 channels in.
        Assert.True(seen.Any(s => s.Contains("1x8x6, 64 to 64 channels", StringComparison.Ordinal)), string.Join("; ", seen));
    }

    [Fact]
    public void An_ip_adapter_plus_is_timed_with_the_encoder_states_it_takes()
    {
        using var dir = new TempDirectory();
        string adapter = SmallIpAdapter.Write(dir.File("models"), Sd.Loaders.ImageProjectionKind.Resampler, 16, [8]);
        var output = new StringWriter();
        Assert.Equal(0, BenchCommand.Run(["--model", dir.File("models/image_encoder"), "--part", "image-encoder", "--ip-adapter", adapter,
            "--batch", "2", "--reps", "1", "--profile", "--json"], output));
        using JsonDocument report = JsonDocument.Parse(output.ToString());
        var calls = new Dictionary<string, int>();
        foreach (JsonElement shape in report.RootElement.GetProperty("profile_shapes").EnumerateArray())
        {
            calls[shape.GetProperty("shape").GetString()!] = shape.GetProperty("calls").GetInt32();
        }
        // The encoder's layers before its last (1 of 2: 5 positions, 4 heads of 8), then the Resampler's 2 layers of
        // 6 queries attending to the 5 positions and themselves (1 head of 64).
        Assert.Equal(1, calls["attention 2x4 heads, 5 queries x 5 keys, head dim 8"]);
        Assert.Equal(2, calls["attention 2x1 heads, 6 queries x 11 keys, head dim 64"]);
        Assert.Contains("--ip-adapter times a UNet call with one (--part unet) or what it pays per generation (--part image-encoder), not --part vae-decode",
            Assert.Throws<UsageException>(() => BenchCommand.Run(["--model", "m", "--part", "vae-decode", "--ip-adapter", adapter], TextWriter.Null)).Message);
    }
}
