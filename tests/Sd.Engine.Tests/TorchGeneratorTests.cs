using System.Text.Json;
using Sd.Engine.Rng;
using Sd.Loaders.Npy;
using Sd.Loaders.Tests;
using Xunit.Abstractions;

namespace Sd.Engine.Tests;

/// <summary>
/// <see cref="TorchGenerator"/> against every array of the <c>rng/</c> fixtures (torch 1.13, AVX2): independent draws
/// on a fresh generator per file and the <c>seq_*</c> sequences on one generator in call order.
/// </summary>
public sealed class TorchGeneratorTests(ITestOutputHelper output)
{
    private const double Tolerance = 1e-6;

    private sealed record Entry(string File, string Op, ulong Seed, int[] Shape, string CodePath, string? Sequence, int CallIndex);

    [FixtureFact]
    public void IndependentDrawsMatchTorch()
    {
        List<Entry> entries = ReadIndex();
        int files = 0;
        foreach (Entry entry in entries)
        {
            if (entry.Sequence is not null)
            {
                continue;
            }
            var generator = new TorchGenerator(entry.Seed);
            CheckDraw(generator, entry);
            files++;
        }
        Assert.True(files >= 40, $"only {files} independent arrays in index.json");
    }

    [FixtureFact]
    public void SequencesOnOneGeneratorMatchTorch()
    {
        List<Entry> entries = ReadIndex();
        var sequences = new SortedDictionary<string, List<Entry>>(StringComparer.Ordinal);
        foreach (Entry entry in entries)
        {
            if (entry.Sequence is null)
            {
                continue;
            }
            if (!sequences.TryGetValue(entry.Sequence, out List<Entry>? calls))
            {
                calls = [];
                sequences.Add(entry.Sequence, calls);
            }
            calls.Add(entry);
        }
        Assert.Equal(4, sequences.Count);

        foreach ((string name, List<Entry> calls) in sequences)
        {
            calls.Sort((a, b) => a.CallIndex.CompareTo(b.CallIndex));
            for (int i = 0; i < calls.Count; i++)
            {
                Assert.True(calls[i].CallIndex == i, $"{name}: call indices are not 0..{calls.Count - 1}");
                Assert.True(calls[i].Seed == calls[0].Seed, $"{name}: calls disagree on the seed");
            }
            var generator = new TorchGenerator(calls[0].Seed);
            foreach (Entry call in calls)
            {
                CheckDraw(generator, call);
            }
        }
    }

    [Fact]
    public void OnlyTheLow32BitsOfTheSeedCount()
    {
        foreach (int numel in (int[])[7, 16, 17, 4096])
        {
            var a = new float[numel];
            var b = new float[numel];
            new TorchGenerator((1UL << 32) + 7).Randn(a);
            new TorchGenerator(7).Randn(b);
            Assert.Equal(a, b);
            new TorchGenerator((1UL << 32) + 7).Rand(a);
            new TorchGenerator(7).Rand(b);
            Assert.Equal(a, b);
        }
    }

    [Fact]
    public void ManualSeedRestartsTheStreamAndDropsTheCachedNormal()
    {
        var generator = new TorchGenerator(3);
        var first = new float[7];
        generator.Randn(first); // 7 values from 4 pairs: one normal left cached
        generator.ManualSeed(3);
        var again = new float[7];
        generator.Randn(again);
        Assert.Equal(first, again);

        var fresh = new TorchGenerator(3);
        var expected = new float[32];
        fresh.Randn(expected);
        generator.ManualSeed(3);
        var actual = new float[32];
        generator.Randn(actual);
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void RandIsInTheUnitIntervalOnTheFloat24Grid()
    {
        var values = new float[1000];
        new TorchGenerator(0).Rand(values);
        foreach (float v in values)
        {
            Assert.InRange(v, 0f, 1f - (1f / (1 << 24)));
            Assert.Equal(0f, (v * (1 << 24)) % 1f);
        }
    }

    [Fact]
    public void EmptyDrawsConsumeNothing()
    {
        var generator = new TorchGenerator(5);
        generator.Randn([]);
        generator.Rand([]);
        var a = new float[20];
        generator.Randn(a);
        var b = new float[20];
        new TorchGenerator(5).Randn(b);
        Assert.Equal(b, a);
    }

    private void CheckDraw(TorchGenerator generator, Entry entry)
    {
        float[] expected = NpyFile.Read(Fixtures.Path("rng/" + entry.File)).ToFloat32();
        long numel = 1;
        foreach (int d in entry.Shape)
        {
            numel *= d;
        }
        Assert.Equal(numel, expected.Length);

        var actual = new float[numel];
        switch (entry.Op)
        {
            case "torch.randn":
                generator.Randn(actual);
                break;
            case "torch.rand":
                generator.Rand(actual);
                break;
            default:
                Assert.Fail($"{entry.File}: unknown op {entry.Op}");
                break;
        }

        double maxAbs = 0;
        int exact = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(actual[i]) == BitConverter.SingleToInt32Bits(expected[i]))
            {
                exact++;
            }
            maxAbs = Math.Max(maxAbs, Math.Abs((double)actual[i] - expected[i]));
        }
        output.WriteLine($"{entry.File} [{entry.CodePath}]: {exact}/{actual.Length} bit-exact, max |Δ| = {maxAbs:E2}");
        Assert.True(maxAbs <= Tolerance, $"{entry.File}: max |Δ| {maxAbs:E3} > {Tolerance:E0} ({exact}/{actual.Length} bit-exact)");
    }

    private static List<Entry> ReadIndex()
    {
        using JsonDocument document = JsonDocument.Parse(File.ReadAllBytes(Fixtures.Path("rng/index.json")));
        var entries = new List<Entry>();
        foreach (JsonElement array in document.RootElement.GetProperty("arrays").EnumerateArray())
        {
            JsonElement shapeElement = array.GetProperty("shape");
            var shape = new int[shapeElement.GetArrayLength()];
            int k = 0;
            foreach (JsonElement d in shapeElement.EnumerateArray())
            {
                shape[k++] = d.GetInt32();
            }
            string? sequence = array.TryGetProperty("sequence", out JsonElement s) && s.ValueKind == JsonValueKind.String
                ? s.GetString()
                : null;
            int callIndex = array.TryGetProperty("call_index", out JsonElement c) && c.ValueKind == JsonValueKind.Number
                ? c.GetInt32()
                : -1;
            entries.Add(new Entry(
                array.GetProperty("file").GetString()!,
                array.GetProperty("op").GetString()!,
                array.GetProperty("seed").GetUInt64(),
                shape,
                array.GetProperty("code_path").GetString()!,
                sequence,
                callIndex));
        }
        Assert.NotEmpty(entries);
        return entries;
    }
}
