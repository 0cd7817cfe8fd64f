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
                           [--chunked] [--embedding FILE[:TOKEN] ...]

        Prints the CLIP token ids of a prompt as the SD pipeline builds them (bos, text, eos, padding to 77) and
        optionally writes them as int64 [1, 77] (or [chunks, 77] with --chunked: the long-prompt way, 75 tokens per
        chunk). --fix-text applies ftfy-like fixes (curly quotes, HTML entities) first. --embedding adds a textual
        inversion as sd generate does: its token becomes ids from the text encoder's vocab_size on.
        """;

    private const string EncodeHelp = """
        Usage: sd encode-text --model M [--tokenizer DIR] [--config DIR] (--prompt TEXT | --ids ids.npy) [--clip-skip N]
                              --out hidden.npy [--pooled-out pooled.npy] [--fix-text] [--chunked]
                              [--embedding FILE[:TOKEN] ...]

        Runs the CLIP text encoder; writes float32 [B, 77, W] hidden states (the prompt embeddings) and optionally
        the pooled output [B, W]. --clip-skip N uses final_layer_norm of the N-th layer from the end (diffusers).
        --chunked keeps long prompts whole (75-token chunks encoded separately, concatenated: [1, 77 x chunks, W]);
        by default a prompt is truncated at 77 tokens like diffusers, with a warning. --embedding adds a textual
        inversion as sd generate does (its ids, from vocab_size on, are valid in --ids too).
        """;

    public static int Tokenize(IReadOnlyList<string> args, TextWriter output)
    {
        if (args.Contains("--help"))
        {
            output.WriteLine(TokenizeHelp);
            return 0;
        }
        var line = new CommandLine("tokenize", args, ModelOptions.With("--prompt", "--out"), ["--fix-text", "--chunked"], repeatable: ["--embedding"]);
        line.CheckOutputFlags("--out");
        using ModelSource model = ModelOptions.Open(line);
        ClipTokenizer tokenizer = LoadTokenizer(model, line, ModelOptions.AddedTokens(line, model));
        string prompt = line.Require("--prompt");
        long[][] rows;
        if (line.Has("--chunked"))
        {
            rows = [.. tokenizer.EncodeChunked(prompt)];
        }
        else
        {
            rows = [tokenizer.EncodeForPipeline(prompt, out int dropped)];
            if (dropped > 0)
            {
                Console.Error.WriteLine($"sd tokenize: warning: the prompt is {dropped} tokens too long; they were dropped (use --chunked to keep them)");
            }
        }
        foreach (long[] row in rows)
        {
            output.WriteLine(string.Join(' ', row.Select(id => id.ToString(CultureInfo.InvariantCulture))));
        }
        if (line.Get("--out") is { } path)
        {
            NpyFile.Write(path, NpyArray.FromInt64([.. rows.SelectMany(r => r)], [rows.Length, rows[0].Length]));
        }
        return 0;
    }

    public static int EncodeText(IReadOnlyList<string> args, TextWriter output)
    {
        if (args.Contains("--help"))
        {
            output.WriteLine(EncodeHelp);
            return 0;
        }
        var line = new CommandLine("encode-text", args, ModelOptions.With("--prompt", "--ids", "--clip-skip", "--out", "--pooled-out"), ["--fix-text", "--chunked"], repeatable: ["--embedding"]);
        string outPath = line.Require("--out");
        if (line.Has("--prompt") == line.Has("--ids"))
        {
            throw new UsageException("encode-text: give the text as --prompt TEXT or as token ids with --ids ids.npy, one of the two");
        }
        if (line.Has("--ids") && (line.Has("--chunked") || line.Has("--fix-text")))
        {
            throw new UsageException($"encode-text: {(line.Has("--chunked") ? "--chunked" : "--fix-text")} tokenizes --prompt; --ids are tokens already");
        }
        line.CheckOutputFlags("--out", "--pooled-out");
        int clipSkip = line.GetInt("--clip-skip", 0);
        using ModelSource model = ModelOptions.Open(line);
        if (model.TextEncoder is null)
        {
            throw new InvalidFileException(model.Path, "the model has no text encoder");
        }
        AddedTokens added = ModelOptions.AddedTokens(line, model);
        using var encoder = new ClipTextModel(model.TextEncoder, model.Weights(ModelComponent.TextEncoder), added);
        using ClipTextOutput result = line.Has("--chunked")
            ? encoder.EncodeChunks(LoadTokenizer(model, line, added).EncodeChunked(line.Require("--prompt")), clipSkip)
            : EncodeRows(model, line, encoder, added, clipSkip);
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

    /// <summary>Token rows from --ids, or the truncated pipeline encoding of --prompt.</summary>
    private static ClipTextOutput EncodeRows(ModelSource model, CommandLine line, ClipTextModel encoder, AddedTokens added, int clipSkip)
    {
        long[] ids;
        int batch;
        if (line.Get("--ids") is { } idsPath)
        {
            ids = NpyFile.ReadInt64(idsPath, out int[] shape);
            if (shape.Length != 2)
            {
                throw new InvalidFileException(idsPath, $"token ids must be a 2-D [B, tokens] array, found shape {NpyArray.FormatShape(shape)}");
            }
            batch = shape[0];
        }
        else
        {
            ClipTokenizer tokenizer = LoadTokenizer(model, line, added);
            ids = tokenizer.EncodeForPipeline(line.Require("--prompt"), out int dropped);
            if (dropped > 0)
            {
                Console.Error.WriteLine($"sd encode-text: warning: the prompt is {dropped} tokens too long; they were dropped");
            }
            batch = 1;
        }
        return encoder.Encode(ids, batch, clipSkip);
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
