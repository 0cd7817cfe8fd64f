using System.Text.Json;
using Sd.Cli.Commands;
using Sd.Engine.Schedulers;
using Sd.Loaders;

namespace Sd.Cli.Tests;

/// <summary>
/// Reading A1111's parameters: the text as its parse_generation_parameters reads it (Data/infotext-reference.json,
/// from Python's re and json), and its sampler and schedule type names as the Sd schedulers that run them.
/// </summary>
public sealed class InfotextTests
{
    private static JsonDocument Reference() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Data", "infotext-reference.json")));

    [Fact]
    public void Texts_read_as_a1111_reads_them()
    {
        using JsonDocument reference = Reference();
        int cases = 0;
        foreach (JsonElement c in reference.RootElement.GetProperty("texts").EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            var expected = new List<KeyValuePair<string, string>>();
            foreach (JsonElement pair in c.GetProperty("parsed").EnumerateArray())
            {
                expected.Add(new(pair[0].GetString()!, pair[1].GetString()!));
            }
            Assert.Equal(expected, Infotext.Parse(text));
            cases++;
        }
        Assert.Equal(15, cases);
    }

    [Fact]
    public void Pairs_are_found_as_re_findall_finds_them()
    {
        using JsonDocument reference = Reference();
        int lines = 0, pairs = 0;
        foreach (JsonElement c in reference.RootElement.GetProperty("lines").EnumerateArray())
        {
            var expected = new List<(string, string)>();
            foreach (JsonElement pair in c.GetProperty("pairs").EnumerateArray())
            {
                expected.Add((pair[0].GetString()!, pair[1].GetString()!));
            }
            Assert.Equal(expected, Infotext.Pairs(c.GetProperty("line").GetString()!));
            lines++;
            pairs += expected.Count;
        }
        Assert.Equal(400, lines);
        Assert.True(pairs > 150, $"the random lines hold {pairs} pairs");
    }

    [Fact]
    public void Long_lines_are_read_in_one_pass()
    {
        // A regular expression engine starts again at each of these characters: 10^10 steps. One pass finds none.
        Assert.Empty(Infotext.Pairs(new string('a', 100_000) + ", x"));
        Assert.Equal([("ab", "1")], Infotext.Pairs(new string(' ', 100_000) + "ab: 1"));
        // 100,000 keys, every one given twice: each keeps its first place and its last value.
        var line = new System.Text.StringBuilder("a prompt\n");
        for (int i = 0; i < 200_000; i++) line.Append($"Key {i % 100_000}: {i}, ");
        List<KeyValuePair<string, string>> values = Infotext.Parse(line.ToString());
        Assert.Equal(100_002, values.Count);
        Assert.Equal(new KeyValuePair<string, string>("Key 7", "100007"), values[2 + 7]);
    }

    /// <summary>Every scheduler Sd writes reads back as itself, or as the one it runs alike where A1111 has one name for two.</summary>
    [Fact]
    public void Every_scheduler_written_reads_back()
    {
        string[] solvers = ["ddim", "pndm", "lcm", "unipc-a1111", "unipc", "euler", "euler-a", "heun", "lms", "dpm-fast", "dpm++-2m",
            "dpm++-2m-sde", "dpm++-2m-sde-heun", "dpm++-3m-sde", "dpm2", "dpm2-a", "dpm++-2s-a", "dpm++-sde", "restart"];
        int pairs = 0;
        foreach (string solver in solvers)
        {
            bool ramps = solver is not ("ddim" or "pndm" or "lcm" or "unipc-a1111");
            foreach (SigmaRamp ramp in ramps ? Enum.GetValues<SigmaRamp>() : [SigmaRamp.Spaced])
            {
                string name = Scheduler.NameOf(solver, ramp);
                Dictionary<string, string> values = Values(A1111Samplers.Write(name, ramp));
                string read = A1111Samplers.Read(values["Sampler"], values.GetValueOrDefault("Schedule type"), values.GetValueOrDefault, "p.png", "Sampler", "--scheduler");
                // diffusers' DPM-Solver levels are A1111's SGM Uniform: the ramp of that name is written alike.
                string expected = ramp == SigmaRamp.SgmUniform && solver.StartsWith("dpm++-2m", StringComparison.Ordinal) ? solver : name;
                Assert.Equal(expected, read);
                pairs++;
            }
        }
        Assert.Equal(4 + 15 * 9, pairs);
    }

    private static Dictionary<string, string> Values(string written)
    {
        var values = new Dictionary<string, string>();
        foreach ((string key, string value) in Infotext.Pairs(written)) values[key] = value;
        return values;
    }

    [Theory]
    [InlineData("DPM++ 2M", null, "dpm++-2m-karras")] // A1111's Automatic for it
    [InlineData("DPM++ 2M", "Automatic", "dpm++-2m-karras")]
    [InlineData("DPM++ 2M Karras", null, "dpm++-2m-karras")] // A1111 before 1.9
    [InlineData("DPM++ 2M SDE", null, "dpm++-2m-sde-exponential")]
    [InlineData("DPM++ 2M SDE Heun Exponential", null, "dpm++-2m-sde-heun-exponential")]
    [InlineData("DPM++ 3M SDE", "Automatic", "dpm++-3m-sde-exponential")]
    [InlineData("DPM2 a Karras", null, "dpm2-a-karras")]
    [InlineData("LMS Karras", null, "lms-karras")]
    [InlineData("DPM++ SDE", null, "dpm++-sde-karras")]
    [InlineData("Restart", null, "restart-karras")]
    [InlineData("Euler a", null, "euler-a")]
    [InlineData("Euler a", "Automatic", "euler-a")]
    [InlineData("Euler", "Uniform", "euler")] // its Automatic: the model's levels
    [InlineData("DPM++ 2M", "Uniform", "dpm++-2m-normal")] // the model's levels, where Sd's own DPM-Solver ones are SGM Uniform's
    [InlineData("DPM++ 2M", "SGM Uniform", "dpm++-2m")]
    [InlineData("DPM++ 2M", "sgm_uniform", "dpm++-2m")] // A1111's name for it
    [InlineData("Euler SGMUniform", null, "euler-sgm-uniform")] // and its alias
    [InlineData("Heun", "Align Your Steps", "heun-ays")]
    [InlineData("DDIM", "Karras", "ddim")] // A1111's samplers on timesteps take no schedule type
    [InlineData("PLMS", null, "pndm")]
    [InlineData("LCM", null, "lcm")]
    [InlineData("UniPC", "Karras", "unipc-a1111")]
    public void A1111s_names_read_as_the_scheduler_that_runs_them(string sampler, string? schedule, string expected)
    {
        Assert.Equal(expected, A1111Samplers.Read(sampler, schedule, _ => null, "p.png", "Sampler", "--scheduler"));
    }

    [Fact]
    public void Samplers_and_options_sd_does_not_run_are_refused_by_name()
    {
        var e = Assert.Throws<InvalidFileException>(() => A1111Samplers.Read("DPM adaptive", null, _ => null, "p.png", "Sampler", "--scheduler"));
        Assert.Equal("p.png: parameters: Sampler 'DPM adaptive' is not one Sd runs; give --scheduler (see `sd generate --help`)", e.Message);
        e = Assert.Throws<InvalidFileException>(() => A1111Samplers.Read("Euler", "Polyexponential", _ => null, "p.png", "Hires sampler", "--hires-scheduler"));
        Assert.Contains("schedule type 'Polyexponential' (Hires sampler Euler) is not one Sd runs; give --hires-scheduler", e.Message);
        // A1111's LCM is a k-diffusion sampler, on any type; Sd's runs on timesteps, its Automatic (Uniform) alone.
        Assert.Equal("lcm", A1111Samplers.Read("LCM", "Uniform", _ => null, "p.png", "Sampler", "--scheduler"));
        Assert.Contains("LCM on schedule type 'Karras' is not one Sd runs",
            Assert.Throws<InvalidFileException>(() => A1111Samplers.Read("LCM", "Karras", _ => null, "p.png", "Sampler", "--scheduler")).Message);
        // The composite name Sd writes for diffusers' UniPC is not a sampler's name.
        Assert.Throws<InvalidFileException>(() => A1111Samplers.Read("UniPC, UniPC variant: bh2, UniPC order: 2", null, _ => null, "p.png", "Sampler", "--scheduler"));
        var options = new Dictionary<string, string> { ["UniPC variant"] = "bh2", ["UniPC order"] = "3" };
        e = Assert.Throws<InvalidFileException>(() => A1111Samplers.Read("UniPC", null, options.GetValueOrDefault, "p.png", "Sampler", "--scheduler"));
        Assert.Contains("A1111's UniPC with variant bh2, order 3, skip type time_uniform, lower order final True is not one Sd runs", e.Message);
        options["UniPC order"] = "2";
        Assert.Equal("unipc", A1111Samplers.Read("UniPC", null, options.GetValueOrDefault, "p.png", "Sampler", "--scheduler"));
    }
}
