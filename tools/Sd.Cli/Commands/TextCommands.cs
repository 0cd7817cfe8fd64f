using System.Globalization;
using Sd.Engine.Tensors;
using Sd.Engine.Text;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.IO;
using Sd.Loaders.Npy;

namespace Sd.Cli.Commands;

/// <summary><c>sd tokenize</c> and <c>sd encode-text</c>.</summary>
public static class TextCommands
{
    private const string TokenizeHelp = """
        Usage: sd tokenize --model M [--tokenizer DIR] [--config DIR] --prompt TEXT [--out ids.npy] [--fix-text]
                           [--prompt-syntax weighted|chunked|plain] [--chunked] [--embedding FILE[:TOKEN] ...] [--steps N]

        Prints the CLIP token ids of a prompt as sd generate builds them, one row of 77 (bos, text, eos, padding)
        per line, and optionally writes them as int64 [rows, 77]. --prompt-syntax as in sd generate: weighted (the
        default) reads AUTOMATIC1111's emphasis and puts long prompts in rows of 75 text tokens, printing each row's
        weights too when any is not 1; chunked (or --chunked) makes the rows reading brackets and BREAK as text;
        plain is diffusers' one row, cut at 77 tokens with a warning. The chunked syntaxes take A1111's <lora:...>
        tags out of the text first, with a warning. --fix-text applies ftfy-like fixes (curly quotes, HTML entities)
        first. --embedding adds a textual inversion as sd generate does: its token becomes ids from the text
        encoder's vocab_size on. The chunked syntaxes read A1111's prompt editing ([from:to:when], [a|b]) over
        --steps N steps (default 20; pass twice the steps for heun and dpm2, which sd generate counts twice): a
        prompt that changes prints each text as "until step E: TEXT" before its rows, and then cannot be written
        with --out; nor can a prompt composed with AND, each part printed after "part K of N, guidance weight W:".
        """;

    private const string EncodeHelp = """
        Usage: sd encode-text --model M [--tokenizer DIR] [--config DIR] (--prompt TEXT | --ids ids.npy) [--clip-skip N]
                              --out hidden.npy [--pooled-out pooled.npy] [--fix-text]
                              [--prompt-syntax weighted|chunked|plain] [--chunked] [--embedding FILE[:TOKEN] ...] [--steps N]

        Runs the CLIP text encoder; writes float32 hidden states (the prompt embeddings, the UNet's context) and
        optionally the pooled output. A --prompt gives [1, 77 x rows, W], its rows as sd tokenize prints them (see
        --prompt-syntax there), each encoded alone, weighted, and joined; the pooled output [1, W] is the first row's.
        --ids gives [B, L, W] for int64 [B, L] token ids, the rows encoded as they are. --clip-skip N uses
        final_layer_norm of the N-th layer from the end (diffusers). --embedding adds a textual inversion as
        sd generate does (its ids, from vocab_size on, are valid in --ids too). Of a prompt that changes during the
        --steps N steps (default 20; A1111's prompt editing, as sd tokenize prints it) or is composed with AND, the
        first part's text at the first step is encoded alone, with a warning: sd generate pads and weighs a changing
        prompt's texts together and guides by each AND part, so its context differs.
        """;

    public static int Tokenize(IReadOnlyList<string> args, TextWriter output)
    {
        if (args.Contains("--help"))
        {
            output.WriteLine(TokenizeHelp);
            return 0;
        }
        var line = new CommandLine("tokenize", args, ModelOptions.With("--prompt", "--out", "--prompt-syntax", "--steps"), ["--fix-text", "--chunked"], repeatable: ["--embedding"]);
        line.CheckOutputFlags("--out");
        PromptSyntax syntax = ModelOptions.PromptSyntax(line);
        int steps = ScheduleSteps(line);
        using ModelSource model = ModelOptions.Open(line);
        ClipTokenizer tokenizer = LoadTokenizer(model, line, ModelOptions.AddedTokens(line, model));
        IReadOnlyList<ComposablePrompt> parts = TokenizePrompt(line, tokenizer, syntax, steps);
        IReadOnlyList<ScheduledTokens> schedule = parts[0].Schedule;
        if (parts.Count > 1 && line.Has("--out"))
        {
            throw new UsageException($"tokenize: the prompt is composed of {parts.Count} parts with AND; --out writes the rows of one text");
        }
        int texts = schedule.DistinctBy(text => text.Text).Count();
        if (texts > 1 && line.Has("--out"))
        {
            throw new UsageException($"tokenize: the prompt changes during the {steps} steps ({texts} texts); --out writes the rows of one text");
        }
        foreach ((ComposablePrompt part, int index) in parts.Select((part, index) => (part, index)))
        {
            if (parts.Count > 1 || part.Weight != 1)
            {
                output.WriteLine($"part {index + 1} of {parts.Count}, guidance weight {part.Weight.ToString(CultureInfo.InvariantCulture)}:");
            }
            PrintSchedule(part.Schedule, output);
        }
        if (line.Get("--out") is { } path)
        {
            IReadOnlyList<PromptChunk> chunks = schedule[0].Tokens.Chunks;
            NpyFile.Write(path, NpyArray.FromInt64([.. chunks.SelectMany(chunk => chunk.Ids)], [chunks.Count, chunks[0].Ids.Length]));
        }
        return 0;
    }

    /// <summary>Each text's rows (and weights, when any is not 1), after "until step E: TEXT" when the text changes.</summary>
    private static void PrintSchedule(IReadOnlyList<ScheduledTokens> schedule, TextWriter output)
    {
        foreach (ScheduledTokens text in schedule)
        {
            if (schedule.Count > 1)
            {
                output.WriteLine($"until step {text.EndAtStep}: {text.Text}");
            }
            IReadOnlyList<PromptChunk> chunks = text.Tokens.Chunks;
            bool weighted = chunks.Any(chunk => chunk.IsWeighted);
            foreach (PromptChunk chunk in chunks)
            {
                output.WriteLine(string.Join(' ', chunk.Ids.Select(id => id.ToString(CultureInfo.InvariantCulture))));
                if (weighted)
                {
                    output.WriteLine("weights: " + string.Join(' ', chunk.Weights.Select(w => w.ToString(CultureInfo.InvariantCulture))));
                }
            }
        }
    }

    public static int EncodeText(IReadOnlyList<string> args, TextWriter output)
    {
        if (args.Contains("--help"))
        {
            output.WriteLine(EncodeHelp);
            return 0;
        }
        var line = new CommandLine("encode-text", args, ModelOptions.With("--prompt", "--ids", "--clip-skip", "--out", "--pooled-out", "--prompt-syntax", "--steps"), ["--fix-text", "--chunked"], repeatable: ["--embedding"]);
        string outPath = line.Require("--out");
        if (line.Has("--prompt") == line.Has("--ids"))
        {
            throw new UsageException("encode-text: give the text as --prompt TEXT or as token ids with --ids ids.npy, one of the two");
        }
        if (line.Has("--ids") && Array.Find(["--prompt-syntax", "--chunked", "--fix-text", "--steps"], line.Has) is { } flag)
        {
            throw new UsageException($"encode-text: {flag} tokenizes --prompt; --ids are tokens already");
        }
        PromptSyntax syntax = ModelOptions.PromptSyntax(line);
        int steps = ScheduleSteps(line);
        line.CheckOutputFlags("--out", "--pooled-out");
        int clipSkip = line.GetInt("--clip-skip", 0);
        using ModelSource model = ModelOptions.Open(line);
        if (model.TextEncoder is null)
        {
            throw new InvalidFileException(model.Path, "the model has no text encoder");
        }
        AddedTokens added = ModelOptions.AddedTokens(line, model);
        using var encoder = new ClipTextModel(model.TextEncoder, model.Weights(ModelComponent.TextEncoder), added);
        using ClipTextOutput result = line.Has("--prompt")
            ? encoder.EncodePrompts([FirstText(line, TokenizePrompt(line, LoadTokenizer(model, line, added), syntax, steps))], clipSkip)
            : EncodeIds(line, encoder, clipSkip);
        using (var files = new AtomicFileSet())
        {
            NpyArray hidden = NpyArray.FromFloat32(result.Hidden.Span.ToArray(), result.Hidden.Shape);
            files.Add(outPath, stream => NpyFile.Write(stream, hidden));
            if (line.Get("--pooled-out") is { } pooledPath)
            {
                NpyArray pooled = NpyArray.FromFloat32(result.Pooled.Span.ToArray(), result.Pooled.Shape);
                files.Add(pooledPath, stream => NpyFile.Write(stream, pooled));
            }
            files.Commit();
        }
        output.WriteLine($"wrote {outPath}: float32 {Tensor.ShapeText(result.Hidden.Shape)}");
        return 0;
    }

    /// <summary>The rows of --ids, encoded as they are.</summary>
    private static ClipTextOutput EncodeIds(CommandLine line, ClipTextModel encoder, int clipSkip)
    {
        string idsPath = line.Require("--ids");
        long[] ids = NpyFile.ReadInt64(idsPath, out int[] shape);
        if (shape.Length != 2)
        {
            throw new InvalidFileException(idsPath, $"token ids must be a 2-D [B, tokens] array, found shape {NpyArray.FormatShape(shape)}");
        }
        return encoder.Encode(ids, shape[0], clipSkip);
    }

    /// <summary>--steps N, over which prompt editing is read: 20 (A1111's default) when absent.</summary>
    private static int ScheduleSteps(CommandLine line)
    {
        int steps = line.GetInt("--steps", 20);
        return steps is >= 1 and <= 100_000 ? steps
            : throw new UsageException($"{line.Command}: --steps must be in 1..100000 (num_train_timesteps' bound), got {steps}");
    }

    /// <summary>The text encode-text encodes: the prompt (its first AND part) as it reads at the first step, with a
    /// warning when it has parts or changes.</summary>
    private static TokenizedPrompt FirstText(CommandLine line, IReadOnlyList<ComposablePrompt> parts)
    {
        IReadOnlyList<ScheduledTokens> schedule = parts[0].Schedule;
        if (parts.Count > 1)
        {
            Console.Error.WriteLine($"sd {line.Command}: warning: the prompt is composed of {parts.Count} parts with AND; encoding the first's text alone: {schedule[0].Text}");
        }
        else if (parts[0].Weight != 1)
        {
            Console.Error.WriteLine($"sd {line.Command}: warning: the prompt ends in a guidance weight (A1111's AND syntax) of {parts[0].Weight.ToString(CultureInfo.InvariantCulture)}, which a text encoding does not hold");
        }
        if (schedule.DistinctBy(text => text.Text).Count() > 1)
        {
            Console.Error.WriteLine($"sd {line.Command}: warning: the prompt changes during the steps (prompt editing); encoding its text at the first step alone (sd generate pads and weighs its texts together): {schedule[0].Text}");
        }
        return schedule[0].Tokens;
    }

    /// <summary>
    /// The texts of --prompt over <paramref name="steps"/> steps in <paramref name="syntax"/>, as sd generate reads
    /// them, warning about the tokens a plain prompt drops and the tags the chunked syntaxes take out.
    /// </summary>
    private static IReadOnlyList<ComposablePrompt> TokenizePrompt(CommandLine line, ClipTokenizer tokenizer, PromptSyntax syntax, int steps)
    {
        IReadOnlyList<ComposablePrompt> parts;
        try
        {
            parts = tokenizer.TokenizeComposable(line.Require("--prompt"), syntax, steps);
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"{line.Command}: --prompt: {Program.Describe(e)}");
        }
        TokenizedPrompt prompt = parts[0].Schedule[0].Tokens;
        if (prompt.RemovedTags.Count > 0)
        {
            Console.Error.WriteLine($"sd {line.Command}: warning: the prompt's tags {string.Join(' ', prompt.RemovedTags)} were taken out, as sd generate takes them out");
        }
        if (prompt.DroppedTokens > 0)
        {
            Console.Error.WriteLine($"sd {line.Command}: warning: the prompt is {prompt.DroppedTokens} tokens too long; they were dropped (--prompt-syntax chunked or weighted keeps them)");
        }
        return parts;
    }

    private static ClipTokenizer LoadTokenizer(ModelSource model, CommandLine line, AddedTokens added)
    {
        if (model.Tokenizer is null)
        {
            throw new UsageException($"{line.Command}: {model.Path} has no tokenizer folder (single-file checkpoints carry none): pass --tokenizer DIR with vocab.json and merges.txt, or --config DIR with a tokenizer/ folder");
        }
        model.Tokenizer.RequireFits(model.TextEncoder);
        return ClipTokenizer.Load(model.Tokenizer, new ClipTokenizerOptions { FixText = line.Has("--fix-text") }).WithAddedTokens(added);
    }
}
