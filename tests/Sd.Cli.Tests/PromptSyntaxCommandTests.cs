using Sd.Cli.Commands;
using Sd.Loaders.Npy;
using Sd.Loaders.Png;
using Sd.Loaders.Tests;

namespace Sd.Cli.Tests;

/// <summary>
/// --prompt-syntax on generate, tokenize and encode-text: AUTOMATIC1111's weighted long prompts by default, diffusers'
/// plain cut row on request, and the same picture either way for a prompt without syntax.
/// </summary>
public sealed class PromptSyntaxCommandTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Generate_reads_weights_by_default_records_another_syntax_and_paints_plain_text_alike()
    {
        string weighted = _dir.File("weighted.png"), plain = _dir.File("plain.png"), emphasis = _dir.File("emphasis.png");
        string[] common = ["--negative-prompt", "blurry", "--steps", "2", "--width", "64", "--height", "64", "--seed", "4", "--scheduler", "dpm++-2m-sde-karras"];
        Assert.Equal(0, GenerateCommand.Run(["--prompt", "a castle, on a hill", .. common, "--out", weighted], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run(["--prompt", "a castle, on a hill", .. common, "--prompt-syntax", "plain", "--out", plain], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run(["--prompt", "a (castle:1.3), on a hill", .. common, "--out", emphasis], TextWriter.Null));

        Assert.Equal(PngFile.Read(plain).Pixels, PngFile.Read(weighted).Pixels);
        Assert.NotEqual(PngFile.Read(weighted).Pixels, PngFile.Read(emphasis).Pixels);
        string parameters = PngFile.Read(plain).Text["parameters"];
        Assert.Contains("Clip skip: 1, Prompt syntax: plain, Model: built-in demo", parameters); // A1111 counts clip skip from 1
        Assert.Contains("Clip skip: 1, Model: built-in demo", PngFile.Read(weighted).Text["parameters"]);
        Assert.Contains("Steps: 2, Sampler: DPM++ 2M SDE, Schedule type: Karras, CFG scale: 7.5,", parameters); // A1111's names

        Assert.Contains("--prompt-syntax must be plain, chunked or weighted, got 'a1111'", Assert.Throws<UsageException>(() =>
            GenerateCommand.Run(["--prompt", "a", "--prompt-syntax", "a1111", "--out", weighted], TextWriter.Null)).Message);
        var e = Assert.Throws<ArgumentException>(() => GenerateCommand.Run(["--prompt", "a", "--negative-prompt", "(b:1..2)", .. common[2..], "--out", weighted], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run(["--prompt", "a", "--steps", "1", "--width", "64", "--height", "64", "--scheduler", "ddim", "--out", plain], TextWriter.Null));
        Assert.Contains("Steps: 1, Sampler: DDIM, CFG scale", PngFile.Read(plain).Text["parameters"]);
        Assert.Contains("the negative prompt: weight \"1..2\" at character 2 is not a finite number", e.Message);
    }

    [Theory]
    [InlineData("DPM++-2M-KARRAS", "Sampler: DPM++ 2M, Schedule type: Karras,")] // any case, as --scheduler takes it
    [InlineData("dpm++-2m", "Sampler: DPM++ 2M, Schedule type: SGM Uniform,")] // A1111's default would be Karras
    [InlineData("dpm++-2m-sde", "Sampler: DPM++ 2M SDE, Schedule type: SGM Uniform,")] // and Exponential here
    [InlineData("dpm++-2m-sde-heun-exponential", "Sampler: DPM++ 2M SDE Heun, Schedule type: Exponential,")]
    [InlineData("euler-karras", "Sampler: Euler, Schedule type: Karras,")]
    [InlineData("lms-karras", "Sampler: LMS, Schedule type: Karras,")]
    [InlineData("euler", "Sampler: Euler, CFG")]
    [InlineData("heun", "Sampler: Heun, CFG")]
    [InlineData("heun-karras", "Sampler: Heun, Schedule type: Karras,")]
    [InlineData("dpm2-karras", "Sampler: DPM2, Schedule type: Karras,")]
    [InlineData("dpm2-a", "Sampler: DPM2 a, Schedule type: Uniform,")] // A1111's DPM2 a defaults to Karras
    [InlineData("dpm++-2s-a-karras", "Sampler: DPM++ 2S a, Schedule type: Karras,")]
    [InlineData("dpm++-sde", "Sampler: DPM++ SDE, Schedule type: Uniform,")]
    [InlineData("restart", "Sampler: Restart, Schedule type: Uniform,")] // A1111's Restart defaults to Karras
    [InlineData("restart-karras", "Sampler: Restart, Schedule type: Karras,")]
    [InlineData("dpm++-3m-sde", "Sampler: DPM++ 3M SDE, Schedule type: Uniform,")] // A1111's default is Exponential
    [InlineData("dpm++-3m-sde-karras", "Sampler: DPM++ 3M SDE, Schedule type: Karras,")]
    [InlineData("dpm++-2m-sde-exponential", "Sampler: DPM++ 2M SDE, Schedule type: Exponential,")]
    [InlineData("Euler-Exponential", "Sampler: Euler, Schedule type: Exponential,")]
    [InlineData("dpm++-2m-beta", "Sampler: DPM++ 2M, Schedule type: Beta,")]
    [InlineData("heun-beta", "Sampler: Heun, Schedule type: Beta,")]
    [InlineData("euler-kl-optimal", "Sampler: Euler, Schedule type: KL Optimal,")]
    [InlineData("DPM++-2M-AYS", "Sampler: DPM++ 2M, Schedule type: Align Your Steps,")]
    [InlineData("dpm++-2m-simple", "Sampler: DPM++ 2M, Schedule type: Simple,")]
    [InlineData("heun-normal", "Sampler: Heun, Schedule type: Normal,")]
    [InlineData("euler-sgm-uniform", "Sampler: Euler, Schedule type: SGM Uniform,")]
    [InlineData("euler-a-karras", "Sampler: Euler a, Schedule type: Karras,")]
    [InlineData("pndm", "Sampler: PLMS, CFG")]
    [InlineData("dpm-fast", "Sampler: DPM fast, CFG")] // A1111's Automatic: the model's levels
    [InlineData("dpm-fast-karras", "Sampler: DPM fast, Schedule type: Karras,")]
    [InlineData("unipc", "Sampler: UniPC, UniPC variant: bh2, UniPC order: 2, CFG")] // A1111's UniPC defaults to bh1, order 3
    [InlineData("unipc-a1111", "Sampler: UniPC, CFG")] // which is that
    public void The_png_names_the_scheduler_and_schedule_as_a1111_reads_them(string scheduler, string expected)
    {
        string png = _dir.File("sampler.png");
        // 3 steps, the fewest A1111's UniPC runs.
        Assert.Equal(0, GenerateCommand.Run(["--prompt", "a", "--steps", "3", "--width", "64", "--height", "64", "--scheduler", scheduler, "--out", png], TextWriter.Null));
        string parameters = PngFile.Read(png).Text["parameters"];
        Assert.Contains("Steps: 3, " + expected, parameters);
        // A1111 records its Beta schedule's shape with it, and only then.
        Assert.Equal(scheduler.EndsWith("-beta", StringComparison.Ordinal), parameters.Contains("Beta schedule alpha: 0.6, Beta schedule beta: 0.6, CFG scale", StringComparison.Ordinal));
    }

    /// <summary>A ramp the model's scheduler config asks for is written as the ramp a suffix asks for, in the hires fix's keys too.</summary>
    [FixtureFact]
    public void The_png_names_the_schedule_the_models_scheduler_config_sets()
    {
        // The tiny fixture model with use_beta_sigmas in its scheduler config (the other parts linked, not copied).
        string source = Fixtures.Path("tiny/model"), model = Path.Combine(_dir.Path, "beta-model");
        Directory.CreateDirectory(Path.Combine(model, "scheduler"));
        foreach (string part in (string[])["text_encoder", "tokenizer", "unet", "vae"])
        {
            Directory.CreateSymbolicLink(Path.Combine(model, part), Path.Combine(source, part));
        }
        File.Copy(Path.Combine(source, "model_index.json"), Path.Combine(model, "model_index.json"));
        string config = File.ReadAllText(Path.Combine(source, "scheduler", "scheduler_config.json"));
        File.WriteAllText(Path.Combine(model, "scheduler", "scheduler_config.json"), config.Replace("\"steps_offset\": 1,", "\"steps_offset\": 1, \"use_beta_sigmas\": true,"));
        string png = _dir.File("beta.png");
        Assert.Equal(0, GenerateCommand.Run(["--model", model, "--prompt", "a", "--steps", "2", "--width", "64", "--height", "64", "--scheduler", "dpm++-2m",
            "--hires-scale", "1.5", "--hires-scheduler", "euler-karras", "--out", png], TextWriter.Null));
        string parameters = PngFile.Read(png).Text["parameters"];
        Assert.Contains("Steps: 2, Sampler: DPM++ 2M, Schedule type: Beta, Denoising strength: 0.7,", parameters);
        Assert.Contains("Hires sampler: Euler, Hires schedule type: Karras, Beta schedule alpha: 0.6, Beta schedule beta: 0.6, CFG scale", parameters);
    }

    [FixtureFact]
    public void Tokenize_prints_each_text_of_a_prompt_that_changes_during_the_steps()
    {
        string model = Fixtures.Path("tiny/model");
        var output = new StringWriter();
        Assert.Equal(0, TextCommands.Tokenize(["--model", model, "--prompt", "a [cat:dog:0.5]", "--steps", "10"], output));
        string[] lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["until step 5: a cat", "until step 10: a dog"], new[] { lines[0], lines[2] });
        Assert.StartsWith("49406 320 2368 49407", lines[1]);
        var e = Assert.Throws<UsageException>(() => TextCommands.Tokenize(["--model", model, "--prompt", "a [cat|dog]", "--out", _dir.File("ids.npy")], TextWriter.Null));
        Assert.Contains("the prompt changes during the 20 steps (2 texts); --out writes the rows of one text", e.Message);
        Assert.False(File.Exists(_dir.File("ids.npy")));
        // AND parts, each with its guidance weight.
        output = new StringWriter();
        Assert.Equal(0, TextCommands.Tokenize(["--model", model, "--prompt", "a cat AND a cat :0.5"], output));
        lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["part 1 of 2, guidance weight 1:", "part 2 of 2, guidance weight 0.5:"], new[] { lines[0], lines[2] });
        Assert.Equal(lines[1], lines[3]);
        Assert.Contains("composed of 2 parts with AND; --out writes the rows of one text", Assert.Throws<UsageException>(() =>
            TextCommands.Tokenize(["--model", model, "--prompt", "a AND b", "--out", _dir.File("ids.npy")], TextWriter.Null)).Message);
        // Plain is diffusers' syntax: no editing.
        output = new StringWriter();
        Assert.Equal(0, TextCommands.Tokenize(["--model", model, "--prompt", "a [cat:dog:0.5]", "--prompt-syntax", "plain"], output));
        Assert.DoesNotContain("until step", output.ToString());
    }

    [FixtureFact]
    public void Tokenize_prints_the_rows_and_weights_generate_uses()
    {
        string model = Fixtures.Path("tiny/model");
        var output = new StringWriter();
        Assert.Equal(0, TextCommands.Tokenize(["--model", model, "--prompt", "a (photo) of BREAK a cat"], output));
        string[] lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(4, lines.Length); // two rows, each with its weights
        Assert.StartsWith("49406 320 1125 539 49407 49407", lines[0]);
        Assert.StartsWith("weights: 1 1 1.1 1 1 1", lines[1]);
        Assert.StartsWith("49406 320 2368 49407", lines[2]);
        Assert.StartsWith("weights: 1 1 1 1", lines[3]);

        string ids = _dir.File("ids.npy");
        string longPrompt = string.Join(", ", Enumerable.Repeat("a highly detailed oil painting of a castle", 12));
        Assert.Equal(0, TextCommands.Tokenize(["--model", model, "--prompt", longPrompt, "--out", ids], TextWriter.Null));
        Assert.Equal([2, 77], NpyFile.Read(ids).Shape);
        Assert.Equal(0, TextCommands.Tokenize(["--model", model, "--prompt", longPrompt, "--prompt-syntax", "plain", "--out", ids], TextWriter.Null));
        Assert.Equal([1, 77], NpyFile.Read(ids).Shape);
        Assert.Contains("--chunked is --prompt-syntax chunked; it contradicts --prompt-syntax plain", Assert.Throws<UsageException>(() =>
            TextCommands.Tokenize(["--model", model, "--prompt", "a", "--chunked", "--prompt-syntax", "plain"], TextWriter.Null)).Message);
        Assert.Contains("tokenize: --prompt: it takes more than 32 chunks", Assert.Throws<UsageException>(() =>
            TextCommands.Tokenize(["--model", model, "--prompt", string.Concat(Enumerable.Repeat("cat ", 2401))], TextWriter.Null)).Message);
    }

    [FixtureFact]
    public void Encode_text_joins_a_long_prompts_rows_and_refuses_a_syntax_for_ids()
    {
        string model = Fixtures.Path("tiny/model"), hidden = _dir.File("hidden.npy");
        string longPrompt = string.Join(", ", Enumerable.Repeat("a highly detailed oil painting of a castle", 12));
        Assert.Equal(0, TextCommands.EncodeText(["--model", model, "--prompt", longPrompt, "--out", hidden], TextWriter.Null));
        Assert.Equal(154, NpyFile.Read(hidden).Shape[1]);
        Assert.Equal(0, TextCommands.EncodeText(["--model", model, "--prompt", longPrompt, "--prompt-syntax", "plain", "--out", hidden], TextWriter.Null));
        Assert.Equal(77, NpyFile.Read(hidden).Shape[1]);
        Assert.Contains("--prompt-syntax tokenizes --prompt; --ids are tokens already", Assert.Throws<UsageException>(() =>
            TextCommands.EncodeText(["--model", model, "--ids", "ids.npy", "--prompt-syntax", "plain", "--out", hidden], TextWriter.Null)).Message);
    }
}
